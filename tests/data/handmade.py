"""A small hand-built nuScenes-format dataset with exactly known content (no renderer needed).

One scene, 6 cameras at 12 Hz, LiDAR at 20 Hz, keyframes at 2 Hz; one car driving along +x at
5 m/s and one pedestrian standing; the ego drives along +x at 2 m/s from global (100, 50).
Images are flat colours that encode (channel index, frame index) so tests can check which image
a frame came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genesis_drive.data.geometry import Pose, quat_from_yaw, quat_multiply
from genesis_drive.data.nuscenes import NuScenesWriter, SceneMeta, SensorCalibration
from genesis_drive.data.schema import CAMERA_CHANNELS, Box3D, CameraFrame, HumanPose, LidarSweep, MapLayers

W, H = 64, 36
CAM_YAWS_DEG = (0, -55, -110, 180, 110, 55)
#: camera frame (x right, y down, z fwd) -> a forward-looking ego-aligned frame (x fwd, y left, z up)
CAM_TO_FWD = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
T0 = 1_700_000_000_000_000
KEY_US = 500_000
CAM_US = 83_333  # 12 Hz (6 camera frames per keyframe, the 7th lands on the next keyframe +2us)
LIDAR_US = 50_000


def cam_calibration(i: int) -> SensorCalibration:
    yaw = np.deg2rad(CAM_YAWS_DEG[i])
    rot = quat_multiply(quat_from_yaw(yaw), _quat_cam_to_fwd())
    f = 1266.0 * W / 1600 * (0.6 if CAMERA_CHANNELS[i] == "CAM_BACK" else 1.0)
    k = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    t = np.array([1.5 * np.cos(yaw), 0.5 * np.sin(yaw), 1.6])
    return SensorCalibration(CAMERA_CHANNELS[i], "camera", Pose(rot, t), k, (W, H))


def _quat_cam_to_fwd() -> np.ndarray:
    from genesis_drive.data.geometry import quat_from_matrix

    return quat_from_matrix(CAM_TO_FWD)


LIDAR_CALIB = SensorCalibration("LIDAR_TOP", "lidar", Pose(quat_from_yaw(-np.pi / 2), [0.94, 0.0, 1.84]))


def ego_pose(t_us: int) -> Pose:
    dt = (t_us - T0) / 1e6
    return Pose(quat_from_yaw(0.0), [100.0 + 2.0 * dt, 50.0, 0.0])


def car_box(t_us: int) -> Box3D:
    dt = (t_us - T0) / 1e6
    return Box3D.from_yaw([110.0 + 5.0 * dt, 53.5, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car", instance_token="car-1",
                          attributes=("vehicle.moving",), visibility=4, num_lidar_pts=42, velocity=[5.0, 0, 0])


def ped_box() -> Box3D:
    return Box3D.from_yaw([105.0, 46.0, 0.9], [0.6, 0.7, 1.8], np.pi / 2, "human.pedestrian.adult", instance_token="ped-1",
                          attributes=("pedestrian.standing",), visibility=3, num_lidar_pts=7)


def ped_pose() -> HumanPose:
    kp = np.zeros((17, 3))
    kp[:, 0] = 105.0
    kp[:, 1] = 46.0 + np.linspace(-0.2, 0.2, 17)
    kp[:, 2] = np.linspace(1.7, 0.05, 17)
    return HumanPose(kp, "ped-1")


def image_for(channel_idx: int, frame_idx: int) -> np.ndarray:
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[..., 0] = 20 + 30 * channel_idx
    img[..., 1] = (10 * frame_idx) % 250
    img[..., 2] = 128
    return img


def lidar_points(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = np.zeros((n, 5), dtype=np.float32)
    pts[:, :3] = rng.uniform(-20, 20, size=(n, 3))
    pts[:, 3] = rng.uniform(0, 255, size=n)
    pts[:, 4] = rng.integers(0, 32, size=n)
    return pts


MAP = MapLayers(
    drivable_area=(np.array([[80.0, 44.0], [200.0, 44.0], [200.0, 56.0], [80.0, 56.0]]),),
    ped_crossing=(np.array([[120.0, 44.0], [124.0, 44.0], [124.0, 56.0], [120.0, 56.0]]),),
    walkway=(np.array([[80.0, 40.0], [200.0, 40.0], [200.0, 44.0], [80.0, 44.0]]),),
    lane_divider=(np.array([[80.0, 50.0], [200.0, 50.0]]),),
    road_edge=(np.array([[80.0, 44.0], [200.0, 44.0]]), np.array([[80.0, 56.0], [200.0, 56.0]])),
    lane_centerline=(np.array([[80.0, 47.0], [200.0, 47.0]]),),
)


def write_handmade(root: Path, num_keyframes: int = 4, version: str = "v1.0-mini") -> Path:
    """Write the dataset; returns the root."""
    key_ts = [T0 + k * KEY_US for k in range(num_keyframes)]
    end = key_ts[-1]
    with NuScenesWriter(root, version=version) as w:
        w.add_map("handmade-town", MAP)
        calibs = [cam_calibration(i) for i in range(6)] + [LIDAR_CALIB]
        scene = w.begin_scene(SceneMeta("scene-0001", "hand-made test scene", "handmade-town"), calibs)
        for k, t in enumerate(key_ts):
            w.add_sample(scene, t, [car_box(t), ped_box()], [ped_pose()])
        # cameras: 12 Hz between keyframes, exactly on keyframes
        cam_ts = sorted({t for k in key_ts[:-1] for t in (k + j * CAM_US for j in range(6))} | set(key_ts))
        for fi, t in enumerate(cam_ts):
            for ci in range(6):
                calib = calibs[ci]
                w.add_camera_frame(scene, CameraFrame(calib.channel, image_for(ci, fi), calib.intrinsics, calib.sensor_to_ego,
                                                      ego_pose(t), t, t in key_ts))
        for li, t in enumerate(range(T0, end + 1, LIDAR_US)):
            w.add_lidar_sweep(scene, LidarSweep(lidar_points(seed=li), LIDAR_CALIB.sensor_to_ego, ego_pose(t), t, t in key_ts))
    return root
