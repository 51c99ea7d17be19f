"""Generate a whole scene chunk after chunk (the rollout of :mod:`generate.rollout`), model-agnostic.

A *chunk function* makes one clip's frames::

    chunk_fn(clip, given, seed) -> frames (v t h w 3) uint8

``clip`` is the :class:`Clip` of the chunk's frames (its layout, caption, cameras; its real images
are used only by modes that start from the data), ``given`` the frames ``(v f h w 3)`` uint8 the
chunk must continue (its first ``f`` frames: the previous chunk's last frames, or the real first
frames in first-frame mode) or None, and ``seed`` the chunk's own seed. :func:`generate_scene`
plans the chunks, feeds each the frames generated before it and assembles the scene's video; the
camera sampler (:mod:`generate.camera`) provides the chunk function for the DiT + VAE.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from tqdm import tqdm

from ..data.clips import ClipIndex
from ..data.nuscenes import NuScenesReader
from ..data.schema import Clip
from ..errors import ConfigError, DataError
from .rollout import Chunk, plan_rollout

__all__ = ["ChunkFn", "SceneVideo", "chunk_seed", "generate_scene", "frames_by_token"]

ChunkFn = Callable[[Clip, Optional[np.ndarray], int], np.ndarray]


@dataclass(frozen=True)
class SceneVideo:
    """A generated scene: ``frames`` (v n h w 3) uint8 over the reference camera's ``frame_tokens``
    (n sample_data tokens, 12 Hz); ``chunks`` the rollout; ``clips`` clip id -> (v t h w 3) frames
    of each chunk's window (slices of ``frames``)."""

    scene_token: str
    scene_name: str
    views: tuple[str, ...]
    frame_tokens: tuple[str, ...]
    frames: np.ndarray
    chunks: tuple[Chunk, ...]
    clips: dict[str, np.ndarray] = field(default_factory=dict)


def chunk_seed(seed: int, scene_name: str, chunk: int) -> int:
    """Seed of one chunk: a hash of (seed, scene, chunk index), so a scene's frames do not depend
    on which other scenes are generated or in which order."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{scene_name}/{chunk}".encode()).digest()[:8], "little") >> 1


def generate_scene(
    index: ClipIndex,
    scene_token: str,
    chunk_fn: ChunkFn,
    *,
    overlap_latents: int = 1,
    first_given: int = 0,
    seed: int = 0,
    bar: Optional[tqdm] = None,
) -> SceneVideo:
    """Generate every reference-camera frame of ``scene_token``.

    ``index`` must cut clips of the chunk length at every frame (``rate="camera"``,
    ``frame_stride=1``, ``window_stride=1``): chunk ``start`` is clip ``f"{scene}:{start:04d}"``.
    first_given: real frames given to the first chunk (first-frame mode; 0 = free). ``bar`` (a
    tqdm) is advanced by one per chunk.
    """
    spec = index.spec
    if spec.rate != "camera" or spec.frame_stride != 1 or spec.window_stride != 1:
        raise ConfigError(f"generate_scene needs clips at every camera frame (rate='camera', frame_stride=1, window_stride=1), got {spec}")
    reader = index.reader
    name = reader.scene_name(scene_token)
    tokens = tuple(reader.channel_tokens(scene_token, spec.views[0]))
    refs = {r.clip_id: r for r in index.refs if r.scene_token == scene_token}
    chunks = plan_rollout(len(tokens), spec.num_frames, overlap_latents, first_given)
    frames: Optional[np.ndarray] = None
    for i, c in enumerate(chunks):
        ref = refs.get(f"{name}:{c.start:04d}")
        if ref is None:
            raise DataError(f"no clip of scene {name} starts at frame {c.start} (the index was cut with another spec?)", reader.root)
        clip = index.load(ref)
        if i == 0:
            given = np.ascontiguousarray(np.moveaxis(clip.images[: c.given_frames], 0, 1)) if c.given_frames else None
        else:
            given = frames[:, c.start : c.start + c.given_frames]
        out = np.asarray(chunk_fn(clip, given, chunk_seed(seed, name, i)))
        v, t = len(spec.views), spec.num_frames
        if out.ndim != 5 or out.shape[:2] != (v, t) or out.shape[-1] != 3 or out.dtype != np.uint8:
            raise DataError(f"chunk function returned {out.shape} {out.dtype}, expected ({v}, {t}, h, w, 3) uint8", None, "chunk_fn")
        if frames is None:
            frames = np.zeros((v, len(tokens), *out.shape[2:]), dtype=np.uint8)
            if c.given_frames:  # first-frame mode: the given real frames are part of the video
                frames[:, : c.given_frames] = given
        frames[:, c.start + c.keep_from : c.start + t] = out[:, c.keep_from :]
        if bar is not None:
            bar.update(1)
    clips = {f"{name}:{c.start:04d}": frames[:, c.start : c.start + c.num_frames] for c in chunks}
    return SceneVideo(scene_token, name, tuple(spec.views), tokens, frames, tuple(chunks), clips)


def frames_by_token(reader: NuScenesReader, video: SceneVideo) -> dict[str, np.ndarray]:
    """Camera sample_data token -> generated image, for every frame of every view of the scene: each
    view's frame takes the generated frame of the reference-camera frame nearest in time (the
    views of a rig fire together; on real nuScenes they are up to ~40 ms apart)."""
    ref_times = np.array([reader.sample_data(t)["timestamp"] for t in video.frame_tokens], dtype=np.int64)
    out = {}
    for vi, view in enumerate(video.views):
        for tok in reader.channel_tokens(video.scene_token, view):
            j = int(np.argmin(np.abs(ref_times - reader.sample_data(tok)["timestamp"])))
            out[tok] = video.frames[vi, j]
    return out
