"""A hand-built :class:`Clip` with exact, known geometry (used by the layout and viz tests).

The world is the frame-0 ego frame: a straight two-way road along +x (drivable area |y| <= 7 m,
road divider y = 0, dashed lane dividers y = +-3.5, road edges y = +-7, walkways 7 <= |y| <= 10,
a pedestrian crossing at 15 <= x <= 19). The ego drives along +x at ``ego_speed`` m/s. The six
cameras follow the nuScenes rig (yaws 0, -55, -110, 180, 110, 55 degrees; front focal 1266.4 px
at 1600 x 900, scaled to the image size).
"""

from __future__ import annotations

import numpy as np

from genesis_drive.data.geometry import Pose, quat_from_yaw, quat_to_matrix
from genesis_drive.data.schema import CAMERA_CHANNELS, Box3D, Clip, HumanPose, MapLayers

# channel -> (x, y, z metres in ego, yaw degrees, focal px at 1600 x 900)
RIG = {
    "CAM_FRONT": (1.70, 0.00, 1.51, 0.0, 1266.4),
    "CAM_FRONT_RIGHT": (1.55, -0.49, 1.50, -55.0, 1260.8),
    "CAM_BACK_RIGHT": (1.05, -0.48, 1.56, -110.0, 1259.5),
    "CAM_BACK": (0.05, 0.00, 1.56, 180.0, 809.2),
    "CAM_BACK_LEFT": (1.05, 0.48, 1.56, 110.0, 1256.7),
    "CAM_FRONT_LEFT": (1.52, 0.49, 1.51, 55.0, 1272.6),
}
#: camera axes (x right, y down, z forward) expressed in the ego frame for yaw 0
CAM_AXES = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera(channel: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(intrinsics (3, 3), cam_to_ego (4, 4)) of a rig camera for a width x height image."""
    x, y, z, yaw, f = RIG[channel]
    k = np.array([[f * width / 1600.0, 0, width / 2], [0, f * height / 900.0, height / 2], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(quat_from_yaw(np.radians(yaw))) @ CAM_AXES
    m[:3, 3] = (x, y, z)
    return k, m


def road_map() -> MapLayers:
    dashes = lambda y: tuple(np.array([[x0, y], [x0 + 3.0, y]]) for x0 in np.arange(-60.0, 60.0, 6.0))  # noqa: E731
    rect = lambda x0, x1, y0, y1: np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])  # noqa: E731
    return MapLayers(
        drivable_area=(rect(-60, 60, -7, 7),),
        ped_crossing=(rect(15, 19, -7, 7),),
        walkway=(rect(-60, 60, 7, 10), rect(-60, 60, -10, -7)),
        lane_divider=dashes(3.5) + dashes(-3.5),
        road_divider=(np.array([[-60.0, 0.0], [60.0, 0.0]]),),
        road_edge=(np.array([[-60.0, 7.0], [60.0, 7.0]]), np.array([[-60.0, -7.0], [60.0, -7.0]])),
        lane_centerline=(np.array([[-60.0, -1.75], [60.0, -1.75]]), np.array([[60.0, 1.75], [-60.0, 1.75]])),
    )


def standing_pose(x: float, y: float, yaw: float, token: str) -> HumanPose:
    """A 1.75 m person standing at (x, y) on z = 0 facing ``yaw`` (radians), COCO keypoints."""
    # (forward, left, up) in the person's frame
    local = np.array([
        [0.10, 0.00, 1.65], [0.08, 0.04, 1.70], [0.08, -0.04, 1.70], [0.02, 0.08, 1.67], [0.02, -0.08, 1.67],
        [0.00, 0.20, 1.45], [0.00, -0.20, 1.45], [0.05, 0.25, 1.15], [0.05, -0.25, 1.15], [0.15, 0.22, 0.90],
        [0.15, -0.22, 0.90], [0.00, 0.12, 0.95], [0.00, -0.12, 0.95], [0.05, 0.12, 0.50], [-0.05, -0.12, 0.50],
        [0.00, 0.12, 0.06], [-0.10, -0.12, 0.06],
    ])  # fmt: skip
    r = quat_to_matrix(quat_from_yaw(yaw))
    return HumanPose(keypoints=local @ r.T + np.array([x, y, 0.0]), instance_token=token)


def world_boxes(time_s: float) -> list[Box3D]:
    """Boxes in the frame-0 ego frame at ``time_s`` seconds (constant velocities)."""
    specs = [  # (x, y, yaw, (w, l, h), category, token, vx)
        (14.0, 1.8, 0.0, (1.9, 4.5, 1.6), "vehicle.car", "car-ahead", 4.0),
        (24.0, -1.8, np.pi, (2.5, 8.0, 3.2), "vehicle.truck", "truck-oncoming", -6.0),
        (-14.0, 1.8, 0.0, (2.8, 11.0, 3.3), "vehicle.bus.rigid", "bus-behind", 3.0),
        (10.0, 8.5, -np.pi / 2, (0.7, 0.6, 1.75), "human.pedestrian.adult", "ped-1", 0.0),
        (6.0, 6.6, 0.0, (0.4, 0.4, 0.7), "movable_object.trafficcone", "cone-1", 0.0),
        (-6.0, -6.5, 0.0, (0.6, 2.5, 1.0), "movable_object.barrier", "barrier-1", 0.0),
        (4.0, -9.0, 0.3, (0.6, 1.8, 1.3), "vehicle.bicycle", "bike-1", 0.0),
        (3.0, 9.0, 0.0, (0.8, 0.8, 1.0), "movable_object.pushable_pullable", "bin-1", 0.0),
    ]
    out = []
    for x, y, yaw, size, cat, tok, vx in specs:
        vel = np.array([vx, 0.0, 0.0])
        out.append(Box3D.from_yaw([x + vx * time_s, y, size[2] / 2], size, yaw, cat, instance_token=tok, velocity=vel))
    return out


def ground_image(width: int, height: int, shade: int) -> np.ndarray:
    """A sky-over-ground placeholder image (H, W, 3) uint8."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[: height // 2] = (110 + shade, 150, 200)
    img[height // 2 :] = (90, 90 + shade, 80)
    return img


def lidar_sweep(boxes: list[Box3D], lidar_to_ego: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 5) float32 points in the LiDAR frame: ground rings and points on the boxes' surfaces."""
    rng = np.random.default_rng(seed)
    r = np.repeat(np.arange(3.0, 40.0, 1.5), 180)
    a = np.tile(np.linspace(-np.pi, np.pi, 180, endpoint=False), len(r) // 180)
    ground = np.stack([r * np.cos(a), r * np.sin(a), np.zeros_like(r)], axis=1)
    pts = [ground]
    for b in boxes:
        u = rng.uniform(-0.5, 0.5, size=(300, 3))
        u[np.arange(300), rng.integers(0, 3, 300)] = rng.choice([-0.5, 0.5], 300)  # on a face
        local = u * np.array([b.size[1], b.size[0], b.size[2]])
        pts.append(local @ quat_to_matrix(b.rotation).T + b.center)
    ego = np.concatenate(pts)
    inv = np.linalg.inv(lidar_to_ego)
    sensor = ego @ inv[:3, :3].T + inv[:3, 3]
    extra = np.stack([rng.uniform(0, 255, len(sensor)), rng.integers(0, 32, len(sensor))], axis=1)
    return np.concatenate([sensor, extra], axis=1).astype(np.float32)


def make_clip(num_frames: int = 3, width: int = 320, height: int = 180, ego_speed: float = 5.0, fps: float = 12.0) -> Clip:
    """The test clip: six cameras, boxes, a pedestrian with a pose, a road map, one LiDAR sweep."""
    views = CAMERA_CHANNELS
    ks, ms = zip(*(camera(v, width, height) for v in views))
    g0 = Pose.from_xy_yaw(100.0, 200.0, 0.3).matrix()
    traj = np.array([[ego_speed * i / fps, 0.0, 0.0] for i in range(num_frames)])
    boxes, poses, e2g = [], [], []
    for i in range(num_frames):
        ego = Pose.from_xy_yaw(*traj[i])
        inv = ego.inverse()
        boxes.append([b.transform(inv) for b in world_boxes(i / fps)])
        poses.append([standing_pose(10.0, 8.5, -np.pi / 2, "ped-1").transform(inv)])
        e2g.append(g0 @ ego.matrix())
    lidar_to_ego = Pose(quat_from_yaw(-np.pi / 2), np.array([0.94, 0.0, 1.84])).matrix()
    images = np.stack([[ground_image(width, height, 10 * v) for v in range(len(views))] for _ in range(num_frames)])
    ts = (np.arange(num_frames) * 1e6 / fps).astype(np.int64) + 1_600_000_000_000_000
    return Clip(
        scene_token="scene-test",
        views=views,
        images=images,
        intrinsics=np.stack(ks),
        cam_to_ego=np.stack(ms),
        ego_to_global=np.stack(e2g),
        timestamps=ts,
        boxes=boxes,
        poses=poses,
        lidar=[lidar_sweep(boxes[0], lidar_to_ego)],
        lidar_to_ego=lidar_to_ego,
        lidar_ego_to_global=np.stack([e2g[0]]),
        lidar_timestamps=ts[:1],
        map=road_map(),
        ego_trajectory=traj,
        is_key_frame=np.arange(num_frames) == 0,
        clip_id="scene-test:0000",
    )
