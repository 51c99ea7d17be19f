"""A small nuScenes-format root with natural-looking images and deliberate defects.

Scenes (6 cameras at 12 Hz, 128 x 72 px, keyframes every 6 camera frames and on the last one, ego
along +x at 6 m/s, one car 12 m ahead driving along at the same speed):

* ``scene-good``: clean (12 frames: fewer than the 16 the lens-dirt index needs, which is
  calibrated on SynthTown and not on these synthetic textures).
* ``scene-blur``: every image of CAM_FRONT after frame 5 is strongly blurred.
* ``scene-noback``: no CAM_BACK channel at all (a missing view).
* ``scene-broken``: the image of CAM_FRONT_LEFT at frame 2 is overwritten with garbage bytes after
  writing (an unreadable image).
* ``scene-short``: only 3 camera frames (too short for a clip: an empty scene).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from genesis_drive.data.geometry import Pose, quat_from_matrix
from genesis_drive.data.nuscenes import (
    NuScenesReader,
    NuScenesWriter,
    SceneMeta,
    SensorCalibration,
)
from genesis_drive.data.schema import CAMERA_CHANNELS, Box3D, CameraFrame, MapLayers

from .clips import CAM_YAWS_DEG, cam_to_ego, intrinsics
from .images import natural_image

W, H = 128, 72
T0 = 1_600_000_000_000_000
CAM_US = 83_333
SPEED = 6.0
STEP = 24  # pixels the view pans per frame (the scene content changes along the drive)

MAP = MapLayers(
    drivable_area=(np.array([[-50.0, -7.0], [400.0, -7.0], [400.0, 7.0], [-50.0, 7.0]]),),
    lane_centerline=(np.array([[-50.0, 1.75], [400.0, 1.75]]), np.array([[400.0, -1.75], [-50.0, -1.75]])),
    walkway=(np.array([[-50.0, 7.0], [400.0, 7.0], [400.0, 10.0], [-50.0, 10.0]]),),
)


def calibration(ch: str) -> SensorCalibration:
    m = cam_to_ego(CAM_YAWS_DEG[CAMERA_CHANNELS.index(ch)])
    return SensorCalibration(ch, "camera", Pose(quat_from_matrix(m[:3, :3]), m[:3, 3]), intrinsics(W, H), (W, H))


def _scene(w: NuScenesWriter, name: str, n_frames: int, seed: int, channels=CAMERA_CHANNELS, blur_front_after: int | None = None) -> None:
    scene = w.begin_scene(SceneMeta(name, f"{name}, synthetic test scene", "test-town"), [calibration(c) for c in channels])
    bigs = {c: natural_image(seed * 10 + i, H, W + STEP * n_frames) for i, c in enumerate(channels)}
    for f in range(n_frames):
        t = T0 + f * CAM_US
        ego = Pose.from_xy_yaw(SPEED * f * CAM_US * 1e-6, 0.0, 0.0)
        key = f % 6 == 0 or f == n_frames - 1
        if key:
            car = Box3D.from_yaw([ego.translation[0] + 12.0, 1.75, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car", instance_token="car", velocity=[SPEED, 0, 0])
            w.add_sample(scene, t, [car])
        for c in channels:
            img = np.ascontiguousarray(bigs[c][:, STEP * f : STEP * f + W])
            if blur_front_after is not None and c == "CAM_FRONT" and f > blur_front_after:
                img = cv2.GaussianBlur(img, (0, 0), 3.0)
            cal = calibration(c)
            w.add_camera_frame(scene, CameraFrame(c, img, cal.intrinsics, cal.sensor_to_ego, ego, t, key))


def write_test_root(root: Path) -> Path:
    """Write the dataset (see module docstring); returns ``root``."""
    with NuScenesWriter(root, version="v1.0-mini") as w:
        w.add_map("test-town", MAP)
        _scene(w, "scene-good", 12, 1)
        _scene(w, "scene-blur", 12, 2, blur_front_after=5)
        _scene(w, "scene-noback", 8, 3, channels=tuple(c for c in CAMERA_CHANNELS if c != "CAM_BACK"))
        _scene(w, "scene-broken", 8, 4)
        _scene(w, "scene-short", 3, 5)
    reader = NuScenesReader(root)
    scene = next(s for s in reader.scene_tokens() if reader.scene_name(s) == "scene-broken")
    tok = reader.channel_tokens(scene, "CAM_FRONT_LEFT")[2]
    (root / reader.sample_data(tok)["filename"]).write_bytes(b"not a jpeg")
    return root
