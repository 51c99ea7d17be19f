"""Camera view grids and atomic MP4 / PNG files.

The grid places the six nuScenes cameras in two rows as seen from the driver's seat::

    CAM_FRONT_LEFT  CAM_FRONT  CAM_FRONT_RIGHT
    CAM_BACK_LEFT   CAM_BACK   CAM_BACK_RIGHT

A clip holding only some of them leaves the other slots black.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import cv2
import imageio.v2 as imageio
import numpy as np
from tqdm import tqdm

from ..data.atomic import atomic_output, atomic_write_bytes

__all__ = ["GRID_LAYOUT", "view_grid", "write_png", "write_mp4", "write_grid_mp4"]

#: Rows of the camera grid (channel names).
GRID_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)


def _check_images(images: np.ndarray, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim != ndim or a.shape[-1] != 3 or a.dtype != np.uint8:
        dims = {4: "(V, H, W, 3)", 5: "(T, V, H, W, 3)", 3: "(H, W, 3)"}[ndim]
        raise ValueError(f"{name} must be {dims} uint8 RGB, got {a.shape} {a.dtype}")
    return a


def view_grid(images: np.ndarray, views: Sequence[str], labels: bool = True) -> np.ndarray:
    """Images (V, H, W, 3) uint8 of the channels ``views`` -> a (2H, 3W, 3) grid (:data:`GRID_LAYOUT`).

    ``labels`` writes each channel name in its top-left corner (only where tiles are big enough
    for a legible label: at least 180 pixels wide).
    """
    images = _check_images(images, "view_grid images", 4)
    if len(views) != len(images):
        raise ValueError(f"view_grid: {len(images)} images but {len(views)} view names")
    slots = {name: (r, c) for r, row in enumerate(GRID_LAYOUT) for c, name in enumerate(row)}
    unknown = [v for v in views if v not in slots]
    if unknown:
        raise ValueError(f"view_grid: unknown camera channel(s) {unknown}; expected names from {tuple(slots)}")
    _, h, w, _ = images.shape
    grid = np.zeros((len(GRID_LAYOUT) * h, len(GRID_LAYOUT[0]) * w, 3), dtype=np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    # the longest name spans at most 40 % of a tile; tiles too small for a legible label get none
    (text_w, text_h), _ = cv2.getTextSize(max(slots, key=len), font, 1.0, 1)
    scale = min(0.4 * w / text_w, 0.08 * h / text_h, 1.0)
    for name, img in zip(views, images):
        r, c = slots[name]
        tile = grid[r * h : (r + 1) * h, c * w : (c + 1) * w]
        tile[:] = img
        if labels and scale >= 0.25:
            org = (3, int(3 + text_h * scale))
            cv2.putText(tile, name, org, font, scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, name, org, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return grid


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as PNG, atomically."""
    image = _check_images(image, "write_png image", 3)
    buf = io.BytesIO()
    imageio.imwrite(buf, image, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad (H, W, 3) with black on the bottom / right to even H and W (yuv420p needs them)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 12.0, crf: int = 18, progress: bool = True) -> Path:
    """Write frames (T, H, W, 3) uint8 RGB as an H.264 MP4 (libx264, yuv420p), atomically.

    Odd sizes are padded by one black row / column. ``crf``: x264 constant rate factor
    (0 lossless .. 51 worst; 18 is visually near-lossless).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"write_mp4 frames must be (T>=1, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    if not fps > 0:
        raise ValueError(f"write_mp4 fps must be > 0, got {fps}")
    path = Path(path)
    with atomic_output(path, suffix=".mp4") as tmp:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
            macro_block_size=1, quality=None, ffmpeg_params=["-crf", str(crf)], ffmpeg_log_level="error",
        )  # fmt: skip
        with writer:
            for frame in tqdm(frames, desc=f"write {path.name}", unit="frame", disable=not progress, leave=False):
                writer.append_data(_even(frame))
    return path


def write_grid_mp4(path: str | Path, videos: np.ndarray, views: Sequence[str], fps: float = 12.0, labels: bool = True) -> Path:
    """Write a (T, V, H, W, 3) uint8 multi-view video as a 2 x 3 view-grid MP4 (see :func:`view_grid`)."""
    videos = _check_images(videos, "write_grid_mp4 videos", 5)
    return write_mp4(path, np.stack([view_grid(f, views, labels) for f in videos]), fps=fps)
