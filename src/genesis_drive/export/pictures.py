"""Pictures and videos of one scene of a nuScenes-format root, read through :class:`NuScenesReader`.

* :func:`keyframe_points_ego`: the keyframe LiDAR sweep of a sample in its ego frame;
* :func:`write_bev` / :func:`write_lidar_on_images`: one keyframe's BEV plot and its LiDAR points
  projected onto the camera grid (drawn by :mod:`genesis_drive.viz`); :func:`lidar_on_images`:
  any points (e.g. a generated sweep) projected onto some of a keyframe's cameras;
* :func:`grid_frames` / :func:`write_scene_video`: the 2 x 3 camera grid video of a scene at the
  rate of its reference camera, the other cameras taken at their nearest timestamps; streamed
  frame by frame (a 20 s nuScenes scene does not fit in memory at full size).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

from ..data.atomic import atomic_output
from ..data.nuscenes import NuScenesReader
from ..data.schema import CAMERA_CHANNELS, LIDAR_CHANNEL
from ..errors import DataError
from ..layout.frames import CameraModel
from ..viz.bev import plot_bev
from ..viz.overlay import draw_lidar
from ..viz.video import view_grid, write_png

__all__ = ["scene_cameras", "keyframe_points_ego", "write_bev", "lidar_on_images", "write_lidar_on_images", "grid_frames", "write_scene_video"]


def scene_cameras(reader: NuScenesReader, scene_token: str) -> list[str]:
    """The scene's camera channels in :data:`CAMERA_CHANNELS` order."""
    present = set(reader.channels(scene_token))
    cams = [c for c in CAMERA_CHANNELS if c in present]
    if not cams:
        raise DataError(f"scene {reader.scene_name(scene_token)} has no camera channel", reader.root, "sample.data")
    return cams


def _sample_data(reader: NuScenesReader, sample_token: str, channel: str) -> str:
    data = reader.nusc.get("sample", sample_token)["data"]
    if channel not in data:
        raise DataError(f"sample {sample_token} has no {channel} data", reader.root, "sample.data")
    return data[channel]


def keyframe_points_ego(reader: NuScenesReader, sample_token: str):
    """``(points, ego_to_global)``: the sample's LIDAR_TOP sweep (N, 5) float64 ``x, y, z`` in the
    sweep's ego frame (metres), intensity, ring; and that ego frame's pose in the global frame."""
    sweep = reader.lidar_sweep(_sample_data(reader, sample_token, LIDAR_CHANNEL))
    pts = np.asarray(sweep.points, dtype=np.float64).copy()
    pts[:, :3] = sweep.sensor_to_ego.apply(pts[:, :3])
    return pts, sweep.ego_to_global


def write_bev(reader: NuScenesReader, scene_token: str, sample_token: str, path: str | Path, extent: float = 50.0) -> Path:
    """The BEV PNG of one keyframe: LiDAR, boxes and map in the ego frame of its LiDAR sweep."""
    points, ego = keyframe_points_ego(reader, sample_token)
    inv = ego.inverse()
    boxes = [b.transform(inv) for b in reader.boxes(sample_token)]
    location = reader.scene_location(scene_token)
    layers = reader.map_layers(location) if reader.has_map(location) else None
    if layers is not None:
        layers = layers.to_frame(ego).crop(np.zeros(2), extent * 1.5)
    ts = reader.nusc.get("sample", sample_token)["timestamp"]
    return plot_bev(path, points, boxes, layers, extent, title=f"{reader.scene_name(scene_token)} @ {ts} us")


