"""Clip sources for video evaluation: a directory of clips, or a nuScenes-format root.

Directory layout (generated clips, or reference clips exported the same way)::

    ROOT/
      <clip_id>/                 one folder per clip (any name; sorted order is the clip order)
        CAM_FRONT.mp4            one video per view, named by its camera channel ...
        CAM_FRONT_RIGHT.mp4
        ...
        CAM_BACK/                ... or a folder of frames per view: PNG/JPEG files whose
          000000.png             sorted names give the frame order
          000001.png

Every clip must hold every evaluated view; views may mix the two forms. A nuScenes-format root
(a folder with ``v1.0-*/scene.json``) is cut into clips with :class:`~genesis_drive.data.clips.ClipIndex`
(12 Hz camera rate, ``num_frames`` frames, a new clip every ``window_stride`` frames).

Sources yield ``(clip_id, frames)`` with frames ``(v, t, h, w, 3)`` uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import imageio.v2 as imageio
import numpy as np

from ..data.nuscenes import find_versions, read_image
from ..errors import DataError

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "ClipSource", "DirectoryClipSource", "NuScenesClipSource", "open_clip_source", "read_view"]

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")


class ClipSource(Protocol):
    views: tuple[str, ...]

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]: ...

    def describe(self) -> dict: ...


def read_view(path: Path, max_frames: int | None = None) -> np.ndarray:
    """Frames ``(t, h, w, 3)`` uint8 of one view: a video file or a folder of images."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise DataError(f"no frames ({'/'.join(IMAGE_EXTS)}) in the view folder", path)
        files = files[:max_frames] if max_frames else files
        frames = [read_image(p) for p in files]
    else:
        try:
            reader = imageio.get_reader(path)
        except (OSError, ValueError, RuntimeError) as e:
            raise DataError(f"cannot open video ({e})", path) from None
        frames = []
        with reader:
            for f in reader:
                frames.append(np.asarray(f)[..., :3])
                if max_frames and len(frames) >= max_frames:
                    break
        if not frames:
            raise DataError("video has no frames", path)
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise DataError(f"frames have different sizes {sorted(shapes)}", path)
    return np.stack(frames).astype(np.uint8, copy=False)


def _view_path(clip_dir: Path, view: str) -> Path | None:
    if (clip_dir / view).is_dir():
        return clip_dir / view
    for ext in VIDEO_EXTS:
        if (clip_dir / f"{view}{ext}").is_file():
            return clip_dir / f"{view}{ext}"
    return None


class DirectoryClipSource:
    """Clips stored as ``ROOT/<clip_id>/<VIEW>.mp4`` or ``ROOT/<clip_id>/<VIEW>/*.png`` (see module doc)."""

    def __init__(self, root: str | Path, views: tuple[str, ...], max_frames: int | None = None, max_clips: int | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("clip directory not found", self.root)
        self.views, self.max_frames = tuple(views), max_frames
        clip_dirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not clip_dirs:
            raise DataError("no clip folders; expected ROOT/<clip_id>/<VIEW>.mp4 or ROOT/<clip_id>/<VIEW>/*.png", self.root)
        self.clips: list[tuple[str, dict[str, Path]]] = []
        for d in clip_dirs[:max_clips] if max_clips else clip_dirs:
            paths = {v: _view_path(d, v) for v in self.views}
            missing = [v for v, p in paths.items() if p is None]
            if missing:
                raise DataError(f"clip lacks views {missing} (expected <VIEW>.mp4 or a <VIEW>/ frame folder)", d)
            self.clips.append((d.name, paths))

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for clip_id, paths in self.clips:
            views = [read_view(paths[v], self.max_frames) for v in self.views]
            t = min(len(v) for v in views)
            shapes = {v.shape[1:] for v in views}
            if len(shapes) != 1:
                raise DataError(f"views of clip {clip_id} have different frame sizes {sorted(shapes)}", self.root / clip_id)
            yield clip_id, np.stack([v[:t] for v in views])

    def describe(self) -> dict:
        return {"kind": "directory", "root": str(self.root.resolve()), "clips": len(self), "clip_ids": [c for c, _ in self.clips]}


class NuScenesClipSource:
    """Camera clips of a nuScenes-format root (any split the root's tables hold), via ClipIndex."""

    def __init__(self, root: str | Path, views: tuple[str, ...], num_frames: int, window_stride: int, frame_stride: int = 1,
                 version: str | None = None, max_clips: int | None = None):  # fmt: skip
        from ..data.clips import ClipIndex, ClipSpec
        from ..data.nuscenes import NuScenesReader

        self.root, self.views = Path(root), tuple(views)
        self.reader = NuScenesReader(root, version)
        spec = ClipSpec(num_frames=num_frames, frame_stride=frame_stride, window_stride=window_stride, rate="camera", views=self.views, lidar="none")
        self.index = ClipIndex(self.reader, spec)
        self.refs = self.index.refs[:max_clips] if max_clips else self.index.refs
        if not self.refs:
            raise DataError(f"no clip of {num_frames} frames (stride {frame_stride}) in any scene", self.root)

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for ref in self.refs:
            clip = self.index.load(ref)
            yield ref.clip_id, np.ascontiguousarray(clip.images.transpose(1, 0, 2, 3, 4))  # t v h w c -> v t h w c

    def describe(self) -> dict:
        return {"kind": "nuscenes", "root": str(self.root.resolve()), "version": self.reader.version, "clips": len(self),
                "window_stride": self.index.spec.window_stride, "clip_ids": [r.clip_id for r in self.refs]}  # fmt: skip


def open_clip_source(path: str | Path, views: tuple[str, ...], num_frames: int, window_stride: int, frame_stride: int = 1,
                     max_frames: int | None = None, max_clips: int | None = None,
                     version: str | None = None) -> DirectoryClipSource | NuScenesClipSource:  # fmt: skip
    """A nuScenes-format root when ``path`` holds ``v1.0-*/scene.json``, else a clip directory.

    num_frames, frame_stride, window_stride cut a nuScenes root into clips; max_frames caps the
    frames read per view of a clip directory.
    """
    if Path(path).is_dir() and find_versions(path):
        return NuScenesClipSource(path, views, num_frames, window_stride, frame_stride, version, max_clips)
    return DirectoryClipSource(path, views, max_frames=max_frames, max_clips=max_clips)
