"""Small on-disk inputs for the evaluation pipelines: clip directories and a nuScenes-format root.

The nuScenes root has one scene of ``num_keyframes`` keyframes at 2 Hz; two cameras (CAM_FRONT,
CAM_BACK) with one frame per keyframe; LIDAR_TOP sweeps on keyframes only. The ego drives +x at
10 m/s (5 m per keyframe); the LiDAR sweeps are a fixed set of *world* points seen from the
moving sensor, so the same world point has different sensor coordinates in each sweep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genesis_drive.data.geometry import Pose, quat_from_matrix, quat_from_yaw
from genesis_drive.data.nuscenes import NuScenesWriter, SceneMeta, SensorCalibration
from genesis_drive.data.schema import Box3D, CameraFrame, LidarSweep, MapLayers
from genesis_drive.viz.video import write_mp4, write_png

W, H = 48, 32
VIEWS = ("CAM_FRONT", "CAM_BACK")
T0 = 1_700_000_000_000_000
KEY_US = 500_000
EGO_SPEED = 10.0  # m/s
LIDAR_TO_EGO = Pose(quat_from_yaw(0.0), [1.0, 0.0, 1.8])


def write_clip_dir(root: Path, clips: dict[str, np.ndarray], views=VIEWS, fmt: str = "png") -> Path:
    """``clips[clip_id]``: (v, t, h, w, 3) uint8; views written as PNG folders or MP4 files."""
    for clip_id, frames in clips.items():
        for v, view in enumerate(views):
            if fmt == "png":
                for t, img in enumerate(frames[v]):
                    write_png(root / clip_id / view / f"{t:06d}.png", img)
            else:
                write_mp4(root / clip_id / f"{view}.mp4", frames[v], fps=12, progress=False)
    return root


def random_clips(n: int, t: int = 4, seed: int = 0, brightness: int = 0, views=VIEWS) -> dict[str, np.ndarray]:
    """Smooth random clips (low-frequency patterns survive video coding)."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        base = rng.uniform(40, 200, size=(len(views), t, 4, 6, 3))
        big = np.repeat(np.repeat(base, H // 4, axis=2), W // 6, axis=3)
        out[f"clip{i:03d}"] = np.clip(big + brightness, 0, 255).astype(np.uint8)
    return out


def world_points(n: int = 600, seed: int = 0) -> np.ndarray:
    """Static world points (global frame): ground ring and walls 5-40 m from the path."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(80, 160, n)
    y = 50 + rng.choice([-1, 1], n) * rng.uniform(5, 30, n)
    z = rng.uniform(0, 4, n)
    return np.stack([x, y, z], 1)


def ego_pose(k: int) -> Pose:
    return Pose(quat_from_yaw(0.0), [100.0 + EGO_SPEED * k * KEY_US / 1e6, 50.0, 0.0])


def sweep_points(k: int, world: np.ndarray) -> np.ndarray:
    """The world points in the LiDAR sensor frame at keyframe k, as nuScenes float32 x 5."""
    to_sensor = (ego_pose(k) @ LIDAR_TO_EGO).inverse()
    pts = np.zeros((len(world), 5), dtype=np.float32)
    pts[:, :3] = to_sensor.apply(world)
    pts[:, 3] = 100
    return pts


def camera_image(view: int, k: int) -> np.ndarray:
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[..., 0] = 40 + 60 * view
    img[..., 1] = 20 + 25 * k
    img[: H // 2, : W // 2, 2] = 200  # some structure
    return img


def write_nuscenes_root(root: Path, num_keyframes: int = 8) -> Path:
    cam_rot = quat_from_matrix(np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float))
    k_mat = np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]])
    calibs = [
        SensorCalibration("CAM_FRONT", "camera", Pose(cam_rot, [1.5, 0, 1.6]), k_mat, (W, H)),
        SensorCalibration("CAM_BACK", "camera", Pose(cam_rot, [-1.0, 0, 1.6]), k_mat, (W, H)),
        SensorCalibration("LIDAR_TOP", "lidar", LIDAR_TO_EGO),
    ]
    world = world_points()
    road = np.array([[0.0, 40.0], [300.0, 40.0], [300.0, 60.0], [0.0, 60.0]])
    with NuScenesWriter(root, version="v1.0-mini") as w:
        w.add_map("evaltown", MapLayers(drivable_area=(road,)))
        scene = w.begin_scene(SceneMeta("scene-0001", "eval test scene", "evaltown"), calibs)
        for k in range(num_keyframes):
            t = T0 + k * KEY_US
            box = Box3D.from_yaw([130.0, 53.0, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car", instance_token="car")
            w.add_sample(scene, t, [box])
            for v, c in enumerate(calibs[:2]):
                w.add_camera_frame(scene, CameraFrame(c.channel, camera_image(v, k), c.intrinsics, c.sensor_to_ego, ego_pose(k), t, True))
            w.add_lidar_sweep(scene, LidarSweep(sweep_points(k, world), LIDAR_TO_EGO, ego_pose(k), t, True))
    return root
