"""Image masks of annotated 3D boxes (where known objects are, so they are not taken for lens faults)."""

from __future__ import annotations

import cv2
import numpy as np

from ..data.geometry import transform_points
from ..data.schema import Box3D
from ..layout.camera import BOX_FACES
from ..layout.frames import CameraModel
from ..layout.project import SHIFT, project_polygon

__all__ = ["box_mask"]


def box_mask(boxes: list[Box3D], cam_from_frame: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int], max_distance: float = 60.0) -> np.ndarray:
    """Boolean mask ``(h w)`` of the pixels covered by the boxes' projections.

    boxes: in any frame ``F`` (e.g. global); cam_from_frame: 4x4 ``F`` -> camera (x right, y down,
    z forward, metres); intrinsics: (3, 3) for an image of ``size`` = (width, height). Every face
    is clipped to the view frustum (near plane 0.1 m) before projection, so a box straddling the
    camera plane still covers all the pixels it occupies; boxes farther than ``max_distance``
    metres are skipped.
    """
    w, h = size
    camera = CameraModel("mask", intrinsics, np.linalg.inv(cam_from_frame), w, h)
    mask = np.zeros((h, w), np.uint8)
    for b in boxes:
        if np.linalg.norm(transform_points(cam_from_frame, b.center)) > max_distance:
            continue
        corners = b.corners()
        for face in BOX_FACES.values():
            poly = project_polygon(camera, corners[list(face)])
            if poly is not None:
                cv2.fillPoly(mask, [poly], 1, lineType=cv2.LINE_8, shift=SHIFT)
    return mask.astype(bool)
