"""Per-frame geometry of a :class:`Clip`: cameras, the map and LiDAR in a frame's ego frame.

A clip stores boxes and poses in the ego frame of each frame, but the map and the ego trajectory
in the ego frame of frame 0 and LiDAR sweeps in the LiDAR sensor frame. The helpers here bring
everything into the ego frame of one chosen frame ``t`` (x forward, y left, z up, metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.geometry import Pose, scale_intrinsics, transform_points
from ..data.schema import Clip, MapLayers

__all__ = ["CameraModel", "clip_cameras", "frame_map", "lidar_in_frame"]


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A calibrated pinhole camera in an ego frame.

    intrinsics: (3, 3) pixels for an image of ``width`` x ``height`` pixels.
    cam_to_ego: (4, 4) camera frame (x right, y down, z forward) -> ego frame.
    """

    name: str
    intrinsics: np.ndarray
    cam_to_ego: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        k = np.asarray(self.intrinsics, dtype=np.float64)
        m = np.asarray(self.cam_to_ego, dtype=np.float64)
        if k.shape != (3, 3) or m.shape != (4, 4):
            raise ValueError(f"CameraModel {self.name}: intrinsics must be (3, 3) and cam_to_ego (4, 4), got {k.shape} {m.shape}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"CameraModel {self.name}: image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "intrinsics", k)
        object.__setattr__(self, "cam_to_ego", m)
        object.__setattr__(self, "_ego_to_cam", np.linalg.inv(m))

    @property
    def ego_to_cam(self) -> np.ndarray:
        """(4, 4) ego frame -> camera frame (computed once)."""
        return self._ego_to_cam

    def to_camera(self, points_ego: np.ndarray) -> np.ndarray:
        """Ego-frame points (..., 3) in metres -> camera-frame points (..., 3)."""
        return transform_points(self.ego_to_cam, points_ego)

    def scaled(self, width: int, height: int) -> "CameraModel":
        """The same camera for an image resized to ``width`` x ``height`` pixels."""
        k = scale_intrinsics(self.intrinsics, width / self.width, height / self.height)
        return CameraModel(self.name, k, self.cam_to_ego, width, height)


def clip_cameras(clip: Clip, image_size: tuple[int, int] | None = None) -> list[CameraModel]:
    """The clip's V cameras, optionally rescaled to ``image_size`` = (width, height) pixels."""
    w, h = clip.image_size
    cams = [CameraModel(name, clip.intrinsics[i], clip.cam_to_ego[i], w, h) for i, name in enumerate(clip.views)]
    if image_size is None:
        return cams
    return [c.scaled(int(image_size[0]), int(image_size[1])) for c in cams]


def _check_frame(clip: Clip, t: int) -> int:
    if not -clip.num_frames <= t < clip.num_frames:
        raise IndexError(f"frame {t} out of range for a clip of {clip.num_frames} frames")
    return t % clip.num_frames


def frame_map(clip: Clip, t: int) -> MapLayers:
    """The clip's map (stored in the frame-0 ego frame) in the ego frame of frame ``t``."""
    t = _check_frame(clip, t)
    if t == 0:
        return clip.map
    x, y, yaw = clip.ego_trajectory[t]
    return clip.map.to_frame(Pose.from_xy_yaw(float(x), float(y), float(yaw)))


def lidar_in_frame(clip: Clip, sweep: int, t: int) -> np.ndarray:
    """LiDAR sweep ``sweep`` as (N, 4) ``x, y, z, intensity`` in the ego frame of frame ``t``.

    Uses the global poses of both egos, so a sweep taken at another time than frame ``t`` is
    placed where the static world is at frame ``t`` (moving objects keep the sweep's time).
    """
    t = _check_frame(clip, t)
    if not 0 <= sweep < len(clip.lidar):
        raise IndexError(f"LiDAR sweep {sweep} out of range for a clip of {len(clip.lidar)} sweeps")
    m = np.linalg.inv(clip.ego_to_global[t]) @ clip.lidar_ego_to_global[sweep] @ clip.lidar_to_ego
    pts = np.asarray(clip.lidar[sweep], dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 4:
        raise ValueError(f"Clip.lidar[{sweep}] must be (N, 5) x, y, z, intensity, ring; got {pts.shape}")
    return np.concatenate([transform_points(m, pts[:, :3]), pts[:, 3:4]], axis=1)
