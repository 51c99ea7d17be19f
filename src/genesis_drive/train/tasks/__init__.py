"""Training tasks by name: the one explicit table the CLI looks task names up in."""

from __future__ import annotations

from ...eval import consistency, layout_model, synth_features
from ..task import TaskDef
from . import frame_ae

__all__ = ["TASKS"]

#: task name -> definition (config type, presets, builder). Add new tasks here.
TASKS: dict[str, TaskDef] = {
    "frame_ae": frame_ae.TASK,
    "synth_features": synth_features.SYNTH_FEATURES_TASK,
    "bev_layout": layout_model.BEV_LAYOUT_TASK,
    "depth": consistency.DEPTH_TASK,
}
