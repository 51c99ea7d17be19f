"""Layout faithfulness: a small BEV segmentation model trained on real SynthTown data, run on
generated scenes of the same layouts (and on real data, for reference).

Model (multi-view images + intrinsics + cam_to_ego -> BEV logits), by *lifting*:

1. a shared CNN (:class:`~genesis_drive.eval.synth_features.ImageEncoder`) gives each view a feature
   map at ``feature_stride``;
2. every BEV cell centre is placed at each of ``heights`` metres (ego frame: x forward, y left,
   z up, origin on the ground) and projected into every view with the calibration
   (:func:`project_to_views`);
3. features are bilinearly sampled there (``grid_sample``, ``align_corners=False``, pixel ``(i, j)``
   covering ``[i, i+1) x [j, j+1)``) and averaged over the views that see the point (camera depth
   > ``near`` and inside the image) (:func:`lift_features`);
4. the heights are stacked as channels and a small 2D network predicts :data:`BEV_CLASSES` logits.

Targets are the project's BEV raster (:func:`genesis_drive.layout.bev.rasterize_bev`): coverage of
drivable area, pedestrian crossings, dividers (lane + road dividers stroked ``line_width`` m),
vehicle footprints (car, truck, bus, trailer, construction vehicle) and pedestrian footprints
(footprints enlarged to at least ``min_footprint`` m a side).
A cell is positive when its coverage is >= 0.5; a prediction when its probability is >= 0.5.

Metrics: per-class IoU = sum of intersections / sum of unions over the evaluated samples (not a mean
of per-sample IoUs), mIoU = mean over classes; and a simple BEV vehicle detection mAP: connected
blobs of the vehicle channel become detections (centroid, mean probability as score), matched
greedily by centre distance to ground-truth vehicle centres at 0.5 / 1 / 2 / 4 m (the nuScenes
thresholds), AP = area under the monotone precision envelope, averaged over thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.data import Dataset

from ..data.clips import ClipDataset, ClipIndex, ClipSpec, collate_clips
from ..data.schema import CAMERA_CHANNELS, Clip
from ..errors import ConfigError, DataError
from ..layout.bev import BevConfig, BevGrid, rasterize_bev
from ..layout.frames import frame_map
from ..train.config import TrainConfig
from ..train.task import Task, TaskDef
from .synth_features import (
    OBJECT_GROUPS,
    ConvBlock,
    ImageEncoder,
    load_run_model,
    to_model_input,
)

__all__ = [
    "BEV_CLASSES",
    "BEV_LAYOUT_PRESETS",
    "BEV_LAYOUT_TASK",
    "DETECTION_THRESHOLDS",
    "BevLayoutConfig",
    "BevLayoutNet",
    "BevLayoutNetConfig",
    "BevLayoutTask",
    "LayoutSamples",
    "average_precision",
    "bev_points",
    "bev_targets",
    "detection_map",
    "iou_counts",
    "iou_from_counts",
    "lift_features",
    "load_bev_model",
    "miou",
    "paired_indices",
    "predict_root",
    "project_to_views",
    "vehicle_blobs",
    "vehicle_centers",
]

BEV_CLASSES: tuple[str, ...] = ("drivable_area", "ped_crossing", "divider", "vehicle", "pedestrian")
VEHICLE_CHANNEL = BEV_CLASSES.index("vehicle")
#: Centre-distance thresholds (metres) of the detection mAP, as nuScenes detection uses.
DETECTION_THRESHOLDS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
_VEHICLES = OBJECT_GROUPS["vehicle"]


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class BevLayoutNetConfig:
    """The BEV segmentation network.

    image_size: (width, height) pixels of the input views; views: camera channels (V).
    widths: image encoder channels per stride-2 stage; feature_stride: stride of the lifted map.
    feature_dim: channels per lifted height. heights: metres above the ego ground plane.
    bev_range: half-size of the square BEV grid in metres (x forward, y left); bev_resolution:
    metres per cell. bev_width: channels of the 2D BEV network. near: metres, minimum camera depth
    of a sampled point.
    """

    image_size: tuple[int, int] = (128, 72)
    views: tuple[str, ...] = CAMERA_CHANNELS
    widths: tuple[int, ...] = (32, 64, 128)
    feature_stride: int = 8
    feature_dim: int = 64
    heights: tuple[float, ...] = (0.0, 0.8, 1.6)
    bev_range: float = 32.0
    bev_resolution: float = 0.5
    bev_width: int = 64
    near: float = 0.1

    def __post_init__(self) -> None:
        strides = tuple(2 ** (i + 1) for i in range(len(self.widths)))
        if self.feature_stride not in strides:
            raise ConfigError(f"model.feature_stride must be one of the encoder strides {strides}, got {self.feature_stride}")
        if not self.heights or not self.views or min(self.feature_dim, self.bev_width) < 1:
            raise ConfigError("model.heights and model.views must be non-empty, feature_dim and bev_width >= 1")
        if not self.near > 0:
            raise ConfigError(f"model.near must be > 0 metres, got {self.near}")
        _ = self.grid  # validates range and resolution

    @property
    def grid(self) -> BevGrid:
        r = self.bev_range
        return BevGrid((-r, r), (-r, r), self.bev_resolution)


@dataclass(frozen=True)
class BevLayoutConfig:
    """Run config of the ``bev_layout`` task.

    rate / window_stride: single-frame samples at "keyframe" (2 Hz, exact boxes) or "camera"
    (12 Hz, boxes interpolated) rate, every ``window_stride``-th frame. line_width: metres, stroke
    width of dividers in the target raster. min_footprint: metres, smallest box footprint side in
    the target raster. dice_weight: weight of the soft Dice term added to BCE.
    """

    model: BevLayoutNetConfig = field(default_factory=BevLayoutNetConfig)
    rate: str = "keyframe"
    window_stride: int = 1
    line_width: float = 1.0
    min_footprint: float = 1.0
    dice_weight: float = 1.0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.rate not in ("keyframe", "camera"):
            raise ConfigError(f"rate must be 'keyframe' or 'camera', got {self.rate!r}")
        if self.window_stride < 1 or not self.line_width > 0 or self.dice_weight < 0 or self.min_footprint < 0:
            raise ConfigError("window_stride must be >= 1, line_width > 0 m, min_footprint >= 0 m, dice_weight >= 0")

    def clip_spec(self, rate: str | None = None) -> ClipSpec:
        return ClipSpec(num_frames=1, window_stride=self.window_stride, rate=rate or self.rate, views=self.model.views,
                        image_size=self.model.image_size, lidar="none", map_radius=self.model.bev_range * 1.5 + 10.0)  # fmt: skip

    def bev_config(self) -> BevConfig:
        return BevConfig(grid=self.model.grid, map_layers=("drivable_area", "ped_crossing", "lane_divider", "road_divider"),
                         classes=_VEHICLES + ("pedestrian",), line_width=self.line_width, heading=False)  # fmt: skip


def _tiny() -> BevLayoutConfig:
    return BevLayoutConfig(
        model=BevLayoutNetConfig(image_size=(64, 36), widths=(16, 32, 64), feature_stride=4, feature_dim=32,
                                 heights=(0.0, 1.0), bev_range=16.0, bev_resolution=1.0, bev_width=32),
        line_width=1.0,
        train=TrainConfig(steps=200, batch_size=4, lr=1e-3, warmup_steps=20, ema_decay=0.99, ckpt_every=100, preview_every=100),
    )  # fmt: skip


def _paper() -> BevLayoutConfig:
    return BevLayoutConfig(
        model=BevLayoutNetConfig(image_size=(256, 144), widths=(32, 64, 128, 256), feature_stride=8, feature_dim=64,
                                 heights=(0.0, 0.6, 1.2, 1.8), bev_range=51.2, bev_resolution=0.512, bev_width=96),
        rate="camera", window_stride=2, line_width=1.0,
        train=TrainConfig(steps=30000, batch_size=8, lr=5e-4, warmup_steps=500, schedule="cosine", min_lr=1e-5,
                          weight_decay=0.01, ema_decay=0.999, ckpt_every=1000, preview_every=2000, num_workers=8),
    )  # fmt: skip


BEV_LAYOUT_PRESETS: dict[str, Callable[[], BevLayoutConfig]] = {"tiny": _tiny, "paper": _paper}


# ----------------------------------------------------------------------------- lifting


def bev_points(grid: BevGrid, heights: Sequence[float]) -> np.ndarray:
    """Ego-frame points (Z, H, W, 3) metres: every cell centre of ``grid`` at every height."""
    xy = grid.cell_centers()  # H W 2
    z = np.asarray(heights, dtype=np.float64)
    pts = np.broadcast_to(xy[None], (len(z),) + xy.shape)
    zz = np.broadcast_to(z[:, None, None, None], (len(z),) + xy.shape[:2] + (1,))
    return np.concatenate([pts, zz], axis=-1)


def project_to_views(
    points: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, image_size: tuple[int, int], near: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ego points ``(p, 3)`` metres into every view.

    intrinsics ``(b, v, 3, 3)`` pixels for images of ``image_size`` = (width, height);
    cam_to_ego ``(b, v, 4, 4)`` (camera: x right, y down, z forward). Returns continuous pixel
    coordinates ``uv (b, v, p, 2)`` and ``valid (b, v, p)``: camera depth > ``near`` metres and
    ``0 <= u < width``, ``0 <= v < height``.
    """
    e2c = torch.linalg.inv(cam_to_ego.float())
    pc = torch.einsum("bvij,pj->bvpi", e2c[..., :3, :3], points.float()) + e2c[..., None, :3, 3]
    z = pc[..., 2]
    safe = torch.where(z > near, z, torch.ones_like(z))
    pix = torch.einsum("bvij,bvpj->bvpi", intrinsics.float(), pc / safe[..., None])
    uv = pix[..., :2]
    w, h = image_size
    valid = (z > near) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    return uv, valid


