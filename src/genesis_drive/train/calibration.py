"""Latent calibration of a trained codec run (any :class:`~genesis_drive.models.codec.LatentCodec`
task), so the normalised latents a DiT trains on have zero mean and unit variance.

:func:`calibrate_codec` is the shared step: it measures the raw latents' mean / std on training
inputs and writes the run's EMA weights as a checkpoint directory with ``model.shift_factor =
mean`` and ``model.scaling_factor = 1 / std``. One function per codec task gives it its inputs and
adds its own steps:

* :func:`calibrate_camera_vae` (``camera-vae``): up to ``clips`` evenly spread non-overlapping
  clips of the run's training scenes, all views;
* :func:`calibrate_lidar_ae` (``lidar-ae``): up to ``sweeps`` evenly spread training sweeps,
  voxelised to the AE's grid, and the LiDAR-specific step :func:`tune_drop_threshold`
  (``model.drop_threshold`` chosen on training sweeps by Chamfer).

Command line: ``genesis-drive calibrate camera-vae|lidar-ae RUN --data ROOT --out DIR``
(:mod:`genesis_drive.train.cli`; docs/camera.md, docs/lidar.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.clips import ClipIndex
from ..data.nuscenes import NuScenesReader
from ..errors import ConfigError, DataError
from ..data.chamfer import chamfer_distance, filter_points
from ..models.camera.vae import VideoVAE
from ..models.codec import LatentCodec, LatentStats, latent_statistics
from ..models.lidar.ae import LidarAE
from ..models.lidar.beams import BeamModel, estimate_beams
from ..models.lidar.sweep import reconstruct_beams
from ..models.lidar.voxel import voxelize
from .checkpoint import export_checkpoint, load_run_model
from .tasks import camera_vae, lidar_ae
from .tasks.clip_task import scene_split, spread

__all__ = ["DROP_THRESHOLDS", "calibrate_camera_vae", "calibrate_codec", "calibrate_lidar_ae", "tune_drop_threshold"]

#: Drop thresholds the LiDAR AE calibration chooses from.
DROP_THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)


def calibrate_codec(run: str | Path, data_root: str | Path, out: str | Path, *,
                    load: Callable[[Path], tuple[LatentCodec, Any, dict]],
                    inputs: Callable[[Any], tuple[int, Iterable[torch.Tensor]]],
                    statistics: Callable[[LatentCodec, Iterable[torch.Tensor]], LatentStats] = latent_statistics,
                    unit: str = "clip", progress: bool = True, model_updates: dict | None = None,
                    extra_record: dict | None = None) -> dict[str, float]:
    """Measure a trained codec's raw-latent statistics and write it, calibrated, as the checkpoint
    directory ``out``.

    ``load(run)`` gives ``(codec, run config, info)`` (:func:`~genesis_drive.train.checkpoint.load_run_model`,
    EMA weights); ``inputs(run config)`` gives ``(count, iterator of codec inputs)``;
    ``statistics(codec, inputs)`` (default :func:`~genesis_drive.models.codec.latent_statistics`:
    mean / std of ``encode_raw`` over every element, float64) measures them. ``out`` holds the
    source checkpoint's EMA weights with ``model.shift_factor = mean`` and ``model.scaling_factor =
    1 / std`` (so the normalised latents have zero mean and unit variance on these inputs) and the
    record under ``latent_statistics`` in its ``state.json`` (with the source checkpoint and
    ``data_root``). ``model_updates`` are further ``model.*`` config values written with them (e.g. a
    tuned decision threshold), ``extra_record`` further entries of the record. Returns the record:
    ``mean``, ``std``, ``count`` (latent elements), ``<unit>s`` (inputs measured) and ``extra_record``."""
    from tqdm import tqdm

    codec, cfg, info = load(Path(run))
    count, it = inputs(cfg)
    with torch.no_grad():  # the inputs are produced lazily inside the statistics
        stats = statistics(codec, tqdm(it, total=count, desc="latent statistics", unit=unit, disable=not progress))
    record = {"mean": stats.mean, "std": stats.std, "count": stats.count, f"{unit}s": count, **(extra_record or {})}
    updates = {"shift_factor": stats.mean, "scaling_factor": 1.0 / stats.std, **(model_updates or {})}
    export_checkpoint(info["checkpoint"], out, config_updates={"model": updates},
                      extra_state={"latent_statistics": {**record, "source": info["checkpoint"], "data_root": str(data_root)}})  # fmt: skip
    return record


def _training_index(data_root: str | Path, cfg: Any, spec: Any, what: str, field: str | None = None) -> ClipIndex:
    """Clips ``spec`` of the training scenes of ``data_root`` (all but the run's last
    ``val_scenes``, no manifest filter); DataError naming ``what`` when there are none."""
    reader = NuScenesReader(data_root)
    train, _ = scene_split(reader, cfg.val_scenes)
    index = ClipIndex(reader, spec, scenes=train)
    if len(index) == 0:
        raise DataError(f"no {what} in the training scenes to calibrate on", data_root, field)
    return index


# ----------------------------------------------------------------------------- camera VAE


def calibrate_camera_vae(run: str | Path, data_root: str | Path, out: str | Path, *, clips: int = 64,
                         progress: bool = True) -> dict[str, float]:
    """Calibrate a trained ``camera-vae`` run (:func:`calibrate_codec`): raw latents (posterior
    means) of up to ``clips`` evenly spread non-overlapping clips of the run's *training* scenes of
    ``data_root`` (all views). Returns the record (``mean``, ``std``, ``count``, ``clips``)."""
    if clips < 1:
        raise ConfigError(f"clips must be >= 1, got {clips}")

    def inputs(cfg: camera_vae.CameraVAEConfig) -> tuple[int, Iterable[torch.Tensor]]:
        index = _training_index(data_root, cfg, camera_vae.clip_spec_of(cfg, non_overlapping=True),
                                f"clips of {cfg.clips.num_frames} frames")
        picks = spread(len(index), clips)
        videos = camera_vae.VideoSamples()
        return len(picks), (camera_vae.to_videos(videos(index.load(i))["video"][None]) for i in picks)

    load = lambda p: load_run_model(p, camera_vae.CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")  # noqa: E731
    return calibrate_codec(run, data_root, out, load=load, inputs=inputs, unit="clip", progress=progress)


# ----------------------------------------------------------------------------- LiDAR AE


@torch.no_grad()
def tune_drop_threshold(model: LidarAE, sweeps: Sequence[torch.Tensor], beams: BeamModel,
                        candidates: Sequence[float] = DROP_THRESHOLDS, chunk: int = 4096) -> tuple[float, dict[float, float]]:
    """The drop threshold of ``candidates`` whose reconstructions of ``sweeps`` (``(n, >= 3)``
    sensor-frame points; training sweeps, never held-out ones) have the lowest mean Chamfer (m^2,
    the region of :func:`~genesis_drive.train.tasks.lidar_ae.evaluate_sweeps`), and the mean Chamfer
    of every candidate. The drop head is trained on a class balance of its own
    (``rays.returned_fraction``), so its 0.5 is not the decision that places the points best."""
    if not sweeps or not candidates:
        raise ConfigError("tune_drop_threshold needs at least one sweep and one candidate threshold")
    region = lidar_ae.chamfer_region(model.cfg.grid)
    total = {float(c): 0.0 for c in candidates}
    for pts in sweeps:
        occ = voxelize(model.cfg.grid, pts)
        render, _ = reconstruct_beams(model, occ, beams, chunk=chunk)
        gt = filter_points(pts[:, :3].double().numpy(), **region)
        for c in total:
            pred = filter_points(render.points(c)[0][:, :3].double().numpy(), **region)
            total[c] += chamfer_distance(pred, gt, squared=True, workers=1) if len(pred) and len(gt) else math.inf
    mean = {c: v / len(sweeps) for c, v in total.items()}
    return min(mean, key=mean.get), mean


def calibrate_lidar_ae(run: str | Path, data_root: str | Path, out: str | Path, *, sweeps: int = 64, tune_sweeps: int = 16,
                       progress: bool = True) -> dict[str, float]:
    """Calibrate a trained ``lidar-ae`` run (:func:`calibrate_codec`): raw latents (posterior
    means) of up to ``sweeps`` evenly spread sweeps of the run's *training* scenes of ``data_root``
    (its clips, no manifest filter; each voxelised to the model's grid); and ``model.drop_threshold``
    chosen by :func:`tune_drop_threshold` on ``tune_sweeps`` of those sweeps (0 = keep the model's).
    The Chamfer of each threshold is recorded with the statistics. Returns the record (``mean``,
    ``std``, ``count`` latent elements, ``sweeps``, and with tuning ``drop_threshold``,
    ``chamfer_by_threshold``, ``tune_sweeps``)."""
    if sweeps < 1 or tune_sweeps < 0:
        raise ConfigError(f"sweeps must be >= 1 and tune_sweeps >= 0, got {sweeps}, {tune_sweeps}")
    load = lambda p: load_run_model(p, lidar_ae.LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")  # noqa: E731

    def training_index(cfg: lidar_ae.LidarAERunConfig) -> ClipIndex:
        return _training_index(data_root, cfg, lidar_ae.clip_spec_of(cfg), f"clips with a {lidar_ae.LIDAR} sweep", "clips.lidar")

    def inputs(cfg: lidar_ae.LidarAERunConfig) -> tuple[int, Iterable[torch.Tensor]]:
        index = training_index(cfg)
        picks = spread(len(index), sweeps)
        return len(picks), (voxelize(cfg.model.grid, lidar_ae.sweep_of(index.load(i))) for i in picks)

    updates, extra = {}, {}
    if tune_sweeps:
        model, cfg, _ = load(Path(run))
        index = training_index(cfg)
        pts = [lidar_ae.sweep_of(index.load(i)) for i in spread(len(index), tune_sweeps)]
        beams = estimate_beams(pts, cfg.rays.azimuth_bins or None)
        best, by = tune_drop_threshold(model, pts, beams)
        updates["drop_threshold"] = best
        extra = {"drop_threshold": best, "chamfer_by_threshold": {str(k): v for k, v in by.items()}, "tune_sweeps": len(pts)}
    return calibrate_codec(run, data_root, out, load=load, inputs=inputs, unit="sweep", progress=progress,
                           model_updates=updates, extra_record=extra)  # fmt: skip
