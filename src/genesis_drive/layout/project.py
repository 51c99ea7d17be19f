"""Clip 3D geometry to a camera's view frustum and project it to OpenCV fixed-point pixels.

Geometry that crosses the camera plane would project "wrapped" (points behind the camera land
mirrored in the image), so every polygon and segment is clipped in the camera frame (metres,
x right, y down, z forward) against the near plane ``z >= near`` and four side planes that
bound the projection to the image rectangle widened by ``margin`` image sizes on each side
(which also keeps OpenCV's fixed-point coordinates small). Only then is it projected with
:func:`genesis_drive.data.geometry.project_points`.

Pixel convention: continuous ``(u, v)`` with pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)``;
OpenCV draws with pixel centres at integers, so :func:`to_cv` subtracts 0.5.
"""

from __future__ import annotations

import numpy as np

from ..data.geometry import project_points
from .frames import CameraModel

__all__ = ["SHIFT", "frustum_planes", "clip_polygon", "clip_segments", "to_cv", "project_polygon", "project_segments"]

#: Fractional bits of the fixed-point coordinates passed to OpenCV (1/32 pixel).
SHIFT = 5


def frustum_planes(camera: CameraModel, near: float = 0.1, margin: float = 1.0) -> np.ndarray:
    """Half-spaces (5, 4) ``(n, d)``, a camera-frame point ``p`` is kept where ``n . p + d >= 0``.

    Near plane ``z >= near`` (metres) and the four planes through the camera centre where
    ``u`` reaches ``-margin * W`` or ``(1 + margin) * W`` and ``v`` reaches ``-margin * H`` or
    ``(1 + margin) * H`` pixels.
    """
    if near <= 0:
        raise ValueError(f"near plane must be > 0 metres, got {near}")
    k = camera.intrinsics
    u0, u1 = -margin * camera.width, (1 + margin) * camera.width
    v0, v1 = -margin * camera.height, (1 + margin) * camera.height
    planes = np.zeros((5, 4))
    planes[0] = 0.0, 0.0, 1.0, -near
    planes[1, :3] = k[0] - u0 * k[2]
    planes[2, :3] = u1 * k[2] - k[0]
    planes[3, :3] = k[1] - v0 * k[2]
    planes[4, :3] = v1 * k[2] - k[1]
    return planes


def clip_polygon(polygon: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Clip a planar polygon (K, 3) against half-spaces (P, 4) (Sutherland-Hodgman).

    Returns the clipped polygon (M, 3), M = 0 when nothing is left. The clip region is convex,
    so convex input stays exact; non-convex input may gain zero-area bridges along the planes,
    which fill the same pixels.
    """
    poly = np.asarray(polygon, dtype=np.float64)
    for plane in planes:
        if len(poly) == 0:
            break
        dist = poly @ plane[:3] + plane[3]
        inside = dist >= 0
        if inside.all():
            continue
        if not inside.any():
            return np.zeros((0, 3))
        nxt = np.roll(poly, -1, axis=0)
        dist_nxt = np.roll(dist, -1)
        crossing = inside != (dist_nxt >= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(crossing, dist / (dist - dist_nxt), 0.0)
        # per edge i -> i+1: vertex i if inside, then the crossing point if the edge crosses
        cand = np.stack([poly, poly + a[:, None] * (nxt - poly)], axis=1)  # (K, 2, 3)
        keep = np.stack([inside, crossing], axis=1)  # (K, 2)
        poly = cand[keep]
    return poly


def clip_segments(p0: np.ndarray, p1: np.ndarray, planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip segments ``p0[i] -> p1[i]`` (N, 3) against half-spaces (P, 4) (Liang-Barsky).

    Returns ``(q0, q1, keep)``: clipped end points (N, 3) and a mask (N,) of segments with a
    part inside (rows where ``keep`` is False hold unspecified values).
    """
    p0 = np.asarray(p0, dtype=np.float64).reshape(-1, 3)
    p1 = np.asarray(p1, dtype=np.float64).reshape(-1, 3)
    t0 = np.zeros(len(p0))
    t1 = np.ones(len(p0))
    keep = np.ones(len(p0), dtype=bool)
    d = p1 - p0
    for plane in planes:
        f0 = p0 @ plane[:3] + plane[3]  # signed value at t = 0
        df = d @ plane[:3]  # change per unit t
        keep &= ~((df == 0) & (f0 < 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = -f0 / df
        entering = df > 0
        leaving = df < 0
        t0 = np.where(entering, np.maximum(t0, tc), t0)
        t1 = np.where(leaving, np.minimum(t1, tc), t1)
    keep &= t0 <= t1
    return p0 + t0[:, None] * d, p0 + t1[:, None] * d, keep


def to_cv(uv: np.ndarray) -> np.ndarray:
    """Continuous pixel coordinates (..., 2) -> int32 OpenCV fixed point with :data:`SHIFT` bits."""
    return np.round((np.asarray(uv, dtype=np.float64) - 0.5) * (1 << SHIFT)).astype(np.int32)


def project_polygon(camera: CameraModel, polygon_ego: np.ndarray, near: float = 0.1) -> np.ndarray | None:
    """A planar ego-frame polygon (K, 3) clipped to the frustum and projected: int32 (M, 2) in
    OpenCV fixed point, or None when nothing of it is in view."""
    poly = clip_polygon(camera.to_camera(polygon_ego), frustum_planes(camera, near))
    if len(poly) < 3:
        return None
    uv, _ = project_points(poly, camera.intrinsics, min_depth=0.0)
    return to_cv(uv)


def project_segments(camera: CameraModel, p0_ego: np.ndarray, p1_ego: np.ndarray, near: float = 0.1) -> np.ndarray:
    """Ego-frame segments (N, 3) -> the parts in view as int32 (M, 2, 2) OpenCV fixed point."""
    planes = frustum_planes(camera, near)
    q0, q1, keep = clip_segments(camera.to_camera(p0_ego), camera.to_camera(p1_ego), planes)
    if not keep.any():
        return np.zeros((0, 2, 2), dtype=np.int32)
    uv0, _ = project_points(q0[keep], camera.intrinsics, min_depth=0.0)
    uv1, _ = project_points(q1[keep], camera.intrinsics, min_depth=0.0)
    return to_cv(np.stack([uv0, uv1], axis=1))
