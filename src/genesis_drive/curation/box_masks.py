"""Image masks of annotated 3D boxes (where known objects are, so they are not taken for lens faults)."""

from __future__ import annotations

import cv2
import numpy as np

from ..data.geometry import project_points, transform_points
from ..data.schema import Box3D

__all__ = ["box_mask"]


def box_mask(boxes: list[Box3D], cam_from_frame: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int], max_distance: float = 60.0) -> np.ndarray:
    """Boolean mask ``(h w)`` of the pixels covered by the boxes' projections.

    boxes: in any frame ``F`` (e.g. global); cam_from_frame: 4x4 ``F`` -> camera (x right, y down,
    z forward, metres); intrinsics: (3, 3) for an image of ``size`` = (width, height). Each box is
    filled as the convex hull of its corners in front of the camera (depth > 0.1 m); boxes whose
    centre is behind the camera or farther than ``max_distance`` metres are skipped.
    """
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    for b in boxes:
        c = transform_points(cam_from_frame, b.center)
        if c[2] <= 0.1 or np.linalg.norm(c) > max_distance:
            continue
        pts = transform_points(cam_from_frame, b.corners())
        pts = pts[pts[:, 2] > 0.1]
        uv, _ = project_points(pts, intrinsics)
        uv = np.clip(uv, -4 * w, 5 * w)  # keep huge near-plane coordinates inside int32 range
        hull = cv2.convexHull(np.round(uv).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)
