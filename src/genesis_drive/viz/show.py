"""Everything about one clip as files a person opens: videos, a BEV plot, a LiDAR overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.schema import Clip
from ..layout.camera import CameraLayoutConfig, clip_layout
from ..layout.frames import clip_cameras, lidar_in_frame
from .bev import plot_bev
from .overlay import draw_boxes, draw_lidar, draw_skeletons
from .video import view_grid, write_grid_mp4, write_png

__all__ = ["clip_fps", "write_clip_show"]


def clip_fps(clip: Clip) -> float:
    """Frame rate (Hz) from the clip's timestamps (median spacing); 12 Hz for a one-frame clip."""
    if clip.num_frames < 2:
        return 12.0
    dt = float(np.median(np.diff(clip.timestamps)))
    if dt <= 0:
        raise ValueError(f"clip {clip.clip_id!r}: timestamps must increase, got {clip.timestamps.tolist()}")
    return 1e6 / dt


def write_clip_show(clip: Clip, out_dir: str | Path) -> dict[str, Path]:
    """Write the clip's pictures into ``out_dir`` and return them by name:

    * ``views_boxes``: ``views_boxes.mp4``, the 2 x 3 camera grid over T frames with projected
      3D boxes and pedestrian skeletons;
    * ``bev``: ``bev.png``, the first LiDAR sweep in the frame-0 ego frame with frame-0 boxes and
      the map (without points when the clip carries no LiDAR);
    * ``lidar_on_images``: ``lidar_on_images.png``, the camera grid at frame 0 with the first
      sweep projected and coloured by depth (only when the clip carries LiDAR);
    * ``layout``: ``layout.mp4``, the camera layout video grid (:mod:`genesis_drive.layout.camera`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fps = clip_fps(clip)
    cams = clip_cameras(clip)
    files: dict[str, Path] = {}

    frames = np.empty_like(clip.images)
    for t in range(clip.num_frames):
        for v, cam in enumerate(cams):
            img = draw_boxes(clip.images[t, v], cam, clip.boxes[t])
            frames[t, v] = draw_skeletons(img, cam, clip.poses[t])
    files["views_boxes"] = write_grid_mp4(out / "views_boxes.mp4", frames, clip.views, fps=fps)

    points = lidar_in_frame(clip, 0, 0) if clip.lidar else None
    title = f"{clip.clip_id or clip.scene_token}: frame 0" + ("" if clip.lidar else " (no LiDAR in clip)")
    files["bev"] = plot_bev(out / "bev.png", points, clip.boxes[0], clip.map, title=title)

    if points is not None:
        overlays = np.stack([draw_lidar(clip.images[0, v], cam, points) for v, cam in enumerate(cams)])
        files["lidar_on_images"] = write_png(out / "lidar_on_images.png", view_grid(overlays, clip.views))

    layout = clip_layout(clip, CameraLayoutConfig())
    files["layout"] = write_grid_mp4(out / "layout.mp4", layout, clip.views, fps=fps)
    return files