def lift_features(feats: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly sample view features at projected points and average over the views that see them.

    feats ``(b, v, c, h', w')`` covering an image of ``image_size`` (width, height) pixels at any
    stride; uv ``(b, v, p, 2)`` pixels; valid ``(b, v, p)``. Returns ``(b, c, p)`` (zeros where no
    view sees the point).
    """
    b = feats.shape[0]
    w, h = image_size
    scale = torch.tensor([2.0 / w, 2.0 / h], device=uv.device, dtype=uv.dtype)
    grid = rearrange(uv * scale - 1.0, "b v p two -> (b v) 1 p two")
    sampled = F.grid_sample(rearrange(feats, "b v c h w -> (b v) c h w"), grid.to(feats.dtype), mode="bilinear",
                            padding_mode="zeros", align_corners=False)  # fmt: skip
    sampled = rearrange(sampled, "(b v) c 1 p -> b v c p", b=b)
    m = valid[:, :, None].to(sampled.dtype)
    return (sampled * m).sum(1) / m.sum(1).clamp_min(1.0)


class BevLayoutNet(nn.Module):
    """Views ``(b, v, 3, h, w)`` in [-1, 1] + intrinsics ``(b, v, 3, 3)`` + cam_to_ego ``(b, v, 4, 4)``
    -> BEV logits ``(b, K, H, W)`` (:data:`BEV_CLASSES`, grid orientation of
    :mod:`genesis_drive.layout.bev`: row 0 far front, column 0 far left)."""

    def __init__(self, cfg: BevLayoutNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.widths)
        self.level = self.encoder.strides.index(cfg.feature_stride)
        self.reduce = nn.Conv2d(cfg.widths[self.level], cfg.feature_dim, 1)
        pts = torch.from_numpy(bev_points(cfg.grid, cfg.heights).reshape(-1, 3)).float()
        self.register_buffer("points", pts, persistent=False)
        c, bw = cfg.feature_dim * len(cfg.heights), cfg.bev_width
        self.bev_in = ConvBlock(c, bw)
        self.bev_down = nn.Sequential(ConvBlock(bw, bw, 2), ConvBlock(bw, bw))
        self.bev_out = nn.Sequential(ConvBlock(bw, bw), nn.Conv2d(bw, len(BEV_CLASSES), 1))

    def lift(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> torch.Tensor:
        """Lifted features ``(b, Z * feature_dim, H, W)``."""
        cfg = self.cfg
        b, v = images.shape[:2]
        w, h = cfg.image_size
        if images.shape[2:] != (3, h, w) or intrinsics.shape != (b, v, 3, 3) or cam_to_ego.shape != (b, v, 4, 4):
            raise ValueError(f"BevLayoutNet expects images (b, v, 3, {h}, {w}), intrinsics (b, v, 3, 3), cam_to_ego (b, v, 4, 4); "
                             f"got {tuple(images.shape)}, {tuple(intrinsics.shape)}, {tuple(cam_to_ego.shape)}")  # fmt: skip
        feats = self.reduce(self.encoder(rearrange(images, "b v c h w -> (b v) c h w"))[self.level])
        uv, valid = project_to_views(self.points, intrinsics, cam_to_ego, cfg.image_size, cfg.near)
        lifted = lift_features(rearrange(feats, "(b v) c h w -> b v c h w", b=b), uv, valid, cfg.image_size)
        gh, gw = cfg.grid.shape
        return rearrange(lifted, "b c (z h w) -> b (z c) h w", z=len(cfg.heights), h=gh, w=gw)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> torch.Tensor:
        x = self.bev_in(self.lift(images, intrinsics, cam_to_ego))
        down = self.bev_down(x)
        x = x + F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.bev_out(x)


# ----------------------------------------------------------------------------- targets


def bev_targets(clip: Clip, t: int, cfg: BevLayoutConfig) -> np.ndarray:
    """Coverage (K, H, W) float32 in [0, 1] of :data:`BEV_CLASSES` in the ego frame of frame ``t``.

    Box footprints are enlarged to at least ``cfg.min_footprint`` metres on each side first (a
    0.6 x 0.7 m pedestrian would otherwise cover no cell by half at 0.5 m resolution).
    """
    m = cfg.min_footprint
    boxes = [replace(b, size=np.maximum(b.size, [m, m, 0.0])) for b in clip.boxes[t]]
    r = rasterize_bev(frame_map(clip, t), boxes, cfg.bev_config())
    nv = len(_VEHICLES)
    return np.stack([r[0], r[1], np.maximum(r[2], r[3]), np.clip(r[4 : 4 + nv].sum(0), 0, 1), r[4 + nv]]).astype(np.float32)


def vehicle_centers(clip: Clip, t: int, grid: BevGrid) -> np.ndarray:
    """Ego x, y (n, 2) metres of the vehicle boxes of frame ``t`` whose centre lies inside ``grid``."""
    c = np.array([b.center[:2] for b in clip.boxes[t] if b.detection_class in _VEHICLES]).reshape(-1, 2)
    inside = (c[:, 0] >= grid.x_range[0]) & (c[:, 0] < grid.x_range[1]) & (c[:, 1] >= grid.y_range[0]) & (c[:, 1] < grid.y_range[1])
    return c[inside]


class _BevSamples:
    """Clip -> ``images`` (v 3 h w) uint8, ``intrinsics``, ``cam_to_ego``, ``target`` (K H W)."""

    def __init__(self, cfg: BevLayoutConfig):
        self.cfg = cfg

    def __call__(self, clip: Clip) -> dict[str, torch.Tensor]:
        if clip.views != tuple(self.cfg.model.views):
            raise DataError(f"clip {clip.clip_id} has views {clip.views}, the model expects {self.cfg.model.views}")
        return {
            "images": torch.from_numpy(rearrange(clip.images[0], "v h w c -> v c h w").copy()),
            "intrinsics": torch.from_numpy(clip.intrinsics).float(),
            "cam_to_ego": torch.from_numpy(clip.cam_to_ego).float(),
            "target": torch.from_numpy(bev_targets(clip, 0, self.cfg)),
        }


# ----------------------------------------------------------------------------- metrics


def iou_counts(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample, per-class intersection and union cell counts (n, K) of boolean masks (n, K, H, W)."""
    p, t = (np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a, dtype=bool) for a in (pred, target))
    if p.shape != t.shape or p.ndim != 4:
        raise ValueError(f"pred and target must both be (n, K, H, W), got {p.shape} and {t.shape}")
    return (p & t).sum(axis=(2, 3)).astype(np.int64), (p | t).sum(axis=(2, 3)).astype(np.int64)


