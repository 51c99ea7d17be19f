"""Generate the camera views of a nuScenes-format root's scenes and write the generated root.

:func:`generate_root` ties the pieces together: clips of every frame of each chosen scene
(:class:`data.clips.ClipIndex`), their condition tensors (:class:`layout.conditions.ConditionTransform`),
the chunk rollout (:func:`generate.scene.generate_scene`, each chunk continuing the previous chunk's
last latent frame), one chunk sampled by :func:`generate.camera.generate_chunk`, and the output root
(:func:`generate.root.write_generated_root`). A tqdm bar over the chunks shows progress and ETA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.clips import ClipIndex, ClipSpec
from ..data.nuscenes import NuScenesReader
from ..errors import ConfigError, DataError
from ..layout.conditions import ConditionTransform
from ..models.camera.dit import MultiViewDiT
from ..models.codec import LatentCodec
from .camera import MODES, generate_chunk
from .captions import ManifestCaptions
from .rollout import plan_rollout
from .root import out_occupied, write_generated_root
from .scene import frames_by_token, generate_scene

__all__ = ["generate_root"]


def generate_root(
    source: str | Path,
    out: str | Path,
    *,
    dit: MultiViewDiT,
    codec: LatentCodec,
    transform: ConditionTransform,
    views: Sequence[str],
    num_frames: int,
    mode: str = "free",
    strength: float = 0.6,
    scenes: Sequence[str] | None = None,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 1.0,
    method: str = "euler",
    shift: float = 1.0,
    overlap_latents: int = 1,
    captions: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate every frame of the chosen ``scenes`` (names; default all) of ``source`` and write ``out``.

    The generated size is ``transform.config.image_size`` (the DiT's); ``num_frames`` (4k+1) frames
    per chunk. Modes: see :mod:`generate.camera`; in first-frame mode the real first frame of each
    scene is given, in noisy-latent mode every chunk starts from its real latents noised to
    ``strength``. captions: a DataCrafter manifest of ``source`` with embeddings; each chunk gets the
    global caption embedding of its best-overlapping kept clip (:class:`generate.captions.ManifestCaptions`);
    None: no caption (the DiT's caption-dropped condition). Nothing is left at ``out`` on failure.
    """
    source, out = Path(source), Path(out)
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown mode {mode!r}; expected {' | '.join(MODES)}")
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"--strength must be in [0, 1], got {strength}")
    if out_occupied(out) and not overwrite:
        raise DataError("already exists and is not empty (pass --overwrite to replace it)", out, "--out")
    size = transform.config.image_size
    if size is None:
        raise ConfigError("the condition transform must fix image_size (the generated size)")
    reader = NuScenesReader(source)
    by_name = {reader.scene_name(t): t for t in reader.scene_tokens()}
    names = list(scenes) if scenes else list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise DataError(f"unknown scenes {unknown}; the root has {sorted(by_name)}", source, "--scenes")
    spec = ClipSpec(num_frames=num_frames, window_stride=1, views=tuple(views), image_size=size, lidar="none")
    index = ClipIndex(reader, spec, scenes=[by_name[n] for n in names])  # DataError: a scene lacks a camera
    caption_of = ManifestCaptions(captions, reader, [by_name[n] for n in names]) if captions is not None else None
    first_given = 1 if mode == "first-frame" else 0
    total = 0
    for n in names:
        frames_n = len(reader.channel_tokens(by_name[n], views[0]))
        try:
            total += len(plan_rollout(frames_n, num_frames, overlap_latents, first_given))
        except DataError as e:
            raise DataError(f"scene {n}: {e}", source, "--scenes") from None

    def chunk_fn(clip, given, chunk_seed):
        real = np.ascontiguousarray(np.moveaxis(clip.images, 0, 1)) if mode == "noisy-latent" else None
        chunk_mode = "noisy-latent" if mode == "noisy-latent" else ("first-frame" if given is not None else "free")
        cond = transform(clip, caption_of(clip) if caption_of is not None else None)
        return generate_chunk(dit, codec, cond, mode=chunk_mode, given_frames=given, real_frames=real,
                              strength=strength, steps=steps, guidance=guidance,
                              method=method, shift=shift, seed=chunk_seed)  # fmt: skip

    frames, clips = {}, {}
    with tqdm(total=total, desc="generate", unit="chunk", disable=not progress) as bar:
        for n in names:
            video = generate_scene(index, by_name[n], chunk_fn, overlap_latents=overlap_latents, first_given=first_given,
                                   seed=seed, bar=bar)  # fmt: skip
            frames.update(frames_by_token(reader, video))
            clips.update(video.clips)
    return write_generated_root(source, out, names, views, frames, size, clips=clips, overwrite=overwrite, progress=progress)