def lidar_on_images(reader: NuScenesReader, sample_token: str, channels: list[str] | tuple[str, ...],
                    global_points: np.ndarray | None = None, max_depth: float = 60.0) -> list[np.ndarray]:
    """The keyframe's images of ``channels`` (each ``h w 3`` uint8) with LiDAR points projected and
    coloured by depth (``max_depth`` metres at the far end of the colour map). ``global_points``
    (N, >= 3) are ``x, y, z`` in the global frame (metres); None takes the sample's own LIDAR_TOP
    sweep. Points go from the global frame into each camera's own ego frame (cameras and LiDAR
    fire at slightly different times)."""
    if global_points is None:
        points, lidar_ego = keyframe_points_ego(reader, sample_token)
        global_points = lidar_ego.apply(points[:, :3])
    global_points = np.asarray(global_points, dtype=np.float64)[:, :3]
    images = []
    for ch in channels:
        frame = reader.camera_frame(_sample_data(reader, sample_token, ch))
        h, w = frame.image.shape[:2]
        model = CameraModel(ch, frame.intrinsics, frame.sensor_to_ego.matrix(), w, h)
        images.append(draw_lidar(frame.image, model, frame.ego_to_global.inverse().apply(global_points), max_depth=max_depth))
    return images


def write_lidar_on_images(reader: NuScenesReader, scene_token: str, sample_token: str, path: str | Path, max_depth: float = 60.0) -> Path:
    """The camera grid PNG of one keyframe with its LiDAR sweep projected and coloured by depth
    (:func:`lidar_on_images` of every camera of the scene)."""
    cams = scene_cameras(reader, scene_token)
    images = lidar_on_images(reader, sample_token, cams, max_depth=max_depth)
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(
            f"cameras of sample {sample_token} differ in image size {sorted(shapes)}; a grid needs one size", reader.root, "sample_data.width"
        )
    return write_png(path, view_grid(np.stack(images), cams))


def _nearest(times: np.ndarray, t: int) -> int:
    i = int(np.searchsorted(times, t))
    if i == 0:
        return 0
    if i == len(times):
        return len(times) - 1
    return i if times[i] - t < t - times[i - 1] else i - 1


def grid_frames(reader: NuScenesReader, scene_token: str, tile_width: int = 640) -> tuple[int, float, Iterator[np.ndarray]]:
    """``(num_frames, fps, frames)``: the scene's camera grid, one (2h, 3w, 3) uint8 frame per
    image of the reference camera (CAM_FRONT when present), each tile resized to ``tile_width``
    pixels wide (aspect kept; no resize when the images are narrower)."""
    cams = scene_cameras(reader, scene_token)
    tokens = {c: reader.channel_tokens(scene_token, c) for c in cams}
    times = {c: np.array([reader.sample_data(t)["timestamp"] for t in tokens[c]]) for c in cams}
    ref = times[cams[0]]
    fps = 1e6 / float(np.median(np.diff(ref))) if len(ref) > 1 else 12.0

    def frames() -> Iterator[np.ndarray]:
        for t in ref:
            tiles = []
            for c in cams:
                img = reader.camera_frame(tokens[c][_nearest(times[c], int(t))]).image
                if img.shape[1] > tile_width:
                    h = max(2, round(img.shape[0] * tile_width / img.shape[1]))
                    img = cv2.resize(img, (tile_width, h), interpolation=cv2.INTER_AREA)
                tiles.append(img)
            yield view_grid(np.stack(tiles), cams)

    return len(ref), fps, frames()


def write_scene_video(reader: NuScenesReader, scene_token: str, path: str | Path, tile_width: int = 640, crf: int = 20) -> Path:
    """The scene's camera grid (:func:`grid_frames`) as an H.264 MP4 (libx264, yuv420p, the
    ``moov`` index first so browsers start playing at once), atomically."""
    _, fps, frames = grid_frames(reader, scene_token, tile_width)
    path = Path(path)
    with atomic_output(path, suffix=".mp4") as tmp:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1,
            quality=None, ffmpeg_params=["-crf", str(crf), "-movflags", "+faststart"], ffmpeg_log_level="error",
        )  # fmt: skip
        with writer:
            for frame in frames:
                h, w = frame.shape[:2]
                writer.append_data(np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0))))
    return path
