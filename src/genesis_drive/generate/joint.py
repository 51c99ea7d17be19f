"""Joint generation (`generate --modalities camera,lidar`): camera video and LiDAR sweeps of the same
layout, written as ONE nuScenes-format root.

Two stages, camera first (the paper's "gen_img" joint condition: the LiDAR branch sees the generated
video, never the real images):

1. **Camera.** Scene by scene, each scene one part of ``OUT.parts/`` (:mod:`generate.shard`): the
   camera job (:func:`generate.pipeline.camera_job`) generates every camera frame of the scene (mode
   free / first-frame / noisy-latent, the whole scene rolled out chunk after chunk,
   :mod:`generate.scene`) into a one-scene generated root in the part's temporary folder. So the
   whole scene's video exists before its LiDAR stage starts.
2. **LiDAR.** For each scene of ``n`` keyframes the LiDAR DiT (``horizon`` keyframes per sample, 6 =
   3 s at 2 Hz) generates every keyframe sweep after the first, window after window
   (:func:`plan_windows`): window ``w`` has the present keyframe ``s = w * horizon`` and generates
   ``s + 1 .. s + horizon``; when ``n - 1`` is not a multiple of the horizon the last window is
   moved back to ``s = n - 1 - horizon`` and keeps only the keyframes not generated yet. A window's
   condition is its clip of keyframes ``s .. s + horizon`` of the *source* (layout BEV, boxes, ego
   motion, calibration: what the camera branch was conditioned on too) whose camera images are
   replaced by the *generated* images of the one-scene root (the JPEGs OUT will hold, resized like
   the DiT's training images): the lift of keyframe ``s``'s six generated images. The reference
   sweep (``reference="real"``) is keyframe 0's real sweep for the first window and the sweep
   generated before at ``s`` for later windows (an autoregressive rollout, like the camera chunks);
   with ``reference="none"`` the reference group is dropped in every window (pure layout + video ->
   LiDAR; the reference tensor is then an empty sweep, so no real point enters). Each window is
   seeded by :func:`window_seed` (seed, scene, window): a scene's sweeps do not depend on the other
   scenes chosen.

Time alignment: nuScenes keyframes (2 Hz) are the instants where camera and LiDAR coincide (each
camera's keyframe image is the one nearest the LIDAR_TOP keyframe sweep, within ~40 ms on real
data); the 12 Hz generated video covers the whole scene, so keyframe ``s``'s generated camera images
(the camera ``sample_data`` of sample ``s``) are the video frames at the LiDAR keyframe's time.

Output ``OUT`` (the camera root of :mod:`generate.root`, with LiDAR changed):

* ``samples/LIDAR_TOP/*.pcd.bin`` of keyframes ``1 .. n-1``: the generated sweeps (float32 ``x, y,
  z, intensity, ring``, LIDAR_TOP sensor frame of their keyframe, metres; intensity 0: the AE
  models none; rings and azimuths from the beam model estimated on the source root);
* keyframe 0: the source's real sweep (the present the DiT forecasts from; a forecast cannot
  produce the present itself), marked ``generated: false``; with ``reference="none"`` no generated
  sweep saw it;
* non-keyframe LiDAR sweeps (``sweeps/LIDAR_TOP``, 20 Hz on nuScenes) are removed from
  ``sample_data`` (and their files and orphaned ``ego_pose`` rows): keeping the source's would put
  real LiDAR into a generated root (multi-sweep detectors aggregate them), and the DiT generates
  keyframes only. The LIDAR_TOP ``prev`` / ``next`` chain links the keyframes directly, so
  nuscenes-devkit loads the root and walks it;
* ``<version>/generation.json`` gains one row per LIDAR_TOP keyframe ``sample_data``
  (``generated`` false for keyframe 0); ``generated/lidar.json``: reference mode, seed, sampler,
  windows per scene, the networks.

Cameras, tokens, annotations, maps and RADAR files as in a camera-only generation (same seed: the
same camera bytes). A part keeps only the scene's generated files (camera JPEGs, MP4, clips, LiDAR
keyframe sweeps 1 .. n-1) and its rows (LiDAR ``generation`` rows, windows); when every part exists
OUT is merged from them into a hidden temporary sibling and renamed at the end
(:func:`data.atomic.replace_dir`): a failure leaves nothing at ``OUT``. Same seed, same bytes, however
the parts were made (one run, resumed, sharded).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.atomic import atomic_dir, atomic_write_json
from ..data.clips import ClipIndex
from ..data.nuscenes import NuScenesReader
from ..errors import ConfigError, DataError
from ..layout.conditions import ConditionTransform
from ..models.lidar.sweep import POINT_DIMS, write_pcd_bin
from ..train.tasks.lidar_ae import LIDAR
from .camera import MODES
from .checkpoints import CameraNetworks
from .lidar import Forecaster, LidarNetworks, beams_of_root
from .pipeline import camera_job
from .root import out_occupied, plan_generated_root, read_tables, write_root_base
from .shard import Split, config_sha256, link_files, network_identity, run_parts, shard_scenes

__all__ = ["LIDAR_REFERENCES", "LidarWindow", "plan_windows", "window_seed", "check_joint_networks", "generate_joint_root"]

#: What the LiDAR DiT's reference sweep is: "real" (keyframe 0's real sweep, then the generated
#: sweeps), "none" (the reference group dropped: layout + generated video only).
LIDAR_REFERENCES = ("real", "none")


@dataclass(frozen=True)
class LidarWindow:
    """One LiDAR DiT sample of a scene: present keyframe ``start`` (camera features, reference);
    it generates keyframes ``start + 1 .. start + horizon`` and writes those ``>= keep_from``."""

    start: int
    keep_from: int


def plan_windows(num_keyframes: int, horizon: int) -> tuple[LidarWindow, ...]:
    """Windows covering keyframes ``1 .. num_keyframes - 1`` exactly once (module docstring):
    starts ``0, horizon, 2 horizon, ...``, the last one moved back to ``num_keyframes - 1 - horizon``
    when the scene does not end on a window. DataError when the scene has fewer than ``horizon + 1``
    keyframes."""
    if horizon < 1:
        raise ConfigError(f"the LiDAR horizon must be >= 1 keyframes, got {horizon}")
    last = num_keyframes - 1
    if last < horizon:
        raise DataError(f"a scene of {num_keyframes} keyframes is too short: the LiDAR DiT generates {horizon} keyframes "
                        f"after a present one, so a scene needs >= {horizon + 1}")  # fmt: skip
    out, covered = [], 0
    for start in range(0, last - horizon + 1, horizon):
        out.append(LidarWindow(start, start + 1))
        covered = start + horizon
    if covered < last:
        out.append(LidarWindow(last - horizon, covered + 1))
    return tuple(out)


def window_seed(seed: int, scene_name: str, window: int) -> int:
    """Seed of one LiDAR window: a hash of (seed, scene, window), independent of the other scenes."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{scene_name}/lidar/{window}".encode()).digest()[:8], "little") >> 1


