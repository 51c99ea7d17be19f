"""Overlays on camera images: 3D box edges, pedestrian skeletons, LiDAR points by depth.

Geometry is given in the ego frame of the image's frame (metres) with a
:class:`~genesis_drive.layout.frames.CameraModel`; it is clipped at the camera's near plane
before projection (see :mod:`genesis_drive.layout.project`). Colours per detection class are
:data:`~genesis_drive.layout.colors.CLASS_COLORS`. Every function returns a new image and leaves
its input untouched.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import matplotlib
import numpy as np

from ..data.geometry import project_points
from ..data.schema import COCO_SKELETON, Box3D, HumanPose
from ..layout.camera import BOX_EDGES, BOX_FACES
from ..layout.colors import CLASS_COLORS
from ..layout.frames import CameraModel
from ..layout.project import SHIFT, project_segments, to_cv

__all__ = ["draw_boxes", "draw_skeletons", "draw_lidar", "depth_colors"]


def _checked(image: np.ndarray, camera: CameraModel) -> np.ndarray:
    img = np.asarray(image)
    if img.shape != (camera.height, camera.width, 3) or img.dtype != np.uint8:
        raise ValueError(
            f"image must be ({camera.height}, {camera.width}, 3) uint8 to match camera {camera.name}, got {img.shape} {img.dtype}"
        )
    return img.copy()


def _thickness(camera: CameraModel, thickness: int | None) -> int:
    return max(1, round(camera.width / 400)) if thickness is None else int(thickness)


def _lines(img: np.ndarray, segs: np.ndarray, color: tuple[int, int, int], thickness: int) -> None:
    for a, b in segs:
        cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), color, thickness, cv2.LINE_AA, SHIFT)


def draw_boxes(
    image: np.ndarray, camera: CameraModel, boxes: Sequence[Box3D], thickness: int | None = None, near: float = 0.1
) -> np.ndarray:
    """Draw the 12 edges of each box (ego frame) plus a cross on its front face (heading side).

    Boxes are drawn far to near; boxes with no detection class are drawn white.
    ``thickness`` in pixels (None: 1 pixel per 400 of image width).
    """
    img = _checked(image, camera)
    th = _thickness(camera, thickness)
    origin = camera.cam_to_ego[:3, 3]
    front = BOX_FACES["front"]
    pairs = np.array(BOX_EDGES + ((front[0], front[2]), (front[1], front[3])))
    for box in sorted(boxes, key=lambda b: -float(np.linalg.norm(b.center - origin))):
        c = box.corners()
        color = CLASS_COLORS.get(box.detection_class, (255, 255, 255))
        _lines(img, project_segments(camera, c[pairs[:, 0]], c[pairs[:, 1]], near), color, th)
    return img


def draw_skeletons(
    image: np.ndarray, camera: CameraModel, poses: Sequence[HumanPose], thickness: int | None = None, near: float = 0.1
) -> np.ndarray:
    """Draw the COCO skeleton (bones between visible keypoints, ego frame) of each pose."""
    img = _checked(image, camera)
    th = _thickness(camera, thickness)
    bones = np.array(COCO_SKELETON)
    for pose in poses:
        ok = pose.visible[bones[:, 0]] & pose.visible[bones[:, 1]]
        if ok.any():
            kp = pose.keypoints
            segs = project_segments(camera, kp[bones[ok, 0]], kp[bones[ok, 1]], near)
            _lines(img, segs, CLASS_COLORS["pedestrian"], th)
    return img


def depth_colors(depth: np.ndarray, max_depth: float, cmap: str = "turbo") -> np.ndarray:
    """RGB uint8 colours (N, 3) of depths (N,) in metres: near = the colormap's low end."""
    x = np.clip(np.asarray(depth, dtype=np.float64) / max_depth, 0.0, 1.0)
    return (matplotlib.colormaps[cmap](x)[:, :3] * 255).round().astype(np.uint8)


def draw_lidar(
    image: np.ndarray,
    camera: CameraModel,
    points_ego: np.ndarray,
    max_depth: float = 60.0,
    radius: int = 1,
    near: float = 0.5,
    cmap: str = "turbo",
) -> np.ndarray:
    """Draw LiDAR points (N, >=3) ``x, y, z`` in the ego frame, coloured by camera depth (metres).

    Points closer than ``near`` or outside the image are skipped; far points are drawn first.
    ``radius`` in pixels (0: single pixels). Depths beyond ``max_depth`` take the last colour.
    """
    img = _checked(image, camera)
    pts = np.asarray(points_ego, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"points_ego must be (N, >=3) x, y, z metres, got {pts.shape}")
    cam = camera.to_camera(pts[:, :3])
    uv, valid = project_points(cam, camera.intrinsics, min_depth=near)
    valid &= (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    uv, depth = uv[valid], cam[valid, 2]
    order = np.argsort(-depth)
    uv, depth = uv[order], depth[order]
    colors = depth_colors(depth, max_depth, cmap)
    if radius <= 0:
        cols = np.floor(uv).astype(np.int64)
        img[cols[:, 1], cols[:, 0]] = colors  # later (nearer) points win
        return img
    for p, col in zip(to_cv(uv), colors):
        cv2.circle(img, (int(p[0]), int(p[1])), radius << SHIFT, tuple(int(c) for c in col), -1, cv2.LINE_8, SHIFT)
    return img
