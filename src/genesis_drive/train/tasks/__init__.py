"""Training tasks by name: the one explicit table the CLI looks task names up in."""

from __future__ import annotations

from ..task import TaskDef
from . import bev_layout, camera_dit, camera_vae, depth, frame_ae, layout2d, lidar_ae, lidar_dit, synth_features

__all__ = ["TASKS"]

#: task name -> definition (config type, presets, builder). Add new tasks here.
TASKS: dict[str, TaskDef] = {
    "frame_ae": frame_ae.TASK,
    "synth_features": synth_features.SYNTH_FEATURES_TASK,
    "bev_layout": bev_layout.BEV_LAYOUT_TASK,
    "depth": depth.DEPTH_TASK,
    "layout2d": layout2d.LAYOUT2D_TASK,
    "camera-vae": camera_vae.CAMERA_VAE_TASK,
    "camera-dit": camera_dit.CAMERA_DIT_TASK,
    "lidar-ae": lidar_ae.LIDAR_AE_TASK,
    "lidar-dit": lidar_dit.LIDAR_DIT_TASK,
}
