"""How much of each annotated object the six cameras see (nuScenes visibility levels), by ray casting.

An object's visibility is the fraction of sample points on its surface (up to ``max_points`` mesh
vertices) that are, in at least one camera, inside the image and not hidden by *another* surface:
the ray from the camera centre reaches the point, or first hits the object itself (so an object's own
far side does not count as occluded, as in the nuScenes definition). The fraction is taken over the
points inside at least one image; an object outside every image gets level 1. Levels: 1 = 0-40 %,
2 = 40-60 %, 3 = 60-80 %, 4 = 80-100 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lidar import RayCaster

__all__ = ["CameraRay", "points_visible", "visibility_fractions", "visibility_level"]


@dataclass(frozen=True)
class CameraRay:
    """A camera for visibility tests: intrinsics (3, 3) pixels, cam_to_global (4, 4), image size."""

    intrinsics: np.ndarray
    cam_to_global: np.ndarray
    width: int
    height: int


def points_visible(caster: RayCaster, cameras: list[CameraRay], points: np.ndarray, instance: np.ndarray, tolerance: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """For points (N, 3) belonging to objects ``instance`` (N,): whether each lies inside some image
    (N,) and whether it is seen unoccluded (ray reaches within ``tolerance`` m, or first hits its own
    object) in some image (N,)."""
    n = len(points)
    in_any = np.zeros(n, bool)
    seen = np.zeros(n, bool)
    if n == 0:
        return in_any, seen
    origins, dirs, idx, dists = [], [], [], []
    for cam in cameras:
        r, c = cam.cam_to_global[:3, :3], cam.cam_to_global[:3, 3]
        pc = (points - c) @ r  # global -> camera frame (rigid inverse)
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = cam.intrinsics[0, 0] * pc[:, 0] / z + cam.intrinsics[0, 2]
            v = cam.intrinsics[1, 1] * pc[:, 1] / z + cam.intrinsics[1, 2]
        inside = (z > 0.2) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        in_any |= inside
        k = np.flatnonzero(inside)
        if not len(k):
            continue
        d = points[k] - c
        dist = np.linalg.norm(d, axis=1)
        origins.append(np.broadcast_to(c, (len(k), 3)))
        dirs.append(d / dist[:, None])
        idx.append(k)
        dists.append(dist)
    if idx:
        k = np.concatenate(idx)
        dist = np.concatenate(dists)
        hits = caster.cast(np.concatenate(origins), np.concatenate(dirs))
        ok = (hits.distance >= dist - tolerance) | (hits.instance == instance[k])
        np.logical_or.at(seen, k, ok)
    return in_any, seen


def visibility_fractions(caster: RayCaster, cameras: list[CameraRay], vertex_sets: list[np.ndarray], instances: list[int], max_points: int = 48) -> list[float | None]:
    """Visible fraction of each object (None when no sample point is inside any image)."""
    pts, owner = [], []
    for j, v in enumerate(vertex_sets):
        v = np.asarray(v, np.float64)
        if len(v) > max_points:
            v = v[np.linspace(0, len(v) - 1, max_points).astype(int)]
        pts.append(v)
        owner.append(np.full(len(v), j))
    if not pts:
        return []
    points = np.concatenate(pts)
    owner_a = np.concatenate(owner)
    inst = np.asarray(instances)[owner_a]
    in_any, seen = points_visible(caster, cameras, points, inst)
    out: list[float | None] = []
    for j in range(len(vertex_sets)):
        m = owner_a == j
        n_in = int(in_any[m].sum())
        out.append(float(seen[m].sum()) / n_in if n_in else None)
    return out


def visibility_level(fraction: float | None) -> int:
    """nuScenes visibility token 1..4 of a visible fraction (None -> 1)."""
    if fraction is None or fraction < 0.4:
        return 1
    if fraction < 0.6:
        return 2
    if fraction < 0.8:
        return 3
    return 4
