"""Generate the camera views of a nuScenes-format root's scenes and write the generated root.

:func:`generate_root` ties the pieces together: clips of every frame of each chosen scene
(:class:`data.clips.ClipIndex`), their condition tensors (:class:`layout.conditions.ConditionTransform`),
the chunk rollout (:func:`generate.scene.generate_scene`, each chunk continuing the previous chunk's
last latent frame), one chunk sampled by :func:`generate.camera.generate_chunk`, and the output root
(:func:`generate.root.plan_generated_root`, :func:`generate.root.write_scene_files`). Each scene is made
as one part of ``OUT.parts/`` and OUT is merged from the parts (:mod:`generate.shard`: resume after a
kill, sharding over processes). A tqdm bar over the chunks shows progress and ETA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.atomic import atomic_dir
from ..data.clips import ClipIndex, ClipSpec
from ..data.nuscenes import NuScenesReader
from ..errors import ConfigError, DataError
from ..layout.conditions import ConditionTransform
from ..models.camera.dit import MultiViewDiT
from ..models.codec import LatentCodec
from .camera import MODES, check_drop, generate_chunk, mode_strength
from .captions import ManifestCaptions
from .rollout import plan_rollout
from .root import RootPlan, out_occupied, plan_generated_root, write_root_base, write_scene_files
from .scene import ChunkFn, SceneVideo, frames_by_token, generate_scene
from .shard import Split, config_sha256, link_files, network_identity, path_sha256, run_parts, shard_scenes, source_identity

__all__ = ["generate_root", "CameraJob", "camera_job", "camera_fingerprint"]


def camera_fingerprint(source: Path, *, dit: MultiViewDiT, codec: LatentCodec, transform: ConditionTransform, views: Sequence[str],
                       num_frames: int, mode: str, strength: float, seed: int, steps: int, guidance: float, method: str,
                       shift: float, overlap_latents: int, captions: str | Path | None, drop: Sequence[str] = ()) -> dict:  # fmt: skip
    """The fingerprint of a camera generation's parts (:mod:`generate.shard`): everything its bytes
    depend on (the strength when it is below 1 in noisy-latent or first-frame mode; the dropped
    condition groups when any)."""
    return {
        **({"drop": sorted(drop)} if drop else {}),
        "task": "camera", "mode": mode, "strength": strength if mode == "noisy-latent" or strength < 1.0 else None, "seed": seed, "steps": steps,
        "guidance": guidance, "sampler": method, "shift": shift, "overlap_latents": overlap_latents, "views": list(views),
        "num_frames": num_frames, "conditions": config_sha256(transform.config), "captions": path_sha256(captions),
        "networks": {"camera_dit": network_identity(dit), "camera_vae": network_identity(codec)},
        "source": source_identity(source),
    }  # fmt: skip


@dataclass
class CameraJob:
    """A checked camera generation of the chosen scenes ``names`` of ``reader``'s root, ready to
    make one scene at a time (:meth:`generate`, :meth:`write`): the rollout's chunk counts per scene,
    the plan of the generated root (:func:`generate.root.plan_generated_root`) and the parts'
    fingerprint. Built by :func:`camera_job`."""

    reader: NuScenesReader
    names: list[str]
    scene_tokens: dict[str, str]
    index: ClipIndex
    plan: RootPlan
    chunks_of: dict[str, int]
    chunk_fn: ChunkFn
    overlap_latents: int
    first_given: int
    seed: int
    fingerprint: dict

    def generate(self, name: str, bar: tqdm | None = None) -> SceneVideo:
        """Scene ``name``'s video, chunk after chunk (``bar`` advanced per chunk)."""
        return generate_scene(self.index, self.scene_tokens[name], self.chunk_fn, overlap_latents=self.overlap_latents,
                              first_given=self.first_given, seed=self.seed, bar=bar)  # fmt: skip

    def write(self, video: SceneVideo, root: Path, plan: RootPlan | None = None) -> list[str]:
        """Write a generated scene's files (JPEGs, MP4, clips) into ``root`` (:func:`write_scene_files`
        of ``plan``, default the job's); returns their paths relative to ``root``."""
        plan = plan or self.plan
        return write_scene_files(plan, root, video.scene_name, frames_by_token(self.reader, video), video.clips, progress=False)


