"""``depth``: training recipe of the monocular depth network
(:class:`~genesis_drive.models.evaluators.depth.DepthNet`) with sparse LiDAR targets.

Targets: the keyframe LIDAR_TOP sweep projected into each keyframe image at half resolution
(nearest point per pixel, 0 = none); loss: mean ``|log p - log g|`` over pixels with a return.
LiDAR is the target (not SynthTown's dense depth buffers) so that the same task trains on any
nuScenes-format root. The LiDAR-in-image helpers here (:func:`project_lidar`, :func:`sparse_depth`,
:func:`sample_lidar_ego`) are shared with the metric, ``eval/consistency.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import rearrange
from torch import nn

from ...data.clips import ClipSpec
from ...data.geometry import project_points, scale_intrinsics, transform_points
from ...data.nuscenes import NuScenesReader
from ...data.schema import CAMERA_CHANNELS, LIDAR_CHANNEL, Clip
from ...errors import ConfigError, DataError
from ...models.blocks import to_model_input
from ...models.evaluators.depth import DepthNet, DepthNetConfig
from ..config import TrainConfig
from ..task import TaskDef
from .clip_task import ClipCut, ClipTask

__all__ = ["DEPTH_PRESETS", "DEPTH_TASK", "DepthConfig", "DepthSamples", "DepthTask", "project_lidar", "sample_lidar_ego", "sparse_depth"]


@dataclass(frozen=True)
class DepthConfig:
    """Run config of the ``depth`` task (keyframes; sparse targets from the keyframe LiDAR sweep).

    views: cameras used. clips: single keyframes (``clips.num_frames`` 1, ``clips.rate`` "keyframe"),
    every ``clips.window_stride``-th.
    """

    model: DepthNetConfig = field(default_factory=DepthNetConfig)
    views: tuple[str, ...] = CAMERA_CHANNELS
    clips: ClipCut = field(default_factory=ClipCut)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.views:
            raise ConfigError("views must name at least one camera channel")
        if self.clips.num_frames != 1 or self.clips.rate != "keyframe":
            raise ConfigError("the depth task trains on single keyframes (LiDAR targets exist there): clips.num_frames must be 1 "
                              f"and clips.rate 'keyframe', got {self.clips.num_frames} and {self.clips.rate!r}")  # fmt: skip


def _tiny() -> DepthConfig:
    return DepthConfig(
        model=DepthNetConfig(image_size=(64, 36), widths=(16, 32, 64)),
        train=TrainConfig(steps=200, batch_size=4, lr=1e-3, warmup_steps=20, ema_decay=0.99, ckpt_every=100, preview_every=100),
    )


def _paper() -> DepthConfig:
    return DepthConfig(
        model=DepthNetConfig(image_size=(256, 144), widths=(32, 64, 128, 256)),
        train=TrainConfig(steps=30000, batch_size=8, lr=5e-4, warmup_steps=500, schedule="cosine", min_lr=1e-5,
                          weight_decay=0.01, ema_decay=0.999, ckpt_every=1000, preview_every=2000, num_workers=8),
    )  # fmt: skip


DEPTH_PRESETS: dict[str, Callable[[], DepthConfig]] = {"tiny": _tiny, "paper": _paper}


# ----------------------------------------------------------------------------- LiDAR in images


def project_lidar(
    points_ego: np.ndarray, intrinsics: np.ndarray, cam_to_ego: np.ndarray, size: tuple[int, int], min_depth: float, max_depth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ego-frame points (N, 3) metres -> those seen by a camera: pixel ``uv (m, 2)`` (continuous,
    pixel (i, j) covers [i, i+1) x [j, j+1)), camera depth ``z (m,)`` metres in
    [min_depth, max_depth], and their indices ``(m,)`` into ``points_ego``. ``size`` = (width, height)."""
    pc = transform_points(np.linalg.inv(cam_to_ego), np.asarray(points_ego, dtype=np.float64).reshape(-1, 3))
    uv, front = project_points(pc, intrinsics, min_depth=1e-6)
    z = pc[:, 2]
    w, h = size
    with np.errstate(invalid="ignore"):
        ok = front & (z >= min_depth) & (z <= max_depth) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    idx = np.flatnonzero(ok)
    return uv[idx], z[idx], idx


def sparse_depth(
    points_ego: np.ndarray, intrinsics: np.ndarray, cam_to_ego: np.ndarray, size: tuple[int, int], min_depth: float, max_depth: float
) -> np.ndarray:
    """Sparse depth image (h, w) float32 metres: the nearest projected point per pixel, 0 where none."""
    uv, z, _ = project_lidar(points_ego, intrinsics, cam_to_ego, size, min_depth, max_depth)
    w, h = size
    flat = np.full(w * h, np.inf)
    cells = np.floor(uv[:, 1]).astype(np.int64) * w + np.floor(uv[:, 0]).astype(np.int64)
    np.minimum.at(flat, cells, z)
    flat[~np.isfinite(flat)] = 0.0
    return flat.reshape(h, w).astype(np.float32)


