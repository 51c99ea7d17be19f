"""LiDAR forecasting: future keyframe sweeps of a nuScenes-format root, written in the layout
``genesis-drive eval lidar`` reads.

For every keyframe of the chosen scenes that has ``horizon`` keyframes after it (6: 3 s at 2 Hz),
a forecast writes ``OUT/<sample_token>/<k>.pcd.bin`` for ``k = 1 .. horizon``: float32 ``x, y, z,
intensity, ring`` points in the LIDAR_TOP sensor frame of the keyframe ``k`` steps ahead, metres
(intensity 0: the AE models none). Modes (:data:`LIDAR_MODES`):

* ``forecast``: the LiDAR DiT samples the future BEV latents from noise (seeded per keyframe),
  conditioned on the keyframe's sweep moved into each future sensor frame, the future layout
  BEV, the keyframe's six real camera images lifted to BEV (the paper's "gt_img") and the box /
  ego tokens; ``drop`` removes condition groups at sampling (the paper's ablations: ``camera``,
  ``reference``); each latent is decoded by the LiDAR AE and rendered along the sensor's beams
  (:func:`models.lidar.sweep.decode_sweep`), beams whose drop probability exceeds 0.5 removed.
* ``copy-reference``: the baseline: the keyframe's own sweep moved by the known ego motion into
  each future sensor frame (no network).
* ``reconstruct``: the AE's ceiling: each true future sweep encoded and decoded (no DiT).

The beam model (ring elevations, azimuth bins) is estimated from the source root's sweeps
(:func:`models.lidar.beams.estimate_beams`). Each scene's forecasts are one part of ``OUT.parts/``
(:mod:`generate.shard`: resume, sharding; keyframe ``i`` of all chosen scenes is seeded ``seed *
1_000_003 + i`` in whichever shard makes it); OUT is merged from the parts into a temporary sibling
and renamed when complete, so a failure leaves nothing at OUT. Same seed, same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.atomic import atomic_dir, atomic_write_json
from ..data.clips import ClipIndex
from ..data.nuscenes import NuScenesReader
from ..errors import ConfigError, DataError
from ..layout.tokens import TokenConfig
from ..models.camera.vae import VideoVAE
from ..models.lidar.ae import LidarAE
from ..models.lidar.beams import BeamModel, estimate_beams
from ..models.lidar.dit import LIDAR_DIT_GROUPS, LidarDiT
from ..models.lidar.sweep import decode_sweep, write_pcd_bin
from ..diffusion.samplers import cfg_velocity, sample
from ..train.checkpoint import load_run_model, read_state
from ..train.tasks.camera_vae import CameraVAEConfig
from ..train.tasks.lidar_ae import LIDAR, LidarAERunConfig
from ..train.tasks.lidar_dit import ForecastEncoder, ForecastSamples, LidarDiTRunConfig, dit_conditions, move_points
from .checkpoints import TASK_OF, check_task, checkpoint_of
from .shard import Split, config_sha256, link_files, network_identity, run_parts, shard_scenes, source_identity

__all__ = ["LIDAR_MODES", "LidarNetworks", "load_lidar_networks", "beams_of_root", "Forecaster", "forecast_root"]

#: Modes of LiDAR generation.
LIDAR_MODES = ("forecast", "copy-reference", "reconstruct")


@dataclass
class LidarNetworks:
    """The LiDAR branch's networks for sampling (eval mode): the DiT (None when only the AE is
    needed), its run config, the AE, the camera VAE of the lift (None without camera features),
    and ``info`` per network (as ``load_run_model``)."""

    dit: LidarDiT | None
    dit_config: LidarDiTRunConfig | None
    ae: LidarAE
    vae: VideoVAE | None
    info: dict[str, dict]


def _check_frozen(dit_dir: Path, name: str, net_dir: Path, version: str) -> None:
    """DataError when the DiT checkpoint records another version of frozen network ``name``."""
    want = (read_state(checkpoint_of(dit_dir)).get("frozen") or {}).get(name)
    if want is not None and want != version:
        raise DataError(f"is not the {name} the LiDAR DiT was trained with (weights {version}, the DiT at {dit_dir} records "
                        f"{want})", net_dir, f"frozen.{name}")  # fmt: skip


def load_lidar_networks(dirs: dict[str, Path], device: str | torch.device = "cpu", *, need_dit: bool = True) -> LidarNetworks:
    """Load ``dirs["lidar_ae"]`` (and with ``need_dit`` ``dirs["lidar_dit"]`` and, when the DiT uses
    camera features, ``dirs["camera_vae"]``), checked: the right task in each folder and frozen
    networks of the versions the DiT was trained with."""
    device = torch.device(device)
    for name in ("lidar_ae", *(("lidar_dit",) if need_dit else ())):
        if name not in dirs:
            raise DataError(f"no {name}/ folder", None, "--checkpoints")
        check_task(dirs[name], TASK_OF[name])
    ae, _, ae_info = load_run_model(dirs["lidar_ae"], LidarAERunConfig, lambda c: LidarAE(c.model), task=TASK_OF["lidar_ae"])
    info = {"lidar_ae": ae_info}
    dit = dit_cfg = vae = None
    if need_dit:
        dit, dit_cfg, info["lidar_dit"] = load_run_model(dirs["lidar_dit"], LidarDiTRunConfig, lambda c: LidarDiT(c.model), task=TASK_OF["lidar_dit"])
        _check_frozen(dirs["lidar_dit"], "ae", dirs["lidar_ae"], ae.version)
        if dit_cfg.model.latent_channels != ae.cfg.latent_channels:
            raise DataError(f"the LiDAR AE has {ae.cfg.latent_channels} latent channels, the DiT was built for "
                            f"{dit_cfg.model.latent_channels}", dirs["lidar_ae"], "model.latent_channels")  # fmt: skip
        if dit_cfg.model.camera_channels:
            if "camera_vae" not in dirs:
                raise DataError("the LiDAR DiT uses camera features: the camera_vae/ folder is needed", None, "--checkpoints")
            vae, _, info["camera_vae"] = load_run_model(dirs["camera_vae"], CameraVAEConfig, lambda c: VideoVAE(c.model), task=TASK_OF["camera_vae"])
            _check_frozen(dirs["lidar_dit"], "vae", dirs["camera_vae"], vae.version)
            vae = vae.to(device).eval()
        dit = dit.to(device).eval()
    return LidarNetworks(dit, dit_cfg, ae.to(device).eval(), vae, info)


def beams_of_root(reader: NuScenesReader, sweeps: int = 8) -> BeamModel:
    """The LIDAR_TOP beam model estimated from ``sweeps`` keyframe sweeps spread over the root."""
    tokens = [t for s in reader.scene_tokens() for t in reader.sample_tokens(s)]
    if not tokens:
        raise DataError("the root has no samples", reader.root, LIDAR)
    picks = np.unique(np.linspace(0, len(tokens) - 1, min(sweeps, len(tokens))).round().astype(int))
    pts = []
    for i in picks:
        sd = reader.nusc.get("sample", tokens[i])["data"].get(LIDAR)
        if sd is None:
            raise DataError(f"sample {tokens[i]} has no {LIDAR} sweep", reader.root, LIDAR)
        pts.append(torch.from_numpy(np.ascontiguousarray(reader.lidar_sweep(sd).points, dtype=np.float32)))
    try:
        return estimate_beams(pts)
    except ValueError as e:
        raise DataError(f"cannot estimate the {LIDAR} beam model: {e}", reader.root, LIDAR) from e


class Forecaster:
    """Keyframe clip -> ``horizon`` point clouds ``(n, 5)`` (one per future keyframe) for a mode:
    ``forecaster(clip, seed)``; clip keyframe 0 is the present (its sweep the reference, its images
    the camera features), the clouds are in the LIDAR_TOP frames of keyframes ``1 .. horizon``.
    Shared by :func:`forecast_root` and the joint pipeline (:mod:`generate.joint`)."""

    def __init__(self, nets: LidarNetworks | None, beams: BeamModel | None, cfg: LidarDiTRunConfig, mode: str, steps: int,
                 guidance: float, drop: Sequence[str], device: torch.device):
        self.nets, self.beams, self.cfg, self.mode = nets, beams, cfg, mode
        self.steps, self.guidance, self.device = steps, guidance, device
        self.drop = tuple(drop)
        if nets is not None:
            self.samples = ForecastSamples(nets.ae.cfg.grid, cfg.bev_config(), TokenConfig(max_boxes=cfg.max_boxes), cfg.horizon)
            self.encoder = ForecastEncoder(nets.ae, nets.vae, cfg.lift)

    def __call__(self, clip, seed: int) -> list[np.ndarray]:
        if self.mode == "copy-reference":
            l2e = np.asarray(clip.lidar_to_ego, dtype=np.float64)
            s2g = [np.asarray(m, dtype=np.float64) @ l2e for m in clip.lidar_ego_to_global]
            return [move_points(clip.lidar[0], np.linalg.inv(s2g[k]) @ s2g[0]) for k in range(1, self.cfg.horizon + 1)]
        batch = {k: v[None].to(self.device) for k, v in self.samples(clip).items()}
        if self.mode == "reconstruct":
            with torch.no_grad():
                return self._decode(self.nets.ae.encode(batch["occupancy"][0].float()))
        enc = self.encoder.encode(batch)
        cond = dit_conditions(enc)
        dit = self.nets.dit
        ones = torch.ones(1, dtype=torch.bool, device=self.device)
        fixed = {g: ones for g in self.drop} or None
        uncond = {g: ones for g in LIDAR_DIT_GROUPS}
        v_cond = lambda x, t: dit(x, t, cond, drop=fixed).float()  # noqa: E731
        v_uncond = lambda x, t: dit(x, t, cond, drop=uncond).float()  # noqa: E731
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            z = sample(cfg_velocity(v_cond, v_uncond, self.guidance), tuple(enc["latents"].shape), steps=self.steps,
                       method="euler", shift=self.cfg.time.shift, generator=gen, device=self.device)  # fmt: skip
        return self._decode(z[0])

    def _decode(self, z: torch.Tensor) -> list[np.ndarray]:
        """Normalised latents ``(horizon c h w)`` -> point clouds rendered along the beams."""
        return [np.asarray(p.cpu() if isinstance(p, torch.Tensor) else p, dtype=np.float32)
                for p in decode_sweep(self.nets.ae, z, self.beams)]  # fmt: skip


def forecast_root(
    source: str | Path,
    out: str | Path,
    *,
    nets: LidarNetworks | None,
    mode: str = "forecast",
    scenes: Sequence[str] | None = None,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 1.0,
    drop: Sequence[str] = (),
    horizon: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    split: Split | None = None,
) -> Path:
    """Write the forecasts of ``mode`` for every keyframe of ``scenes`` (names; None = all) of
    ``source`` with ``horizon`` keyframes after it into ``out`` (module docstring); returns ``out``.
    ``drop``: condition groups removed at sampling (forecast mode). ``guidance``: classifier-free
    guidance scale against every condition dropped (1 = none). Each scene is one part in ``OUT.parts/``
    (:mod:`generate.shard`): a rerun skips complete parts; ``split`` shards the scenes over processes."""
    source, out = Path(source), Path(out)
    if mode not in LIDAR_MODES:
        raise ConfigError(f"--mode: unknown LiDAR mode {mode!r}; expected {' | '.join(LIDAR_MODES)}")
    bad = [g for g in drop if g not in LIDAR_DIT_GROUPS]
    if bad:
        raise ConfigError(f"--drop-conditions: unknown group(s) {bad}; expected names from {LIDAR_DIT_GROUPS}")
    if drop and mode != "forecast":
        raise ConfigError(f"--drop-conditions applies to --mode forecast only (got --mode {mode})")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError("already exists and is not empty (pass --overwrite to replace it)", out, "--out")
    reader = NuScenesReader(source)
    if LIDAR not in {c for s in reader.scene_tokens() for c in reader.channels(s)}:
        raise DataError(f"the source root has no {LIDAR} sweeps", source, LIDAR)
    if nets is None and mode != "copy-reference":
        raise ConfigError(f"--mode {mode} needs the LiDAR networks")
    if mode == "forecast" and (nets.dit is None or nets.dit_config is None):
        raise ConfigError("--mode forecast needs the LiDAR DiT")
    cfg = nets.dit_config if nets is not None and nets.dit_config is not None else LidarDiTRunConfig()
    if horizon is not None:
        cfg = replace(cfg, horizon=horizon, clips=replace(cfg.clips, num_frames=horizon + 1))
    names = {reader.scene_name(t): t for t in reader.scene_tokens()}
    if scenes:
        unknown = [s for s in scenes if s not in names]
        if unknown:
            raise DataError(f"unknown scene(s) {unknown}; the root has {sorted(names)[:6]}...", source, "--scenes")
    scene_names = list(scenes or sorted(names))
    chosen = [names[s] for s in scene_names]
    device = next(nets.ae.parameters()).device if nets is not None else torch.device("cpu")
    spec = cfg.clips.spec(cfg.views, cfg.image_size, lidar="keyframe")
    index = ClipIndex(reader, spec, scenes=chosen)
    if len(index) == 0:
        raise DataError(f"no keyframe of the chosen scenes has {cfg.horizon} keyframes after it", source, "--scenes")
    # keyframe i of the whole index is seeded seed * 1_000_003 + i, whichever process makes its scene
    keyframes_of = {n: [] for n in scene_names}
    scene_name_of = {tok: n for n, tok in names.items()}
    for i, ref in enumerate(index.refs):
        keyframes_of[scene_name_of[ref.scene_token]].append(i)
    beams = beams_of_root(reader) if mode != "copy-reference" else None
    forecaster = Forecaster(nets, beams, cfg, mode, steps, guidance, drop, device)
    fingerprint = {
        "task": "lidar", "mode": mode, "seed": seed, "steps": steps, "guidance": guidance, "drop": list(drop),
        "horizon": cfg.horizon, "scenes": scene_names, "config": config_sha256(cfg) if nets is not None else None,
        "networks": {k: network_identity(v) for k, v in (("lidar_ae", nets.ae), ("lidar_dit", nets.dit), ("camera_vae", nets.vae))
                     if v is not None} if nets is not None else {},
        "source": source_identity(source),
    }  # fmt: skip
    split = split or Split()
    mine = shard_scenes(scene_names, split.index, split.count) if split.generate else []
    t0 = time.perf_counter()
    with tqdm(total=sum(len(keyframes_of[n]) for n in mine), desc=f"lidar {mode}", unit="keyframe",
              disable=not progress or not mine) as bar:  # fmt: skip

        def skip(n: str) -> None:
            bar.total -= len(keyframes_of[n])
            bar.refresh()

        def make_part(n: str, tmp: Path) -> dict:
            for i in keyframes_of[n]:
                clip = index.load(i)
                token = clip.sample_tokens[0]
                for k, pts in enumerate(forecaster(clip, seed * 1_000_003 + i), start=1):
                    write_pcd_bin(tmp / token / f"{k}.pcd.bin", pts)
                bar.update(1)
            return {"keyframes": len(keyframes_of[n])}

        def merge(store, names_: Sequence[str]) -> None:
            with atomic_dir(out, "forecast") as tmp:
                for n in names_:
                    link_files(store.part(n), store.files(n), tmp)
                atomic_write_json(tmp / "forecast.json", {
                    "mode": mode, "seed": seed, "steps": steps, "guidance": guidance, "drop": list(drop), "horizon": cfg.horizon,
                    "keyframes": sum(store.marker(n)["rows"]["keyframes"] for n in names_), "source": str(source),
                    "networks": {k: {"checkpoint": str(v.get("checkpoint")), "step": v.get("step")}
                                 for k, v in (nets.info if nets else {}).items()},
                }, indent=1)  # fmt: skip

        run_parts(out, scene_names, fingerprint, make_part, merge, split=split, overwrite=overwrite, progress=progress,
                  on_skip=skip)  # fmt: skip
    if split.log:
        print(f"{split.name}: LiDAR {mode} of {len(mine)} scene(s) in {time.perf_counter() - t0:.1f} s")
    return out