def camera_job(
    source: Path,
    *,
    dit: MultiViewDiT,
    codec: LatentCodec,
    transform: ConditionTransform,
    views: Sequence[str],
    num_frames: int,
    mode: str,
    strength: float | None,
    scenes: Sequence[str] | None,
    seed: int,
    steps: int,
    guidance: float,
    method: str,
    shift: float,
    overlap_latents: int,
    captions: str | Path | None,
    drop: Sequence[str] = (),
) -> CameraJob:
    """Check a camera generation's options and the source (one-line DataError / ConfigError before
    any sampling) and prepare it; arguments as :func:`generate_root`."""
    check_drop(drop)
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown mode {mode!r}; expected {' | '.join(MODES)}")
    strength = mode_strength(mode, strength)
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
    chunks_of = {}
    for n in names:
        frames_n = len(reader.channel_tokens(by_name[n], views[0]))
        try:
            chunks_of[n] = len(plan_rollout(frames_n, num_frames, overlap_latents, first_given))
        except DataError as e:
            raise DataError(f"scene {n}: {e}", source, "--scenes") from None
    plan = plan_generated_root(source, names, views, size)
    fingerprint = camera_fingerprint(source, dit=dit, codec=codec, transform=transform, views=views, num_frames=num_frames,
                                     mode=mode, strength=strength, seed=seed, steps=steps, guidance=guidance, method=method,
                                     shift=shift, overlap_latents=overlap_latents, captions=captions, drop=drop)  # fmt: skip

    def chunk_fn(clip, given, chunk_seed):
        real = np.ascontiguousarray(np.moveaxis(clip.images, 0, 1)) if mode == "noisy-latent" else None
        chunk_mode = "noisy-latent" if mode == "noisy-latent" else ("first-frame" if given is not None else "free")
        cond = transform(clip, caption_of(clip) if caption_of is not None else None)
        return generate_chunk(dit, codec, cond, mode=chunk_mode, given_frames=given, real_frames=real,
                              strength=strength, steps=steps, guidance=guidance,
                              method=method, shift=shift, seed=chunk_seed, drop=drop)  # fmt: skip

    return CameraJob(reader, names, by_name, index, plan, chunks_of, chunk_fn, overlap_latents, first_given, seed, fingerprint)


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
    strength: float | None = None,
    scenes: Sequence[str] | None = None,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 1.0,
    method: str = "euler",
    shift: float = 1.0,
    overlap_latents: int = 1,
    captions: str | Path | None = None,
    drop: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
    split: Split | None = None,
) -> Path:
    """Generate every frame of the chosen ``scenes`` (names; default all) of ``source`` and write ``out``.

    The generated size is ``transform.config.image_size`` (the DiT's); ``num_frames`` (4k+1) frames
    per chunk. Modes: see :mod:`generate.camera`; in first-frame mode the real first frame of each
    scene is given, in noisy-latent mode every chunk starts from its real latents noised to
    ``strength`` (None: :data:`generate.camera.DEFAULT_STRENGTH`); in first-frame mode a strength
    below 1 starts every chunk from its given frame held still, noised to it (FrameInit, see
    :mod:`generate.camera`; None: :data:`generate.camera.DEFAULT_FIRST_FRAME_STRENGTH`). captions: a
    DataCrafter manifest of ``source`` with embeddings; each chunk gets the global caption embedding
    of its best-overlapping kept clip (:class:`generate.captions.ManifestCaptions`);
    None: no caption (the DiT's caption-dropped condition). drop: condition groups left out at
    sampling (:func:`generate.camera.sample_latents`; ablations). Nothing is left at ``out`` on failure.

    Each scene is one part in ``OUT.parts/`` (:mod:`generate.shard`): a rerun skips the scenes whose
    part is complete; ``split`` (default: every scene, then the merge) shards the scenes over processes.
    """
    source, out = Path(source), Path(out)
    if out_occupied(out) and not overwrite:
        raise DataError("already exists and is not empty (pass --overwrite to replace it)", out, "--out")
    job = camera_job(source, dit=dit, codec=codec, transform=transform, views=views, num_frames=num_frames, mode=mode,
                     strength=strength, scenes=scenes, seed=seed, steps=steps, guidance=guidance, method=method, shift=shift,
                     overlap_latents=overlap_latents, captions=captions, drop=drop)  # fmt: skip
    split = split or Split()
    mine = shard_scenes(job.names, split.index, split.count) if split.generate else []
    with tqdm(total=sum(job.chunks_of[n] for n in mine), desc="generate", unit="chunk", disable=not progress or not mine) as bar:

        def skip(n: str) -> None:
            bar.total -= job.chunks_of[n]
            bar.refresh()

        def make_part(n: str, tmp: Path) -> dict:
            job.write(job.generate(n, bar), tmp)
            return {}

        def merge(store, names: Sequence[str]) -> None:
            with atomic_dir(out) as tmp:
                write_root_base(job.plan, tmp)
                for n in names:
                    link_files(store.part(n), store.files(n), tmp)

        return run_parts(out, job.names, job.fingerprint, make_part, merge, split=split, overwrite=overwrite, progress=progress,
                         on_skip=skip)  # fmt: skip
