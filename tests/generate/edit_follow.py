"""Helpers of the edit-follows acceptance test (``test_edit_follows.py``): a SynthTown scene with one
lead car, the car's keyframe boxes in a rendered or generated root, the generated LiDAR points inside
a box and the layout2d evaluator's vehicle pixels inside a box's image footprint.

Frames and units: boxes and points in the global (map) frame, metres; images ``(h w 3)`` uint8.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from genesis_drive.curation.box_masks import box_mask
from genesis_drive.data.clips import resize_crop
from genesis_drive.data.geometry import transform_points
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import Box3D
from genesis_drive.models.evaluators.layout2d import LAYOUT2D_CLASSES, Layout2DNet
from genesis_drive.scene.edit import agent, ego_path
from genesis_drive.scene.schema import Caption, Scene, TownMap, TrackPoint
from genesis_drive.world.config import preset
from genesis_drive.world.scene import build_scene

VEHICLE = LAYOUT2D_CLASSES.index("vehicle")
LIDAR = "LIDAR_TOP"


def lead_scene(seed: int, index: int, *, ahead: float, seconds: float, size=(1.9, 4.6, 1.5)) -> Scene:
    """The ``tiny`` town of SynthTown scene ``index`` of run ``seed``, its ego path (every 0.05 s from
    the traffic simulation, no rendering) and nothing but one car ``lead`` ``ahead`` metres in front
    of the ego along its heading, at every keyframe (0.5 s); a clear day."""
    cfg = dataclasses.replace(preset("tiny"), num_scenes=1, scene_seconds=seconds, seed=seed)
    world = build_scene(cfg, index)
    ts = np.arange(0.0, seconds + 1e-9, 0.05)
    ego = ego_path([(t, x, y, yaw) for t, (x, y, yaw) in zip(ts, world.ego_xy_yaw(ts))])
    kt = np.arange(0.0, seconds + 1e-9, 0.5)
    pts = [(t, x + ahead * math.cos(yaw), y + ahead * math.sin(yaw), yaw) for t, (x, y, yaw) in zip(kt, world.ego_xy_yaw(kt))]
    lead = agent("lead", "vehicle.car", size, pts)
    return Scene(f"follow-{seed}-{index}", seconds, TownMap(seed, "tiny", index), ego, agents=(lead,), caption=Caption("day", "clear"))


def left_of_ego(scene: Scene, metres: float) -> tuple[float, float]:
    """World ``(dx, dy)`` of a move ``metres`` to the left of the ego's heading at t = 0."""
    yaw = scene.ego[0].yaw
    return -metres * math.sin(yaw), metres * math.cos(yaw)


def keyframe_boxes(root: str | Path, track: Sequence[TrackPoint]) -> list[Box3D]:
    """Per keyframe of the root's first scene: its ``vehicle.car`` annotation at ``track[k]`` (the lead
    car; the town's parked cars are annotated too). AssertionError when none lies within 5 cm."""
    r = NuScenesReader(root)
    out = []
    for k, tok in enumerate(r.sample_tokens(r.scene_tokens()[0])):
        p = track[k]
        cars = [b for b in r.boxes(tok) if b.category == "vehicle.car"]
        box = min(cars, key=lambda b: math.hypot(b.center[0] - p.x, b.center[1] - p.y))
        assert math.hypot(box.center[0] - p.x, box.center[1] - p.y) < 0.05, f"keyframe {k}: no car at the track point"
        out.append(box)
    return out


def above_ground(box: Box3D, floor: float) -> Box3D:
    """``box`` without its lowest ``floor`` metres (where the road's own returns fall)."""
    center = box.center + np.array([0.0, 0.0, floor / 2])
    return Box3D(center, box.size - np.array([0.0, 0.0, floor]), box.rotation, box.category)


def points_in_boxes(root: str | Path, boxes: Sequence[Box3D], floor: float = 0.3) -> np.ndarray:
    """``(K,)`` int: points of keyframe ``k``'s LIDAR_TOP sweep (moved to the global frame by its
    calibration and ego pose) inside ``above_ground(boxes[k], floor)``."""
    r = NuScenesReader(root)
    counts = []
    for k, tok in enumerate(r.sample_tokens(r.scene_tokens()[0])):
        sweep = r.lidar_sweep(r.nusc.get("sample", tok)["data"][LIDAR])
        pts = transform_points(sweep.ego_to_global.matrix() @ sweep.sensor_to_ego.matrix(), sweep.points[:, :3].astype(np.float64))
        counts.append(int(above_ground(boxes[k], floor).contains(pts).sum()))
    return np.array(counts)


@torch.no_grad()
def vehicle_fractions(root: str | Path, model: Layout2DNet, channel: str, old: Sequence[Box3D], new: Sequence[Box3D],
                      min_pixels: int = 50) -> np.ndarray:  # fmt: skip
    """``(K, 2)``: per keyframe, the fraction of the pixels of ``old[k]``'s image footprint that the
    layout2d evaluator calls vehicle on the root's ``channel`` image, and the same for ``new[k]``;
    each footprint without the pixels the other one covers (so the two are disjoint; AssertionError
    when one has fewer than ``min_pixels``).

    The image goes into the evaluator as in ``eval layout2d`` (resize to cover, centre crop,
    [-1, 1]); the footprints are the boxes' projections (``box_mask``) at the prediction size."""
    r = NuScenesReader(root)
    w, h = model.cfg.output_size
    out = []
    for tok in r.sample_tokens(r.scene_tokens()[0]):
        frame = r.camera_frame(r.nusc.get("sample", tok)["data"][channel])
        x = resize_crop(frame.image, np.eye(3), model.cfg.image_size)[0]
        x = torch.from_numpy(np.array(x)).permute(2, 0, 1).float()[None] / 127.5 - 1.0
        vehicle = model(x).argmax(1)[0].numpy() == VEHICLE
        intrinsics = resize_crop(frame.image, frame.intrinsics, (w, h))[1]
        cam_from_global = np.linalg.inv(frame.ego_to_global.matrix() @ frame.sensor_to_ego.matrix())
        k = len(out)
        m_old, m_new = (box_mask([b[k]], cam_from_global, intrinsics, (w, h)) for b in (old, new))
        only_old, only_new = m_old & ~m_new, m_new & ~m_old
        assert min(only_old.sum(), only_new.sum()) >= min_pixels, f"keyframe {k}: a footprint is under {min_pixels} pixels"
        out.append([vehicle[only_old].mean(), vehicle[only_new].mean()])
    return np.array(out)