def check_joint_networks(camera: CameraNetworks, lidar: LidarNetworks) -> None:
    """DataError / ConfigError (one line) when the two branches cannot be chained: the LiDAR DiT must
    use camera features (the generated video is its joint condition), from the camera branch's own
    VAE (same weights version), on cameras the camera DiT generates, over consecutive keyframes."""
    if lidar.dit is None or lidar.dit_config is None:
        raise ConfigError("joint generation needs the LiDAR DiT (lidar_dit/)")
    cfg = lidar.dit_config
    where = lidar.info.get("lidar_dit", {}).get("checkpoint")
    if not cfg.model.camera_channels or lidar.vae is None:
        raise DataError("the LiDAR DiT uses no camera features (trained with vae=''): joint generation conditions the "
                        "LiDAR on the generated video; train it with vae=DIR/camera_vae", where, "model.camera_channels")  # fmt: skip
    if lidar.vae.version != camera.vae.version:
        raise DataError(f"the LiDAR DiT's camera VAE ({lidar.vae.version}) is not the camera branch's VAE "
                        f"({camera.vae.version}): both must be DIR/camera_vae", where, "frozen.vae")  # fmt: skip
    missing = [v for v in cfg.views if v not in camera.dit_config.views]
    if missing:
        raise DataError(f"the LiDAR DiT lifts cameras {missing} that the camera DiT does not generate "
                        f"({list(camera.dit_config.views)})", where, "views")  # fmt: skip
    if cfg.clips.frame_stride != 1:
        raise DataError(f"the LiDAR DiT was trained on every {cfg.clips.frame_stride}th keyframe; joint generation "
                        "rolls out over consecutive keyframes (frame_stride 1)", where, "clips.frame_stride")  # fmt: skip