def sample_lidar_ego(reader: NuScenesReader, sample_token: str, ego_to_global: np.ndarray) -> np.ndarray:
    """The keyframe LIDAR_TOP sweep of a sample as (N, 3) points in the ego frame given by
    ``ego_to_global`` (4, 4) (a camera frame's ego pose; going through both global ego poses undoes
    the ego motion between the camera and LiDAR timestamps)."""
    sample = reader.nusc.get("sample", sample_token)
    if LIDAR_CHANNEL not in sample["data"]:
        raise DataError(f"sample {sample_token} has no {LIDAR_CHANNEL} sweep", reader.root, "sample.data")
    sweep = reader.lidar_sweep(sample["data"][LIDAR_CHANNEL])
    m = np.linalg.inv(ego_to_global) @ sweep.ego_to_global.matrix() @ sweep.sensor_to_ego.matrix()
    return transform_points(m, sweep.points[:, :3])


# ----------------------------------------------------------------------------- task


class DepthSamples:
    """Clip -> ``images`` (v 3 h w) uint8, ``fx`` (v,), ``depth`` (v h/2 w/2) sparse LiDAR depth (0 = none)."""

    def __init__(self, cfg: DepthConfig, root: Path):
        self.cfg, self.root = cfg, root
        self._reader = None

    def __call__(self, clip: Clip) -> dict[str, torch.Tensor]:
        if self._reader is None:  # opened lazily, once per worker process
            self._reader = NuScenesReader(self.root)
        m = self.cfg.model
        w, h = m.image_size
        if not clip.sample_tokens:
            raise DataError(f"clip {clip.clip_id} carries no sample token", self.root, "sample")
        pts = sample_lidar_ego(self._reader, clip.sample_tokens[0], clip.ego_to_global[0])
        depth = np.stack([
            sparse_depth(pts, scale_intrinsics(clip.intrinsics[v], 0.5, 0.5), clip.cam_to_ego[v], (w // 2, h // 2), m.min_depth, m.max_depth)
            for v in range(clip.num_views)
        ])  # fmt: skip
        return {
            "images": torch.from_numpy(rearrange(clip.images[0], "v h w c -> v c h w").copy()),
            "fx": torch.from_numpy(clip.intrinsics[:, 0, 0]).float(),
            "depth": torch.from_numpy(depth),
        }

    def __getstate__(self) -> dict:
        return {"cfg": self.cfg, "root": self.root, "_reader": None}


class DepthTask(ClipTask):
    """Training recipe of the monocular depth network: L1 on log depth at pixels with a LiDAR return."""

    name = "depth"
    root_needs = "a nuScenes-format SynthTown root with LIDAR_TOP"
    cfg: DepthConfig

    def build_model(self) -> nn.Module:
        return DepthNet(self.cfg.model)

    def clip_spec(self) -> ClipSpec:
        return self.clips.spec(self.cfg.views, self.cfg.model.image_size)

    def make_transform(self, reader: NuScenesReader) -> DepthSamples:
        return DepthSamples(self.cfg, self.data_root)

    def _predict(self, model: nn.Module, batch: dict) -> torch.Tensor:
        x = to_model_input(rearrange(batch["images"], "b v c h w -> (b v) c h w"))
        return model(x, batch["fx"].reshape(-1))[:, 0]

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        pred = self._predict(model, batch).float()
        gt = rearrange(batch["depth"], "b v h w -> (b v) h w").float()
        valid = gt > 0
        if not valid.any():
            return {"loss": pred.sum() * 0.0, "valid_pixels": torch.zeros((), device=pred.device)}
        err = (torch.log(pred[valid]) - torch.log(gt[valid])).abs()
        return {"loss": err.mean(), "valid_pixels": valid.sum().float().detach()}

    @torch.no_grad()
    def preview(self, model: nn.Module, batch: dict) -> dict[str, np.ndarray]:
        """Per sample and view: the image, predicted depth and sparse LiDAR depth (inverse depth, grey)."""
        pred = self._predict(model, batch).float().cpu().numpy()
        gt = rearrange(batch["depth"], "b v h w -> (b v) h w").float().cpu().numpy()
        imgs = rearrange(batch["images"], "b v c h w -> (b v) h w c").cpu().numpy()
        lo = self.cfg.model.min_depth
        rows = []
        for img, p, g in zip(imgs, pred, gt):
            h, w = p.shape
            small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            inv = [np.clip(lo / np.where(d > 0, d, np.inf), 0, 1) for d in (p, g)]
            grey = [np.repeat((d * 255).astype(np.uint8)[..., None], 3, axis=2) for d in inv]
            rows.append(np.concatenate([small, *grey], axis=1))
        return {"image_pred_lidar": np.concatenate(rows, axis=0)}


DEPTH_TASK = TaskDef(
    config_type=DepthConfig,
    presets=DEPTH_PRESETS,
    build=DepthTask,
    description="monocular depth network (sparse LiDAR targets) for cross-modal consistency",
)
