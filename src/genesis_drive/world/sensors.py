"""The nuScenes sensor rig on SynthTown's ego car: six cameras and LIDAR_TOP.

Ego frame: x forward, y left, z up, origin on the ground at the rear axle (metres). Camera frames:
x right, y down, z forward. LIDAR_TOP frame: x right, y forward, z up (yaw -90 deg from the ego).
Mounting positions, yaws and 1600x900 intrinsics follow the published nuScenes calibration
(rounded); intrinsics are scaled to the rendered image size.
"""

from __future__ import annotations

import numpy as np

from ..data.geometry import Pose, quat_from_matrix, quat_from_yaw, scale_intrinsics
from ..data.nuscenes import SensorCalibration
from ..data.schema import CAMERA_CHANNELS, LIDAR_CHANNEL
from .config import LidarConfig

__all__ = ["CAMERA_RIG", "LIDAR_MOUNT", "camera_calibrations", "camera_pose", "lidar_beam_directions", "lidar_calibration"]

#: channel -> (translation in the ego frame (m), yaw (deg), fx, cx, cy at 1600x900 pixels).
CAMERA_RIG: dict[str, tuple[tuple[float, float, float], float, float, float, float]] = {
    "CAM_FRONT": ((1.70, 0.016, 1.511), 0.0, 1266.4, 816.3, 491.5),
    "CAM_FRONT_RIGHT": ((1.55, -0.493, 1.496), -55.0, 1260.8, 808.0, 495.3),
    "CAM_BACK_RIGHT": ((1.015, -0.481, 1.562), -110.0, 1259.5, 807.3, 501.2),
    "CAM_BACK": ((0.028, 0.004, 1.579), 180.0, 809.2, 829.2, 481.8),
    "CAM_BACK_LEFT": ((1.036, 0.484, 1.591), 110.0, 1256.7, 817.8, 452.0),
    "CAM_FRONT_LEFT": ((1.522, 0.495, 1.509), 55.0, 1272.6, 826.6, 479.8),
}
#: LIDAR_TOP translation in the ego frame (m) and yaw (rad).
LIDAR_MOUNT = ((0.944, 0.0, 1.840), -np.pi / 2)
_NATIVE = (1600, 900)

# camera axes (x right, y down, z forward) expressed in the ego frame for a camera looking along +x
_CAM_AXES = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_pose(channel: str) -> Pose:
    """Camera frame -> ego frame of a rig camera."""
    t, yaw, *_ = CAMERA_RIG[channel]
    c, s = np.cos(np.deg2rad(yaw)), np.sin(np.deg2rad(yaw))
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return Pose(quat_from_matrix(rz @ _CAM_AXES), np.array(t))


def camera_calibrations(image_size: tuple[int, int]) -> list[SensorCalibration]:
    """The six camera calibrations with intrinsics scaled to ``image_size`` (width, height)."""
    w, h = image_size
    out = []
    for ch in CAMERA_CHANNELS:
        _, _, f, cx, cy = CAMERA_RIG[ch]
        k = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
        out.append(SensorCalibration(ch, "camera", camera_pose(ch), scale_intrinsics(k, w / _NATIVE[0], h / _NATIVE[1]), (w, h)))
    return out


def lidar_calibration() -> SensorCalibration:
    """LIDAR_TOP: x right, y forward, z up, 1.84 m above the ground."""
    t, yaw = LIDAR_MOUNT
    return SensorCalibration(LIDAR_CHANNEL, "lidar", Pose(quat_from_yaw(yaw), np.array(t)))


def lidar_beam_directions(cfg: LidarConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firing pattern of one revolution.

    Returns ``(dirs, column_time, ring)``: unit directions (A, B, 3) in the *ego* frame for A
    azimuth columns x B beams; the fraction of the sweep period at which each column fires, in
    [-0.5, 0.5) (0 = facing forward; the head spins clockwise seen from above, starting at the back);
    and the ring index (B,) (0 = the top beam).
    """
    a = cfg.azimuth_steps
    frac = (np.arange(a) + 0.5) / a
    azimuth = np.pi - 2 * np.pi * frac  # ego frame, counter-clockwise from +x: back -> left -> front -> right
    elev = np.deg2rad(np.linspace(cfg.elevation_deg[0], cfg.elevation_deg[1], cfg.beams))
    ce, se = np.cos(elev), np.sin(elev)
    dirs = np.stack(
        [np.cos(azimuth)[:, None] * ce[None], np.sin(azimuth)[:, None] * ce[None], np.broadcast_to(se[None], (a, cfg.beams))], axis=-1
    )
    return dirs, frac - 0.5, np.arange(cfg.beams)
