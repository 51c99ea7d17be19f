"""Hand-built clips (no dataset needed): a nuScenes-like 6-camera rig over natural-looking images."""

from __future__ import annotations

import numpy as np

from genesis_drive.data.geometry import Pose, project_points, transform_points
from genesis_drive.data.schema import CAMERA_CHANNELS, Box3D, Clip, MapLayers

from .images import natural_image

CAM_YAWS_DEG = (0.0, -55.0, -110.0, 180.0, 110.0, 55.0)


def cam_to_ego(yaw_deg: float) -> np.ndarray:
    """4x4 camera -> ego for a camera at (1.5, 0, 1.5) m looking along ego yaw ``yaw_deg``."""
    a = np.radians(yaw_deg)
    z = np.array([np.cos(a), np.sin(a), 0.0])  # optical axis
    x = np.array([np.sin(a), -np.cos(a), 0.0])  # image right
    y = np.array([0.0, 0.0, -1.0])  # image down
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z], axis=1)
    m[:3, 3] = [1.5, 0.0, 1.5]
    return m


def intrinsics(w: int, h: int, hfov_deg: float = 70.0) -> np.ndarray:
    f = (w / 2) / np.tan(np.radians(hfov_deg) / 2)
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])


def box_rect(clip_k: np.ndarray, c2e: np.ndarray, box: Box3D, w: int, h: int) -> tuple[int, int, int, int]:
    """Pixel rectangle (u0, v0, u1, v1) of a box's projection, clipped to the image."""
    pts = transform_points(np.linalg.inv(c2e), box.corners())
    uv, ok = project_points(pts, clip_k)
    uv = uv[ok]
    u0, v0 = np.floor(uv.min(0)).astype(int)
    u1, v1 = np.ceil(uv.max(0)).astype(int)
    return max(u0, 0), max(v0, 0), min(u1, w), min(v1, h)


def make_clip(
    t: int = 4,
    w: int = 192,
    h: int = 108,
    seed: int = 0,
    speed: float = 8.0,
    boxes: list[Box3D] | None = None,
    paint: dict[str, tuple[int, int, int]] | None = None,
    frame_dt_us: int = 83_333,
    map_layers: MapLayers | None = None,
    views: tuple[str, ...] = CAMERA_CHANNELS,
    pan: int = 32,
) -> Clip:
    """A clip whose ego drives along +x at ``speed`` m/s; ``boxes`` are ego-frame-0 boxes moving
    with their own velocity; each box whose instance token is in ``paint`` is painted that colour
    into every view that sees it (frame by frame). Views pan ``pan`` pixels per frame over wide
    natural-looking images (the content changes as it would along a drive)."""
    boxes = boxes or []
    paint = paint or {}
    v_n = len(views)
    yaws = [CAM_YAWS_DEG[CAMERA_CHANNELS.index(v)] for v in views]
    k = intrinsics(w, h)
    c2e = np.stack([cam_to_ego(y) for y in yaws])
    big = [natural_image(seed * 10 + v, h, w + pan * t) for v in range(v_n)]
    images = np.zeros((t, v_n, h, w, 3), np.uint8)
    e2g, per_frame_boxes = [], []
    for i in range(t):
        dt = i * frame_dt_us * 1e-6
        ego = Pose.from_xy_yaw(speed * dt, 0.0, 0.0).matrix()
        e2g.append(ego)
        g2e = np.linalg.inv(ego)
        fb = []
        for b in boxes:
            gc = b.center + b.velocity * dt  # frame-0 ego frame == global here
            fb.append(Box3D(center=transform_points(g2e, gc), size=b.size, rotation=b.rotation, category=b.category,
                            instance_token=b.instance_token, attributes=b.attributes, velocity=b.velocity))
        per_frame_boxes.append(fb)
        for v in range(v_n):
            images[i, v] = big[v][:, pan * i : pan * i + w]
            for b in sorted(fb, key=lambda x: -np.linalg.norm(x.center)):
                if b.instance_token in paint:
                    cam_c = transform_points(np.linalg.inv(c2e[v]), b.center)
                    if cam_c[2] > 0.5:
                        u0, v0, u1, v1 = box_rect(k, c2e[v], b, w, h)
                        if u1 > u0 and v1 > v0:
                            images[i, v, v0:v1, u0:u1] = paint[b.instance_token]
    traj = np.array([[m[0, 3], m[1, 3], 0.0] for m in e2g])
    return Clip(
        scene_token="scene-tok",
        views=tuple(views),
        images=images,
        intrinsics=np.stack([k] * v_n),
        cam_to_ego=c2e,
        ego_to_global=np.stack(e2g),
        timestamps=np.arange(t, dtype=np.int64) * frame_dt_us + 1_000_000,
        boxes=per_frame_boxes,
        poses=[[] for _ in range(t)],
        lidar=[],
        lidar_to_ego=np.eye(4),
        lidar_ego_to_global=np.zeros((0, 4, 4)),
        lidar_timestamps=np.zeros(0, np.int64),
        map=map_layers or MapLayers(),
        ego_trajectory=traj,
        is_key_frame=np.zeros(t, bool),
        clip_id="scene-0001:0000",
    )