def _read_tables(root: Path, version: str, names: Sequence[str]) -> dict[str, list[dict]]:
    return {n: json.loads((root / version / f"{n}.json").read_text()) for n in names}


def _write_table(root: Path, version: str, name: str, rows: list[dict]) -> None:
    (root / version / f"{name}.json").write_text(json.dumps(rows))


def _lidar_tables(root: Path, version: str, generated: dict[str, bool]) -> None:
    """Rewrite the tables of ``root`` (the temporary joint root) for its LiDAR: drop the non-keyframe
    LIDAR_TOP sample_data (files and now unreferenced ego poses too), link the keyframes' chain
    directly, add the LIDAR_TOP keyframe rows (``generated`` token -> bool) to ``generation``."""
    t = _read_tables(root, version, ("sample_data", "calibrated_sensor", "sensor", "ego_pose", "generation"))
    channel = {c["token"]: s["channel"] for c in t["calibrated_sensor"] for s in t["sensor"] if s["token"] == c["sensor_token"]}
    is_lidar = lambda sd: channel[sd["calibrated_sensor_token"]] == LIDAR  # noqa: E731
    dropped = [sd for sd in t["sample_data"] if is_lidar(sd) and not sd["is_key_frame"]]
    kept = [sd for sd in t["sample_data"] if not (is_lidar(sd) and not sd["is_key_frame"])]
    by_token = {sd["token"]: sd for sd in t["sample_data"]}
    keep_tokens = {sd["token"] for sd in kept}
    for sd in kept:
        if not is_lidar(sd):
            continue
        for link in ("prev", "next"):  # walk past the removed sweeps to the neighbouring keyframe
            tok = sd[link]
            while tok and tok not in keep_tokens:
                tok = by_token[tok][link] if tok in by_token else ""
            sd[link] = tok
    for sd in dropped:
        (root / sd["filename"]).unlink(missing_ok=True)
    used_ego = {sd["ego_pose_token"] for sd in kept}
    _write_table(root, version, "sample_data", kept)
    _write_table(root, version, "ego_pose", [e for e in t["ego_pose"] if e["token"] in used_ego])
    rows = t["generation"] + [{"sample_data_token": tok, "generated": g} for tok, g in generated.items()]
    _write_table(root, version, "generation", rows)
    lidar_dir = root / "sweeps" / LIDAR
    if lidar_dir.is_dir() and not any(lidar_dir.iterdir()):
        lidar_dir.rmdir()


