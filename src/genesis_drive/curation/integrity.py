"""Scene-integrity checks of a clip: timing, ego motion and annotation sanity.

Each problem is an :class:`Issue` with a weight (1 = one clear defect); the clip's integrity
measurement is the sum of weights. Checks (all in the clip's own frames, metres, seconds):

* timestamps strictly increasing (weight 2 per violation);
* ego motion between consecutive frames: speed <= ``max_ego_speed`` m/s, yaw rate <=
  ``max_yaw_rate`` rad/s (weight 1 each);
* box sizes inside generous ranges for their detection class (weight 0.5 per instance);
* box bottoms within ``max_ground_offset`` m of the ego's ground plane for boxes within 40 m
  (weight 0.5 per instance);
* object tracks: an instance moves at most ``max_object_speed`` m/s (+1 m) between frames, in the
  global frame (weight 1 per instance);
* vehicles do not interpenetrate: bird's-eye-view IoU of two vehicle boxes in frame 0 at most
  ``max_vehicle_iou`` (weight 0.5 per pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.schema import Clip

__all__ = ["SIZE_RANGES", "IntegrityConfig", "Issue", "check_integrity"]

#: Plausible (min, max) of (width, length, height) in metres per nuScenes detection class.
SIZE_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "car": ((1.3, 2.7), (2.4, 7.5), (1.0, 3.2)),
    "truck": ((1.5, 3.6), (3.5, 22.0), (1.5, 5.0)),
    "bus": ((2.0, 3.6), (6.0, 25.0), (2.2, 5.0)),
    "trailer": ((1.2, 3.6), (1.5, 22.0), (0.8, 5.0)),
    "construction_vehicle": ((1.3, 4.5), (2.0, 16.0), (1.3, 6.0)),
    "pedestrian": ((0.2, 1.5), (0.2, 1.8), (0.7, 2.4)),
    "motorcycle": ((0.3, 1.6), (1.0, 3.2), (0.7, 2.3)),
    "bicycle": ((0.2, 1.3), (0.9, 2.6), (0.6, 2.3)),
    "traffic_cone": ((0.1, 1.5), (0.1, 1.5), (0.2, 1.6)),
    "barrier": ((0.1, 4.5), (0.1, 4.5), (0.3, 2.0)),
}
_VEHICLES = {"car", "truck", "bus", "trailer", "construction_vehicle"}


@dataclass(frozen=True)
class Issue:
    """One integrity problem: a short kind code, its weight and a human-readable message."""

    kind: str
    weight: float
    message: str


@dataclass(frozen=True)
class IntegrityConfig:
    """Limits of the checks (m/s, rad/s, metres)."""

    max_ego_speed: float = 50.0
    max_yaw_rate: float = 1.5
    max_object_speed: float = 50.0
    max_ground_offset: float = 3.0
    max_vehicle_iou: float = 0.3


def _bev_polygon(corners: np.ndarray):
    from shapely.geometry import Polygon

    return Polygon(corners[[3, 2, 6, 7], :2])


def check_integrity(clip: Clip, cfg: IntegrityConfig = IntegrityConfig()) -> list[Issue]:
    """Every integrity issue of ``clip`` (empty list for a sane clip)."""
    issues: list[Issue] = []
    ts = clip.timestamps.astype(np.int64)
    dts = np.diff(ts) * 1e-6
    for i in np.flatnonzero(dts <= 0):
        issues.append(Issue("timestamps", 2.0, f"timestamp of frame {i + 1} ({ts[i + 1]} us) is not after frame {i} ({ts[i]} us)"))
    traj = clip.ego_trajectory
    for i, dt in enumerate(dts):
        if dt <= 0:
            continue
        speed = float(np.hypot(*(traj[i + 1, :2] - traj[i, :2]))) / dt
        dyaw = float(np.angle(np.exp(1j * (traj[i + 1, 2] - traj[i, 2]))))
        if speed > cfg.max_ego_speed:
            issues.append(Issue("ego_speed", 1.0, f"ego moves {speed:.1f} m/s between frames {i} and {i + 1}"))
        if abs(dyaw) / dt > cfg.max_yaw_rate:
            issues.append(Issue("ego_yaw_rate", 1.0, f"ego turns {abs(dyaw) / dt:.2f} rad/s between frames {i} and {i + 1}"))

    bad_size, bad_ground, jumps = set(), set(), set()
    prev: dict[str, np.ndarray] = {}
    for t, boxes in enumerate(clip.boxes):
        e2g = clip.ego_to_global[t]
        cur = {}
        for b in boxes:
            key = b.instance_token or b.token
            cls = b.detection_class
            if cls in SIZE_RANGES and key not in bad_size:
                rng = SIZE_RANGES[cls]
                if any(not lo <= v <= hi for v, (lo, hi) in zip(b.size, rng)):
                    bad_size.add(key)
                    issues.append(Issue("box_size", 0.5, f"{b.category} {key[:8]} has size (w, l, h) {np.round(b.size, 2).tolist()} m"))
            bottom = b.center[2] - b.size[2] / 2
            if np.hypot(*b.center[:2]) < 40 and abs(bottom) > cfg.max_ground_offset and key not in bad_ground:
                bad_ground.add(key)
                issues.append(Issue("box_ground", 0.5, f"{b.category} {key[:8]} bottom is {bottom:.1f} m off the ego ground plane"))
            if key:
                cur[key] = e2g[:3, :3] @ b.center + e2g[:3, 3]
        if t > 0 and dts[t - 1] > 0:
            for key, p in cur.items():
                if key in prev and key not in jumps:
                    d = float(np.linalg.norm(p - prev[key]))
                    if d > 1.0 + cfg.max_object_speed * dts[t - 1]:
                        jumps.add(key)
                        issues.append(Issue("track_jump", 1.0, f"instance {key[:8]} jumps {d:.1f} m between frames {t - 1} and {t}"))
        prev = cur

    vehicles = [b for b in clip.boxes[0] if b.detection_class in _VEHICLES] if clip.boxes else []
    polys = [_bev_polygon(b.corners()) for b in vehicles]
    for i in range(len(vehicles)):
        for j in range(i + 1, len(vehicles)):
            if np.linalg.norm(vehicles[i].center[:2] - vehicles[j].center[:2]) > 0.5 * (vehicles[i].size[1] + vehicles[j].size[1]):
                continue
            inter = polys[i].intersection(polys[j]).area
            union = polys[i].area + polys[j].area - inter
            if union > 0 and inter / union > cfg.max_vehicle_iou:
                issues.append(Issue("box_overlap", 0.5, f"vehicles {vehicles[i].instance_token[:8]} and {vehicles[j].instance_token[:8]} overlap (BEV IoU {inter / union:.2f})"))
    return issues
