"""Typed multimodal driving data: boxes, poses, camera frames, LiDAR sweeps, map layers, clips.

Every array field states its shape, dtype, unit and frame. Frames follow
:mod:`genesis_drive.data.geometry`: *global* (map), *ego* (x forward, y left, z up),
*sensor* (camera: x right, y down, z forward; LiDAR as calibrated). Timestamps are integer
microseconds, as in nuScenes.

Objects validate their shapes on construction and raise ``ValueError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from .geometry import Pose, quat_from_yaw, quat_multiply, quat_to_matrix, yaw_from_quat

__all__ = [
    "CAMERA_CHANNELS",
    "LIDAR_CHANNEL",
    "CATEGORIES",
    "DETECTION_CLASSES",
    "ATTRIBUTES",
    "COCO_KEYPOINTS",
    "COCO_SKELETON",
    "detection_class",
    "Box3D",
    "HumanPose",
    "CameraFrame",
    "LidarSweep",
    "MapLayers",
    "Clip",
    "clip_scene",
]

#: The six nuScenes surround cameras, clockwise from the front (yaw 0, -55, -110, 180, 110, 55 deg).
CAMERA_CHANNELS: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_RIGHT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_FRONT_LEFT",
)
LIDAR_CHANNEL = "LIDAR_TOP"

#: nuScenes category names used by genesis-drive (a subset of the 23 nuScenes categories).
CATEGORIES: tuple[str, ...] = (
    "vehicle.car",
    "vehicle.truck",
    "vehicle.bus.rigid",
    "vehicle.bicycle",
    "vehicle.motorcycle",
    "vehicle.trailer",
    "vehicle.construction",
    "vehicle.emergency.police",
    "vehicle.bus.bendy",
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.construction_worker",
    "human.pedestrian.police_officer",
    "movable_object.barrier",
    "movable_object.trafficcone",
    "movable_object.pushable_pullable",
    "static_object.bicycle_rack",
)

#: The 10 nuScenes detection classes, in the devkit's order.
DETECTION_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "bus",
    "trailer",
    "construction_vehicle",
    "pedestrian",
    "motorcycle",
    "bicycle",
    "traffic_cone",
    "barrier",
)

_DETECTION_MAP = {
    "vehicle.car": "car",
    "vehicle.emergency.police": "car",
    "vehicle.truck": "truck",
    "vehicle.bus.rigid": "bus",
    "vehicle.bus.bendy": "bus",
    "vehicle.trailer": "trailer",
    "vehicle.construction": "construction_vehicle",
    "vehicle.bicycle": "bicycle",
    "vehicle.motorcycle": "motorcycle",
    "movable_object.barrier": "barrier",
    "movable_object.trafficcone": "traffic_cone",
}

#: nuScenes attribute names.
ATTRIBUTES: tuple[str, ...] = (
    "vehicle.moving",
    "vehicle.stopped",
    "vehicle.parked",
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.moving",
    "pedestrian.standing",
    "pedestrian.sitting_lying_down",
)

#: 17 COCO keypoints, the skeleton carried by :class:`HumanPose`.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
#: Bones as index pairs into :data:`COCO_KEYPOINTS`.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip


def detection_class(category: str) -> Optional[str]:
    """The nuScenes detection class of a category name (``None`` when it has none)."""
    if category.startswith("human.pedestrian"):
        return "pedestrian"
    return _DETECTION_MAP.get(category)


def _arr(value, shape: tuple, name: str, dtype=np.float64) -> np.ndarray:
    a = np.asarray(value, dtype=dtype)
    if a.shape != shape or (np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a))):
        raise ValueError(f"{name} must be finite with shape {shape}, got shape {a.shape}")
    return a


@dataclass(frozen=True, eq=False)
class Box3D:
    """An annotated 3D box.

    center: (3,) metres, in the frame the box is expressed in (annotations on disk are global;
        :class:`Clip` boxes are in the ego frame of their frame).
    size: (3,) ``(w, l, h)`` metres (nuScenes order: width across, length along heading, height).
    rotation: (4,) unit quaternion ``(w, x, y, z)``; heading = yaw of the box's +x (length) axis.
    velocity: (3,) m/s in the same frame (NaN-free; zeros when unknown).
    visibility: nuScenes visibility level 1..4 (0-40 %, 40-60 %, 60-80 %, 80-100 % visible).
    """

    center: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    category: str
    instance_token: str = ""
    token: str = ""
    attributes: tuple[str, ...] = ()
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    visibility: int = 4
    num_lidar_pts: int = 0
    num_radar_pts: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _arr(self.center, (3,), "Box3D.center"))
        size = _arr(self.size, (3,), "Box3D.size")
        if np.any(size <= 0):
            raise ValueError(f"Box3D.size (w, l, h) must be positive metres, got {size.tolist()}")
        object.__setattr__(self, "size", size)
        rot = _arr(self.rotation, (4,), "Box3D.rotation")
        if abs(np.linalg.norm(rot) - 1) > 1e-3:
            raise ValueError(f"Box3D.rotation must be a unit quaternion (w, x, y, z), got {rot.tolist()}")
        object.__setattr__(self, "rotation", rot / np.linalg.norm(rot))
        object.__setattr__(self, "velocity", _arr(self.velocity, (3,), "Box3D.velocity"))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        if self.visibility not in (1, 2, 3, 4):
            raise ValueError(f"Box3D.visibility must be 1..4, got {self.visibility!r}")

    @staticmethod
    def from_yaw(center, size, yaw: float, category: str, **kwargs) -> "Box3D":
        """A box with heading ``yaw`` (radians about +z)."""
        return Box3D(center=center, size=size, rotation=quat_from_yaw(yaw), category=category, **kwargs)

    @property
    def yaw(self) -> float:
        return yaw_from_quat(self.rotation)

    @property
    def detection_class(self) -> Optional[str]:
        return detection_class(self.category)

    def corners(self) -> np.ndarray:
        """Corners (8, 3) in the box's frame, in the devkit's order.

        Indices 0-3: the front face (+length/2), 4-7: the back face; 0, 1, 4, 5 on top.
        """
        w, l, h = self.size
        x = l / 2 * np.array([1, 1, 1, 1, -1, -1, -1, -1])
        y = w / 2 * np.array([1, -1, -1, 1, 1, -1, -1, 1])
        z = h / 2 * np.array([1, 1, -1, -1, 1, 1, -1, -1])
        local = np.stack([x, y, z], axis=1)
        return local @ quat_to_matrix(self.rotation).T + self.center

    def bottom_corners(self) -> np.ndarray:
        """The 4 bottom corners (4, 3): front-left, front-right, back-right, back-left."""
        c = self.corners()
        return c[[3, 2, 6, 7]]

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask (N,) of points (N, 3) inside the box (same frame)."""
        local = (np.asarray(points, dtype=np.float64) - self.center) @ quat_to_matrix(self.rotation)
        half = np.array([self.size[1], self.size[0], self.size[2]]) / 2
        return np.all(np.abs(local) <= half, axis=1)

    def transform(self, pose: Pose) -> "Box3D":
        """The box expressed in ``pose``'s parent frame (pose maps the box's frame to the parent)."""
        return replace(
            self,
            center=pose.apply(self.center),
            rotation=quat_multiply(pose.rotation, self.rotation),
            velocity=pose.rotation_matrix @ self.velocity,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Box3D):
            return NotImplemented
        return (
            np.allclose(self.center, other.center, atol=1e-6)
            and np.allclose(self.size, other.size, atol=1e-6)
            and (np.allclose(self.rotation, other.rotation, atol=1e-6) or np.allclose(self.rotation, -other.rotation, atol=1e-6))
            and np.allclose(self.velocity, other.velocity, atol=1e-6)
            and (self.category, self.instance_token, self.token, self.attributes, self.visibility, self.num_lidar_pts)
            == (other.category, other.instance_token, other.token, other.attributes, other.visibility, other.num_lidar_pts)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class HumanPose:
    """Pose keypoints of one pedestrian (17 COCO keypoints, :data:`COCO_KEYPOINTS`).

    keypoints: (17, 3) metres in the same frame as the pedestrian's box.
    visible: (17,) bool; False for keypoints that are unknown or occluded by the body itself.
    instance_token: the pedestrian's instance (track) token, links the pose to its box.
    """

    keypoints: np.ndarray
    instance_token: str
    visible: np.ndarray = field(default_factory=lambda: np.ones(17, dtype=bool))

    def __post_init__(self) -> None:
        object.__setattr__(self, "keypoints", _arr(self.keypoints, (17, 3), "HumanPose.keypoints"))
        object.__setattr__(self, "visible", _arr(self.visible, (17,), "HumanPose.visible", dtype=bool))

    def transform(self, pose: Pose) -> "HumanPose":
        return replace(self, keypoints=pose.apply(self.keypoints))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HumanPose):
            return NotImplemented
        return (
            np.allclose(self.keypoints, other.keypoints, atol=1e-6)
            and np.array_equal(self.visible, other.visible)
            and self.instance_token == other.instance_token
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class CameraFrame:
    """One camera image with its calibration.

    image: (H, W, 3) uint8 RGB.
    intrinsics: (3, 3) pinhole matrix in pixels for this image's size.
    sensor_to_ego: camera frame -> ego frame. ego_to_global: ego frame -> global at ``timestamp``.
    timestamp: microseconds.
    """

    channel: str
    image: np.ndarray
    intrinsics: np.ndarray
    sensor_to_ego: Pose
    ego_to_global: Pose
    timestamp: int
    is_key_frame: bool = False
    token: str = ""

    def __post_init__(self) -> None:
        img = np.asarray(self.image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"CameraFrame.image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        object.__setattr__(self, "intrinsics", _arr(self.intrinsics, (3, 3), "CameraFrame.intrinsics"))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


@dataclass(frozen=True, eq=False)
class LidarSweep:
    """One LiDAR sweep.

    points: (N, 5) float32 ``x, y, z, intensity, ring`` in the LiDAR sensor frame (metres;
        intensity 0..255; ring = beam index 0..31).
    sensor_to_ego, ego_to_global: as in :class:`CameraFrame`; timestamp in microseconds.
    """

    points: np.ndarray
    sensor_to_ego: Pose
    ego_to_global: Pose
    timestamp: int
    is_key_frame: bool = False
    token: str = ""
    channel: str = LIDAR_CHANNEL

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 5 or not np.all(np.isfinite(pts)):
            raise ValueError(f"LidarSweep.points must be finite (N, 5) x, y, z, intensity, ring; got {pts.shape}")
        object.__setattr__(self, "points", pts)


@dataclass(frozen=True)
class MapLayers:
    """Vector map layers, all 2D (x, y) metres in one frame (global on disk, ego in a :class:`Clip`).

    Polygons are (K, 2) exterior rings (not closed: last vertex != first); polylines are (K, 2).
    drivable_area: road surface polygons. ped_crossing / walkway: polygons.
    lane_divider: dashed lines between lanes of one direction; road_divider: lines between the two
    directions; road_edge: kerb lines (boundary of the drivable area);
    lane_centerline: lane centre lines in driving direction (for agents and trajectories).
    """

    drivable_area: tuple[np.ndarray, ...] = ()
    ped_crossing: tuple[np.ndarray, ...] = ()
    walkway: tuple[np.ndarray, ...] = ()
    lane_divider: tuple[np.ndarray, ...] = ()
    road_divider: tuple[np.ndarray, ...] = ()
    road_edge: tuple[np.ndarray, ...] = ()
    lane_centerline: tuple[np.ndarray, ...] = ()

    POLYGON_LAYERS = ("drivable_area", "ped_crossing", "walkway")
    LINE_LAYERS = ("lane_divider", "road_divider", "road_edge", "lane_centerline")

    def __post_init__(self) -> None:
        for name in self.POLYGON_LAYERS + self.LINE_LAYERS:
            items = []
            for i, g in enumerate(getattr(self, name)):
                a = np.asarray(g, dtype=np.float64)
                min_pts = 3 if name in self.POLYGON_LAYERS else 2
                if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < min_pts or not np.all(np.isfinite(a)):
                    raise ValueError(f"MapLayers.{name}[{i}] must be finite (K>={min_pts}, 2) x, y metres, got {a.shape}")
                items.append(a)
            object.__setattr__(self, name, tuple(items))

    def transform_2d(self, matrix: np.ndarray) -> "MapLayers":
        """Apply a 3x3 homogeneous 2D transform (x, y) to every layer."""
        m = np.asarray(matrix, dtype=np.float64)

        def tf(a: np.ndarray) -> np.ndarray:
            return a @ m[:2, :2].T + m[:2, 2]

        return MapLayers(**{n: tuple(tf(g) for g in getattr(self, n)) for n in self.POLYGON_LAYERS + self.LINE_LAYERS})

    def to_frame(self, frame_to_global: Pose) -> "MapLayers":
        """Express global-frame layers in a frame given by its pose in the global frame (yaw only)."""
        inv = frame_to_global.inverse().matrix()
        m = np.eye(3)
        m[:2, :2] = inv[:2, :2]
        m[:2, 2] = inv[:2, 3]
        return self.transform_2d(m)

    def crop(self, center_xy: np.ndarray, radius: float) -> "MapLayers":
        """Keep whole geometries whose bounding box meets the square of half-size ``radius``
        metres around ``center_xy`` (a long road polygon with no vertex inside is kept)."""
        c = np.asarray(center_xy, dtype=np.float64)

        def keep(a: np.ndarray) -> bool:
            lo, hi = a.min(axis=0), a.max(axis=0)
            return bool(np.all(lo <= c + radius) and np.all(hi >= c - radius))

        return MapLayers(**{n: tuple(g for g in getattr(self, n) if keep(g)) for n in self.POLYGON_LAYERS + self.LINE_LAYERS})

    def is_empty(self) -> bool:
        return all(len(getattr(self, n)) == 0 for n in self.POLYGON_LAYERS + self.LINE_LAYERS)


def clip_scene(clip_id: str) -> str:
    """The scene name of a clip id ``f"{scene_name}:{start:04d}"`` (``Clip.clip_id``, ``data.clips.ClipRef``)."""
    return clip_id.rsplit(":", 1)[0]


@dataclass(eq=False)
class Clip:
    """A training/generation clip: T camera frames x V views, LiDAR sweeps, layout and caption.

    Frames: everything per frame is expressed in the ego frame *of that frame*, except
    ``map`` and ``ego_trajectory``, which are in the ego frame of frame 0 (the clip's reference).

    images: (T_i, V, H, W, 3) uint8 RGB of the first T_i frames (T_i = T unless the clip was read
        with fewer image frames, ``ClipIndex(image_frames=...)``); views: V channel names
        (``CAMERA_CHANNELS`` order).
    intrinsics: (V, 3, 3) pixels, for the stored image size. cam_to_ego: (V, 4, 4).
    ego_to_global: (T, 4, 4); timestamps: (T,) microseconds (of the frames' reference camera).
    boxes: T lists of :class:`Box3D` in the ego frame of each frame (interpolated off keyframes).
    poses: T lists of :class:`HumanPose` (ego frame of each frame).
    lidar: S sweeps, each (N_s, 5) in the LiDAR sensor frame; lidar_to_ego (4, 4);
        lidar_ego_to_global (S, 4, 4); lidar_timestamps (S,).
    map: :class:`MapLayers` in the frame-0 ego frame.
    ego_trajectory: (T, 3) ``x, y, yaw`` of each frame's ego in the frame-0 ego frame (m, rad).
    is_key_frame: (T,) bool. caption: structured caption dict (see curation) or None.
    """

    scene_token: str
    views: tuple[str, ...]
    images: np.ndarray
    intrinsics: np.ndarray
    cam_to_ego: np.ndarray
    ego_to_global: np.ndarray
    timestamps: np.ndarray
    boxes: list[list[Box3D]]
    poses: list[list[HumanPose]]
    lidar: list[np.ndarray]
    lidar_to_ego: np.ndarray
    lidar_ego_to_global: np.ndarray
    lidar_timestamps: np.ndarray
    map: MapLayers
    ego_trajectory: np.ndarray
    is_key_frame: np.ndarray
    sample_tokens: list[str] = field(default_factory=list)
    caption: Optional[dict] = None
    clip_id: str = ""

    def __post_init__(self) -> None:
        t, v = self.num_frames, self.num_views
        imgs = np.asarray(self.images)
        if imgs.ndim != 5 or not 1 <= imgs.shape[0] <= t or imgs.shape[1] != v or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
            raise ValueError(f"Clip.images must be (T_i <= T={t}, V={v}, H, W, 3) uint8, got {imgs.shape} {imgs.dtype}")
        for name, shape in (
            ("intrinsics", (v, 3, 3)),
            ("cam_to_ego", (v, 4, 4)),
            ("ego_to_global", (t, 4, 4)),
            ("ego_trajectory", (t, 3)),
            ("lidar_to_ego", (4, 4)),
            ("lidar_ego_to_global", (len(self.lidar), 4, 4)),
        ):
            setattr(self, name, _arr(getattr(self, name), shape, f"Clip.{name}"))
        for name, n in (("timestamps", t), ("lidar_timestamps", len(self.lidar))):
            setattr(self, name, _arr(getattr(self, name), (n,), f"Clip.{name}", dtype=np.int64))
        self.is_key_frame = _arr(self.is_key_frame, (t,), "Clip.is_key_frame", dtype=bool)
        if len(self.boxes) != t or len(self.poses) != t:
            raise ValueError(f"Clip.boxes and Clip.poses need one list per frame (T={t}), got {len(self.boxes)} and {len(self.poses)}")

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def num_views(self) -> int:
        return len(self.views)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the stored images."""
        return int(self.images.shape[3]), int(self.images.shape[2])