def iou_from_counts(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Per-class IoU (K,) = summed intersections / summed unions over samples; NaN where a class never
    occurs in prediction or target."""
    i, u = inter.sum(axis=0).astype(np.float64), union.sum(axis=0).astype(np.float64)
    return np.divide(i, u, out=np.full_like(i, np.nan), where=u > 0)


def vehicle_blobs(prob: np.ndarray, grid: BevGrid, threshold: float = 0.5, min_cells: int = 1) -> np.ndarray:
    """Detections (n, 3) ``x, y, score`` from a vehicle probability map (H, W): 8-connected blobs of
    cells >= ``threshold`` with at least ``min_cells`` cells; centre = probability-weighted centroid
    (ego metres), score = mean probability of the blob."""
    mask = (prob >= threshold).astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    centers = grid.cell_centers()
    out = []
    for k in range(1, n):
        sel = labels == k
        if sel.sum() < min_cells:
            continue
        w = prob[sel]
        xy = (centers[sel] * w[:, None]).sum(0) / w.sum()
        out.append([xy[0], xy[1], float(w.mean())])
    return np.array(out, dtype=np.float64).reshape(-1, 3)


def average_precision(detections: Sequence[np.ndarray], truths: Sequence[np.ndarray], max_distance: float) -> float:
    """AP of centre-point detections over samples: per sample ``detections[i]`` (n, 3) ``x, y, score``
    and ``truths[i]`` (m, 2). Detections, highest score first, take the nearest unmatched truth of
    their sample within ``max_distance`` metres (true positive) or none (false positive). AP = area
    under the monotone (interpolated) precision-recall envelope; NaN when there is no truth."""
    total = sum(len(t) for t in truths)
    if total == 0:
        return float("nan")
    rows = [(d[2], i, d[:2]) for i, dets in enumerate(detections) for d in np.asarray(dets).reshape(-1, 3)]
    rows.sort(key=lambda r: -r[0])
    used = [np.zeros(len(t), dtype=bool) for t in truths]
    tp = np.zeros(len(rows))
    for k, (_, i, xy) in enumerate(rows):
        gt = np.asarray(truths[i]).reshape(-1, 2)
        if len(gt) == 0:
            continue
        d = np.linalg.norm(gt - xy, axis=1)
        d[used[i]] = np.inf
        j = int(np.argmin(d))
        if d[j] <= max_distance:
            used[i][j] = True
            tp[k] = 1
    if len(rows) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / total
    precision = ctp / np.arange(1, len(rows) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    prev = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - prev) * envelope))


def detection_map(detections: Sequence[np.ndarray], truths: Sequence[np.ndarray], thresholds: Sequence[float] = DETECTION_THRESHOLDS) -> dict:
    """Mean AP over centre-distance ``thresholds`` (metres) and the AP at each."""
    aps = {f"AP@{d:g}m": average_precision(detections, truths, d) for d in thresholds}
    vals = [v for v in aps.values() if not math.isnan(v)]
    return {"mAP": float(np.mean(vals)) if vals else float("nan"), **aps}


# ----------------------------------------------------------------------------- task


def _dice(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per class (over batch and cells), averaged over classes; prob/target (b, K, H, W)."""
    inter = (prob * target).sum(dim=(0, 2, 3))
    total = prob.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return (1 - (2 * inter + eps) / (total + eps)).mean()


class BevLayoutTask(Task):
    """Training recipe of the BEV layout model on a nuScenes-format root (SynthTown)."""

    def __init__(self, cfg: BevLayoutConfig, data_root: Path | None):
        if data_root is None:
            raise ConfigError("the bev_layout task needs a data root (a nuScenes-format SynthTown root)")
        self.cfg, self.data_root = cfg, Path(data_root)

    def build_model(self) -> nn.Module:
        return BevLayoutNet(self.cfg.model)

    def train_dataset(self) -> Dataset:
        from ..data.nuscenes import NuScenesReader

        index = ClipIndex(NuScenesReader(self.data_root), self.cfg.clip_spec())
        if len(index) == 0:
            raise DataError("no frames to train on", self.data_root)
        return ClipDataset(index, _BevSamples(self.cfg))

    def collate(self, samples: list[dict]) -> dict:
        return collate_clips(samples)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        logits = model(to_model_input(batch["images"]), batch["intrinsics"], batch["cam_to_ego"]).float()
        target = batch["target"].float()
        bce = F.binary_cross_entropy_with_logits(logits, target)
        dice = _dice(torch.sigmoid(logits), target)
        return {"loss": bce + self.cfg.dice_weight * dice, "loss_bce": bce.detach(), "loss_dice": dice.detach()}

    @torch.no_grad()
    def preview(self, model: nn.Module, batch: dict) -> dict[str, np.ndarray]:
        """Per sample: target channels (top row) and predicted probabilities (bottom row), grey."""
        prob = torch.sigmoid(model(to_model_input(batch["images"]), batch["intrinsics"], batch["cam_to_ego"]).float())
        rows = []
        for i in range(prob.shape[0]):
            tgt = batch["target"][i].float().cpu().numpy()
            pred = prob[i].cpu().numpy()
            rows.append(np.concatenate([np.concatenate(list(tgt), axis=1), np.concatenate(list(pred), axis=1)], axis=0))
        grey = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).astype(np.uint8)
        return {"bev_target_top_pred_bottom": np.repeat(grey[..., None], 3, axis=2)}


