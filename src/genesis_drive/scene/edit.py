"""Helpers to build the parts of a scene in code (the editing itself: methods of
:class:`~genesis_drive.scene.schema.Scene`: ``add_agent``, ``move_agent``, ``remove_agent``,
``with_time_of_day``, ``with_weather``, ``with_text``; each returns a new scene).

Units as in :mod:`genesis_drive.scene.schema`: metres (world frame), radians, seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Optional

from .schema import Agent, EgoPoint, Pedestrian, TrackPoint

__all__ = ["agent", "ego_path", "pedestrian", "straight_track", "track"]


def track(points: Iterable[Sequence[float]]) -> tuple[TrackPoint, ...]:
    """Track points from ``(t, x, y, yaw)`` or ``(t, x, y, yaw, z)`` tuples."""
    return tuple(TrackPoint(*(float(v) for v in p)) for p in points)


def straight_track(x: float, y: float, yaw: float, speed: float, t0: float, t1: float, step: float = 0.5, z: Optional[float] = None) -> tuple[TrackPoint, ...]:
    """A constant-velocity track: starts at ``(x, y)`` at ``t0``, heads ``yaw`` at ``speed`` m/s,
    one point every ``step`` seconds up to ``t1`` (included)."""
    n = max(1, int(math.floor((t1 - t0) / step + 1e-9)) + 1)
    ts = [t0 + k * step for k in range(n)]
    if ts[-1] < t1 - 1e-9:
        ts.append(t1)
    return tuple(TrackPoint(t, x + speed * (t - t0) * math.cos(yaw), y + speed * (t - t0) * math.sin(yaw), yaw, z) for t in ts)


def ego_path(points: Iterable[Sequence[float]]) -> tuple[EgoPoint, ...]:
    """Ego points from ``(t, x, y, yaw)`` tuples (rear axle, world frame)."""
    return tuple(EgoPoint(*(float(v) for v in p)) for p in points)


def agent(id: str, category: str, size: Sequence[float], points) -> Agent:
    """An :class:`Agent`; ``points``: track points or ``(t, x, y, yaw[, z])`` tuples."""
    pts = tuple(points)
    return Agent(id, category, tuple(float(v) for v in size), pts if pts and isinstance(pts[0], TrackPoint) else track(pts))


def pedestrian(id: str, points, size: Sequence[float] = (0.7, 0.7, 1.75), category: str = "human.pedestrian.adult", pose: str | Sequence[Sequence[float]] = "walk") -> Pedestrian:
    """A :class:`Pedestrian`; ``pose``: a preset name or 17 ``(x, y, z)`` keypoints (person frame)."""
    pts = tuple(points)
    pts = pts if pts and isinstance(pts[0], TrackPoint) else track(pts)
    if isinstance(pose, str):
        return Pedestrian(id, category, tuple(float(v) for v in size), pts, pose)
    return Pedestrian(id, category, tuple(float(v) for v in size), pts, "keypoints", tuple(tuple(float(v) for v in k) for k in pose))