def generate_joint_root(
    source: str | Path,
    out: str | Path,
    *,
    camera: CameraNetworks,
    lidar: LidarNetworks,
    mode: str = "free",
    strength: float | None = None,
    reference: str = "real",
    scenes: Sequence[str] | None = None,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 1.0,
    method: str = "euler",
    captions: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    split: Split | None = None,
    lidar_guidance: float | None = None,
) -> Path:
    """Generate the camera video (``mode``, ``strength``, ``method``, ``captions`` as
    :func:`generate.pipeline.generate_root`) and then the LiDAR keyframe sweeps from it (``reference``:
    :data:`LIDAR_REFERENCES`) of the chosen ``scenes`` (names; None = all) of ``source``; write ``out``
    (module docstring); returns ``out``. ``steps``: both samplers (the LiDAR one is Euler);
    ``guidance``: the camera DiT's scale; ``lidar_guidance``: the LiDAR DiT's (against every LiDAR
    condition dropped; None: ``guidance``). Every check runs before any sampling.
    Each scene (camera and LiDAR) is one part in ``OUT.parts/`` (:mod:`generate.shard`): a rerun
    skips complete parts; ``split`` shards the scenes over processes."""
    source, out = Path(source), Path(out)
    if reference not in LIDAR_REFERENCES:
        raise ConfigError(f"--lidar-reference: unknown {reference!r}; expected {' | '.join(LIDAR_REFERENCES)}")
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown camera mode {mode!r}; expected {' | '.join(MODES)}")
    if out_occupied(out) and not overwrite:
        raise DataError("already exists and is not empty (pass --overwrite to replace it)", out, "--out")
    check_joint_networks(camera, lidar)
    cfg = lidar.dit_config
    reader = NuScenesReader(source)
    by_name = {reader.scene_name(t): t for t in reader.scene_tokens()}
    names = list(scenes) if scenes else sorted(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise DataError(f"unknown scenes {unknown}; the root has {sorted(by_name)}", source, "--scenes")
    plans = {}
    for n in names:
        if LIDAR not in reader.channels(by_name[n]):
            raise DataError(f"scene {n} has no {LIDAR} sweeps (joint generation needs its keyframe sweeps)", source, LIDAR)
        try:
            plans[n] = plan_windows(len(reader.sample_tokens(by_name[n])), cfg.horizon)
        except DataError as e:
            raise DataError(f"scene {n}: {e}", source, "--scenes") from None
    ccfg = camera.dit_config
    job = camera_job(source, dit=camera.dit, codec=camera.vae, transform=ConditionTransform(ccfg.conditions), views=ccfg.views,
                     num_frames=ccfg.clips.num_frames, mode=mode, strength=strength, scenes=names, seed=seed, steps=steps,
                     guidance=guidance, method=method, shift=ccfg.time.shift, overlap_latents=1, captions=captions)  # fmt: skip
    device = next(lidar.ae.parameters()).device
    beams = beams_of_root(reader)
    lidar_guidance = guidance if lidar_guidance is None else lidar_guidance
    forecaster = Forecaster(lidar, beams, cfg, "forecast", steps, lidar_guidance, ("reference",) if reference == "none" else (), device)
    spec = replace(cfg.clips.spec(cfg.views, cfg.image_size, lidar="keyframe"), window_stride=1)
    src_index = ClipIndex(reader, spec, scenes=[by_name[n] for n in names])
    src_refs = {r.clip_id: r for r in src_index.refs}
    fingerprint = {**job.fingerprint, "task": "camera,lidar", "reference": reference, "lidar_horizon": cfg.horizon,
                   "lidar_guidance": lidar_guidance,
                   "lidar_config": config_sha256(cfg), "lidar_networks": {k: network_identity(v) for k, v in
                   (("lidar_ae", lidar.ae), ("lidar_dit", lidar.dit), ("lidar_camera_vae", lidar.vae))}}  # fmt: skip
    empty = np.zeros((0, POINT_DIMS), dtype=np.float32)
    source_tables = read_tables(source)  # read once for the one-scene roots
    split = split or Split()
    mine = shard_scenes(names, split.index, split.count) if split.generate else []

    def lidar_stage(n: str, tmp: Path, bar) -> dict:
        """The LiDAR windows of scene ``n`` from its generated video in the one-scene root ``tmp``;
        writes its generated keyframe sweeps there; returns its rows."""
        gen_index = ClipIndex(NuScenesReader(tmp), spec, scenes=[by_name[n]])
        gen_refs = {r.clip_id: r for r in gen_index.refs}
        samples = reader.sample_tokens(by_name[n])
        lidar_sd = [reader.nusc.get("sample", s)["data"][LIDAR] for s in samples]
        sweeps = {0: np.asarray(reader.lidar_sweep(lidar_sd[0]).points, dtype=np.float32)} if reference == "real" else {}
        for w, win in enumerate(plans[n]):
            cid = f"{n}:{win.start:04d}"
            clip, gclip = src_index.load(src_refs[cid]), gen_index.load(gen_refs[cid])
            if clip.sample_tokens != gclip.sample_tokens:  # the same tables: cannot happen unless the root changed
                raise DataError(f"clip {cid} covers other samples in the generated root", tmp, "sample")
            ref = sweeps[win.start] if reference == "real" else empty
            clip = replace(clip, images=gclip.images, intrinsics=gclip.intrinsics, lidar=[ref, *clip.lidar[1:]])
            clouds = forecaster(clip, window_seed(seed, n, w))
            for j, pts in enumerate(clouds):
                k = win.start + 1 + j
                if k >= win.keep_from:
                    sweeps[k] = pts
            bar.update(1)
        files = []
        for k, sd_tok in enumerate(lidar_sd[1:], start=1):
            files.append(reader.sample_data(sd_tok)["filename"])
            write_pcd_bin(tmp / files[-1], sweeps[k])  # replaces the hard link
        windows = [{"start": win.start, "keyframes": list(range(win.keep_from, win.start + cfg.horizon + 1))} for win in plans[n]]
        return {"generated": [[tok, k > 0] for k, tok in enumerate(lidar_sd)], "windows": windows, "files": files}

    with tqdm(total=sum(job.chunks_of[n] for n in mine), desc="generate", unit="chunk", disable=not progress or not mine) as cbar, \
         tqdm(total=sum(len(plans[n]) for n in mine), desc="lidar", unit="window", disable=not progress or not mine) as lbar:  # fmt: skip

        def skip(n: str) -> None:
            cbar.total -= job.chunks_of[n]
            lbar.total -= len(plans[n])
            cbar.refresh()
            lbar.refresh()

        def make_part(n: str, tmp: Path) -> dict:
            # a one-scene generated root in tmp (tables, generated JPEGs, the source's other sensor files), read by
            # the LiDAR stage; then everything but the scene's generated files is removed
            video = job.generate(n, cbar)
            scene_plan = plan_generated_root(source, [n], ccfg.views, ccfg.image_size, source_tables=source_tables)
            write_root_base(scene_plan, tmp)  # (the reader checks the maps too)
            keep = set(job.write(video, tmp, scene_plan))
            rows = lidar_stage(n, tmp, lbar)
            keep.update(rows.pop("files"))
            for p in sorted(tmp.rglob("*"), reverse=True):  # files first, then the folders they leave empty
                if p.is_file() and str(p.relative_to(tmp)) not in keep:
                    p.unlink()
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
            return rows

        def merge(store, names_: Sequence[str]) -> None:
            with atomic_dir(out, "joint") as tmp:
                write_root_base(job.plan, tmp)
                for n in names_:
                    link_files(store.part(n), store.files(n), tmp)  # the generated camera files and LiDAR keyframe sweeps
                rows = {n: store.marker(n)["rows"] for n in names_}
                _lidar_tables(tmp, job.plan.version, {tok: g for n in names_ for tok, g in rows[n]["generated"]})
                atomic_write_json(tmp / "generated" / "lidar.json", {
                    "reference": reference, "seed": seed, "steps": steps, "guidance": guidance,
                    "lidar_guidance": lidar_guidance, "sampler": "euler",
                    "horizon": cfg.horizon, "camera_mode": mode, "source": str(source),
                    "windows": {n: rows[n]["windows"] for n in names_},
                    "networks": {k: {"checkpoint": str(v.get("checkpoint")), "step": v.get("step")}
                                 for k, v in {**camera.info, **lidar.info}.items()},
                }, indent=1)  # fmt: skip

        return run_parts(out, names, fingerprint, make_part, merge, split=split, overwrite=overwrite, progress=progress,
                         on_skip=skip)  # fmt: skip