BEV_LAYOUT_TASK = TaskDef(
    config_type=BevLayoutConfig,
    presets=BEV_LAYOUT_PRESETS,
    build=BevLayoutTask,
    description="BEV segmentation model (lift-splat by calibrated sampling) for layout faithfulness",
)


def load_bev_model(path: str | Path, *, ema: bool = True) -> tuple[BevLayoutNet, BevLayoutConfig, dict]:
    """The trained BEV layout model (eval mode, CPU), its run config and checkpoint info."""
    return load_run_model(path, BevLayoutConfig, lambda c: BevLayoutNet(c.model), ema=ema)


# ----------------------------------------------------------------------------- evaluation over a root


@dataclass
class LayoutSamples:
    """Per-sample results of the BEV model on one root (n samples)."""

    clip_ids: list[str]
    scenes: list[str]
    inter: np.ndarray            # (n, K) intersection cells
    union: np.ndarray            # (n, K) union cells
    detections: list[np.ndarray] = field(default_factory=list)   # n x (d, 3) x, y, score
    truths: list[np.ndarray] = field(default_factory=list)       # n x (m, 2) x, y


@torch.no_grad()
def predict_root(
    model: BevLayoutNet,
    cfg: BevLayoutConfig,
    root: str | Path,
    *,
    batch_size: int = 8,
    max_samples: int | None = None,
    threshold: float = 0.5,
    device: str | torch.device = "cpu",
    desc: str | None = None,
) -> LayoutSamples:
    """Run the model on every keyframe of a nuScenes-format root; IoU counts and detections per frame.

    Ground truth comes from the root's own annotations and map (a generated root carries the layout
    it was generated from)."""
    from tqdm import tqdm

    from ..data.nuscenes import NuScenesReader

    index = ClipIndex(NuScenesReader(root), cfg.clip_spec(rate="keyframe"))
    n = len(index) if max_samples is None else min(len(index), max_samples)
    if n == 0:
        raise DataError("no keyframes to evaluate", root)
    model = model.to(device).eval()
    make = _BevSamples(cfg)
    out = LayoutSamples([], [], np.zeros((0, len(BEV_CLASSES)), np.int64), np.zeros((0, len(BEV_CLASSES)), np.int64))
    inter, union = [], []
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=desc is None, unit="batch"):
        clips = [index.load(i) for i in range(start, min(n, start + batch_size))]
        batch = collate_clips([make(c) for c in clips])
        logits = model(to_model_input(batch["images"].to(device)), batch["intrinsics"].to(device), batch["cam_to_ego"].to(device))
        prob = torch.sigmoid(logits.float()).cpu().numpy()
        i, u = iou_counts(prob >= threshold, batch["target"].numpy() >= 0.5)
        inter.append(i)
        union.append(u)
        for c, p in zip(clips, prob):
            out.clip_ids.append(c.clip_id)
            out.scenes.append(c.clip_id.rsplit(":", 1)[0])
            out.detections.append(vehicle_blobs(p[VEHICLE_CHANNEL], cfg.model.grid, threshold))
            out.truths.append(vehicle_centers(c, 0, cfg.model.grid))
    out.inter, out.union = np.concatenate(inter), np.concatenate(union)
    return out


def miou(inter: np.ndarray, union: np.ndarray) -> float:
    """Mean over classes of :func:`iou_from_counts` (classes that never occur are left out; NaN if none occurs)."""
    iou = iou_from_counts(inter, union)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def paired_indices(gen: LayoutSamples, ref: LayoutSamples) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(into gen, into ref)`` of the samples whose clip ids both hold (same scene name and
    keyframe index: a generated root that re-renders the reference layouts)."""
    ref_pos = {c: i for i, c in enumerate(ref.clip_ids)}
    pairs = [(i, ref_pos[c]) for i, c in enumerate(gen.clip_ids) if c in ref_pos]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gi, ri = zip(*pairs)
    return np.array(gi), np.array(ri)
