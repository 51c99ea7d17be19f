"""Per-camera layout images: the map on the ground, 3D boxes and pedestrian skeletons.

Each view of a frame is rendered on a black canvas, back to front:

1. map polygons of the ego ground plane ``z = 0`` (``drivable_area``, ``walkway``,
   ``ped_crossing``), filled in :data:`MAP_COLORS`;
2. map lines on ``z = 0`` (``lane_divider``, ``road_divider``, ``road_edge``), stroked;
3. objects, far to near (distance from the camera centre to the box centre; painter's
   algorithm): each box's camera-facing faces filled in its class colour times a per-face shade
   (:data:`FACE_SHADES`: the front face, +length/2, is brightest), then its visible edges in the
   full class colour (``box_style="faces"``); or all 12 edges only (``box_style="edges"``).
   A pedestrian box that carries a :class:`HumanPose` (matched by ``instance_token``) is filled
   dimmed (:data:`POSE_BOX_SHADE`) without edges, and its COCO skeleton is drawn on top in the
   full class colour; a pose with no box is drawn alone at its own depth.

All geometry is clipped in the camera frame at the near plane (and at a frustum widened by one
image size on each side) before projection, so nothing behind a camera wraps into the image.
Lines are crisp (8-connected, no anti-aliasing) so that every pixel holds an exact palette colour.
Boxes whose category has no detection class are not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np

from ..data.schema import COCO_SKELETON, Box3D, Clip, HumanPose, MapLayers
from ..errors import ConfigError
from .colors import CLASS_COLORS, FACE_SHADES, MAP_COLORS, POSE_BOX_SHADE, class_color
from .frames import CameraModel, clip_cameras, frame_map
from .project import SHIFT, frustum_planes, project_polygon, project_segments

__all__ = [
    "CameraLayoutConfig",
    "CAMERA_LAYOUT_PRESETS",
    "BOX_FACES",
    "BOX_EDGES",
    "render_layout",
    "frame_layout",
    "clip_layout",
    "frame_detail_mask",
]

#: Faces of a box as indices into :meth:`Box3D.corners` (devkit order: 0-3 front face,
#: 4-7 back face, 0, 1, 4, 5 on top; 0, 3, 4, 7 on the left, +width/2).
BOX_FACES: dict[str, tuple[int, int, int, int]] = {
    "front": (0, 1, 2, 3),
    "back": (4, 5, 6, 7),
    "top": (0, 1, 5, 4),
    "bottom": (3, 2, 6, 7),
    "left": (0, 3, 7, 4),
    "right": (1, 2, 6, 5),
}
#: The 12 box edges as corner index pairs.
BOX_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7),
)  # fmt: skip

_MAP_POLYGONS = ("drivable_area", "walkway", "ped_crossing")
_MAP_LINES = ("lane_divider", "road_divider", "road_edge")


@dataclass(frozen=True)
class CameraLayoutConfig:
    """Camera layout rendering options.

    near: near clipping plane, metres in front of the camera.
    line_width: stroke width as a fraction of the image width (at least 1 pixel).
    box_style: "faces" (shaded camera-facing faces + edges) or "edges" (wireframe).
    map_polygons / map_lines: map layers drawn on the ground plane, in drawing order.
    skeletons: draw pedestrian skeletons of :class:`HumanPose` keypoints.
    """

    near: float = 0.1
    line_width: float = 0.004
    box_style: str = "faces"
    map_polygons: tuple[str, ...] = _MAP_POLYGONS
    map_lines: tuple[str, ...] = _MAP_LINES
    skeletons: bool = True

    def __post_init__(self) -> None:
        if self.box_style not in ("faces", "edges"):
            raise ConfigError(f"CameraLayoutConfig.box_style must be 'faces' or 'edges', got {self.box_style!r}")
        if not self.near > 0 or not self.line_width > 0:
            raise ConfigError(f"CameraLayoutConfig: near and line_width must be > 0, got {self.near}, {self.line_width}")
        for name, allowed in (("map_polygons", MapLayers.POLYGON_LAYERS), ("map_lines", MapLayers.LINE_LAYERS)):
            bad = [n for n in getattr(self, name) if n not in allowed]
            if bad:
                raise ConfigError(f"CameraLayoutConfig.{name}: unknown layer(s) {bad}; expected names from {allowed}")

    def thickness(self, width: int) -> int:
        """Stroke width in pixels for an image ``width`` pixels wide."""
        return max(1, int(round(self.line_width * width)))


#: Named camera layout configurations.
CAMERA_LAYOUT_PRESETS: dict[str, CameraLayoutConfig] = {
    "faces": CameraLayoutConfig(),
    "edges": CameraLayoutConfig(box_style="edges"),
}


def _ground(xy: np.ndarray) -> np.ndarray:
    """Map (K, 2) x, y metres -> ego points (K, 3) on the ground plane z = 0."""
    return np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)


def _draw_segments(canvas: np.ndarray, segs: np.ndarray, color: tuple[int, int, int], thickness: int) -> None:
    """Stroke segments (N, 2, 2) int32 fixed point; each as cv2.line would (a 2-point open polyline
    is drawn with the same end caps), in one call."""
    if len(segs):
        cv2.polylines(canvas, list(np.ascontiguousarray(segs, dtype=np.int32)), False, color, thickness, cv2.LINE_8, SHIFT)


def _draw_map(canvas: np.ndarray, camera: CameraModel, layers: MapLayers, config: CameraLayoutConfig) -> None:
    thickness = config.thickness(camera.width)
    for name in config.map_polygons:
        polys = [project_polygon(camera, _ground(g), config.near) for g in getattr(layers, name)]
        polys = [p for p in polys if p is not None]
        if polys:
            cv2.fillPoly(canvas, polys, MAP_COLORS[name], cv2.LINE_8, SHIFT)
    for name in config.map_lines:
        lines = [_ground(line) for line in getattr(layers, name)]
        if lines:
            p0 = np.concatenate([pts[:-1] for pts in lines])
            p1 = np.concatenate([pts[1:] for pts in lines])
            _draw_segments(canvas, project_segments(camera, p0, p1, config.near), MAP_COLORS[name], thickness)


def _out_of_view(points_cam: np.ndarray, planes: np.ndarray) -> bool:
    """True when every camera-frame point (K, 3) lies strictly outside one of the half-spaces
    (P, 4): then so does every face and edge they span (convex combinations), so clipping would
    leave nothing of them to draw."""
    return bool(((points_cam @ planes[:, :3].T + planes[:, 3]) < 0).all(axis=0).any())


def _draw_box(canvas: np.ndarray, camera: CameraModel, box: Box3D, config: CameraLayoutConfig, has_pose: bool,
              planes: np.ndarray) -> None:
    cls = box.detection_class
    corners = box.corners()  # (8, 3) ego
    cam = camera.to_camera(corners)
    if _out_of_view(cam, planes):
        return  # wholly behind the camera or beside its (widened) frustum: nothing would be drawn
    thickness = config.thickness(camera.width)
    color = CLASS_COLORS[cls]
    if config.box_style == "edges":
        ends = np.array(BOX_EDGES)
        _draw_segments(canvas, project_segments(camera, corners[ends[:, 0]], corners[ends[:, 1]], config.near), color, thickness)
        return
    center = cam.mean(axis=0)
    visible = []
    for name, idx in BOX_FACES.items():
        face_center = cam[list(idx)].mean(axis=0)
        # outward normal ~ face_center - center; the face looks at the camera (origin) when the
        # ray from the camera to the face opposes the normal
        if np.dot(face_center - center, face_center) < 0:
            visible.append((name, idx))
    for name, idx in visible:
        poly = project_polygon(camera, corners[list(idx)], config.near)
        if poly is not None:
            shade = POSE_BOX_SHADE if has_pose else FACE_SHADES[name]
            cv2.fillPoly(canvas, [poly], class_color(cls, shade), cv2.LINE_8, SHIFT)
    if has_pose:
        return
    edges = {tuple(sorted((idx[i], idx[(i + 1) % 4]))) for _, idx in visible for i in range(4)}
    if edges:
        ends = np.array(sorted(edges))
        _draw_segments(canvas, project_segments(camera, corners[ends[:, 0]], corners[ends[:, 1]], config.near), color, thickness)


def _draw_pose(canvas: np.ndarray, camera: CameraModel, pose: HumanPose, config: CameraLayoutConfig, planes: np.ndarray) -> None:
    bones = np.array([b for b in COCO_SKELETON if pose.visible[b[0]] and pose.visible[b[1]]])
    if len(bones) == 0:
        return
    kp = pose.keypoints
    if _out_of_view(camera.to_camera(kp), planes):
        return
    segs = project_segments(camera, kp[bones[:, 0]], kp[bones[:, 1]], config.near)
    _draw_segments(canvas, segs, CLASS_COLORS["pedestrian"], config.thickness(camera.width))


def render_layout(
    camera: CameraModel,
    boxes: Sequence[Box3D],
    poses: Sequence[HumanPose],
    map_layers: MapLayers,
    config: CameraLayoutConfig = CameraLayoutConfig(),
) -> np.ndarray:
    """The layout image (H, W, 3) uint8 RGB of one camera; boxes, poses and map in its ego frame."""
    canvas = np.zeros((camera.height, camera.width, 3), dtype=np.uint8)
    _draw_map(canvas, camera, map_layers, config)
    origin = camera.cam_to_ego[:3, 3]
    planes = frustum_planes(camera, config.near)  # for skipping what lies wholly out of view
    boxes = [b for b in boxes if b.detection_class is not None]
    poses = list(poses) if config.skeletons else []
    pose_of = {p.instance_token: p for p in poses if p.instance_token}
    ped_tokens = {b.instance_token for b in boxes if b.instance_token and b.detection_class == "pedestrian"}
    items: list[tuple[float, Box3D | HumanPose]] = [(float(np.linalg.norm(b.center - origin)), b) for b in boxes]
    items += [
        (float(np.linalg.norm(p.keypoints.mean(axis=0) - origin)), p)
        for p in poses
        if not p.instance_token or p.instance_token not in ped_tokens
    ]
    for _, obj in sorted(items, key=lambda it: -it[0]):  # far first
        if isinstance(obj, HumanPose):
            _draw_pose(canvas, camera, obj, config, planes)
            continue
        pose = pose_of.get(obj.instance_token) if obj.detection_class == "pedestrian" and obj.instance_token else None
        _draw_box(canvas, camera, obj, config, has_pose=pose is not None, planes=planes)
        if pose is not None:
            _draw_pose(canvas, camera, pose, config, planes)
    return canvas


def frame_layout(
    clip: Clip, t: int, config: CameraLayoutConfig = CameraLayoutConfig(), image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Layout images of every view of frame ``t``: (V, H, W, 3) uint8.

    ``image_size`` = (width, height) renders at another size than the clip's images (the
    intrinsics are rescaled); None keeps the clip's size.
    """
    layers = frame_map(clip, t)
    cams = clip_cameras(clip, image_size)
    return np.stack([render_layout(cam, clip.boxes[t], clip.poses[t], layers, config) for cam in cams])


def clip_layout(
    clip: Clip, config: CameraLayoutConfig = CameraLayoutConfig(), image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Layout video of the clip: (T, V, H, W, 3) uint8 (see :func:`frame_layout`)."""
    return np.stack([frame_layout(clip, t, config, image_size) for t in range(clip.num_frames)])


def frame_detail_mask(
    clip: Clip, t: int, config: CameraLayoutConfig = CameraLayoutConfig(), image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """(V, H, W) bool: the pixels of frame ``t``'s layout images (:func:`frame_layout`) that its
    lines, boxes and skeletons cover, i.e. everything but the filled map polygons (road, walkway,
    crossing areas): the thin and small things a generator most easily misses."""
    return frame_layout(clip, t, replace(config, map_polygons=()), image_size).any(axis=-1)
