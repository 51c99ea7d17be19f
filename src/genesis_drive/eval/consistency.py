"""Cross-modal consistency: does generated LiDAR agree with the generated images of the same frame?

Two measurements per keyframe (all views), both comparing LiDAR points projected into the images:

1. **Depth agreement** (learned). A small monocular depth network (:class:`DepthNet`), trained on
   SynthTown keyframes with the LiDAR points projected into each image as sparse targets, predicts
   a depth map from each generated image. At every LiDAR point that lands in the image (camera
   depth in ``[min_depth, max_depth]`` metres) the predicted depth ``p`` is read (nearest cell) and
   compared with the point's camera depth ``g`` (along the optical axis):
   ``AbsRel = mean |p - g| / g`` and ``delta1 = fraction with max(p/g, g/p) < 1.25``, pooled over
   all points of all evaluated frames, and again over the points more than ``ground_height``
   metres above the ego ground plane (the ground's depth follows from the camera rig alone, so
   above-ground points carry most of the scene-specific evidence). Images and LiDAR that show the
   same scene score like real data; LiDAR from another frame gives larger AbsRel, lower delta1.
2. **Edge alignment** (model-free). Depth discontinuities of the LiDAR -- a point with a horizontal
   image neighbour (``|du| <= edge_radius`` px, ``|dv| <= 1`` px) more than ``edge_ratio`` times
   farther away, i.e. the silhouette of something in front -- should sit on image edges. Edge
   strength = Sobel gradient magnitude of the grey image, dilated by a 3 x 3 max filter (one pixel
   of slack), divided by the mean edge strength of its image row (discontinuities and edges both
   crowd certain rows -- horizon, lane markings -- in any image). ``EdgeAlign = mean normalised
   edge strength at discontinuity points / mean at all projected points``: about 1 when the LiDAR
   is unrelated to the image, above 1 when object silhouettes coincide with image edges.

The network predicts depth for a canonical focal length ``focal_ref_ratio * width`` and rescales it
by ``fx / focal_ref`` (metric depth of the same image content scales with the focal length), so one
network serves cameras with different fields of view.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from scipy.spatial import cKDTree
from torch import nn
from torch.utils.data import Dataset

from ..data.clips import ClipDataset, ClipIndex, ClipSpec, collate_clips
from ..data.geometry import project_points, scale_intrinsics, transform_points
from ..data.schema import CAMERA_CHANNELS, LIDAR_CHANNEL, Clip
from ..errors import ConfigError, DataError
from ..train.config import TrainConfig
from ..train.task import Task, TaskDef
from .synth_features import ConvBlock, ImageEncoder, load_run_model, to_model_input

__all__ = [
    "DEPTH_PRESETS",
    "DEPTH_TASK",
    "ConsistencyScorer",
    "DepthConfig",
    "DepthNet",
    "DepthNetConfig",
    "DepthTask",
    "FrameStats",
    "depth_agreement",
    "edge_strength",
    "evaluate_root",
    "frame_consistency",
    "lidar_discontinuities",
    "load_depth_model",
    "pool_stats",
    "project_lidar",
    "sample_lidar_ego",
    "sparse_depth",
]


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class DepthNetConfig:
    """The monocular depth network.

    image_size: (width, height) pixels of its input; the depth map has half that size.
    widths: encoder channels per stride-2 stage (a U-Net decoder returns to stride 2).
    min_depth / max_depth: metres, the canonical output range. focal_ref_ratio: canonical focal
    length as a fraction of the image width (default: nuScenes CAM_FRONT, 1266 px at 1600 px).
    """

    image_size: tuple[int, int] = (128, 72)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    min_depth: float = 1.0
    max_depth: float = 80.0
    focal_ref_ratio: float = 1266.0 / 1600.0

    def __post_init__(self) -> None:
        w, h = self.image_size
        s = 2 ** len(self.widths)
        if w % s or h % 2:
            raise ConfigError(f"model.image_size {self.image_size}: width must be divisible by {s} and height by 2")
        if not 0 < self.min_depth < self.max_depth or not self.focal_ref_ratio > 0:
            raise ConfigError("model needs 0 < min_depth < max_depth (metres) and focal_ref_ratio > 0")


@dataclass(frozen=True)
class DepthConfig:
    """Run config of the ``depth`` task (keyframes; sparse targets from the keyframe LiDAR sweep).

    views: cameras used; window_stride: every n-th keyframe.
    """

    model: DepthNetConfig = field(default_factory=DepthNetConfig)
    views: tuple[str, ...] = CAMERA_CHANNELS
    window_stride: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.window_stride < 1 or not self.views:
            raise ConfigError("window_stride must be >= 1 and views non-empty")

    def clip_spec(self, views: tuple[str, ...] | None = None) -> ClipSpec:
        return ClipSpec(num_frames=1, window_stride=self.window_stride, rate="keyframe", views=views or self.views,
                        image_size=self.model.image_size, lidar="none")  # fmt: skip


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


# ----------------------------------------------------------------------------- network


class DepthNet(nn.Module):
    """Images ``(n, 3, h, w)`` in [-1, 1] + focal lengths ``fx (n,)`` pixels -> depth ``(n, 1, h/2, w/2)``
    metres (camera z)."""

    def __init__(self, cfg: DepthNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.widths)
        w = cfg.widths
        self.up = nn.ModuleList(ConvBlock(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], 1, 3, padding=1)

    def forward(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        w, h = self.cfg.image_size
        if x.shape[1:] != (3, h, w) or fx.shape != (x.shape[0],):
            raise ValueError(f"DepthNet expects images (n, 3, {h}, {w}) and fx (n,), got {tuple(x.shape)}, {tuple(fx.shape)}")
        feats = self.encoder(x)
        y = feats[-1]
        for block, skip in zip(self.up, reversed(feats[:-1])):
            y = block(torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], dim=1))
        lo, hi = math.log(self.cfg.min_depth), math.log(self.cfg.max_depth)
        log_depth = lo + (hi - lo) * torch.sigmoid(self.head(y).float())
        focal_ref = self.cfg.focal_ref_ratio * w
        return torch.exp(log_depth) * (fx.float() / focal_ref)[:, None, None, None]


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


def sample_lidar_ego(reader, sample_token: str, ego_to_global: np.ndarray) -> np.ndarray:
    """The keyframe LIDAR_TOP sweep of a sample as (N, 3) points in the ego frame given by
    ``ego_to_global`` (4, 4) (a camera frame's ego pose; going through both global ego poses undoes
    the ego motion between the camera and LiDAR timestamps)."""
    sample = reader.nusc.get("sample", sample_token)
    if LIDAR_CHANNEL not in sample["data"]:
        raise DataError(f"sample {sample_token} has no {LIDAR_CHANNEL} sweep", reader.root, "sample.data")
    sweep = reader.lidar_sweep(sample["data"][LIDAR_CHANNEL])
    m = np.linalg.inv(ego_to_global) @ sweep.ego_to_global.matrix() @ sweep.sensor_to_ego.matrix()
    return transform_points(m, sweep.points[:, :3])


def depth_agreement(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """AbsRel, squared relative error, RMSE (m) and delta<1.25 of predicted vs LiDAR depths (m,) metres."""
    p, g = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if p.shape != g.shape or p.ndim != 1 or len(p) == 0 or np.any(g <= 0):
        raise ValueError("depth_agreement needs two equal-length non-empty 1D arrays with positive LiDAR depths")
    ratio = np.maximum(p / g, g / np.maximum(p, 1e-12))
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
    }


def edge_strength(image: np.ndarray) -> np.ndarray:
    """Edge strength (h, w) float32 of an RGB uint8 image: Sobel gradient magnitude of the grey
    image scaled to 0..1, then a 3 x 3 max filter."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.dilate(np.sqrt(gx * gx + gy * gy), np.ones((3, 3), np.uint8))


def lidar_discontinuities(uv: np.ndarray, z: np.ndarray, radius: float, ratio: float) -> np.ndarray:
    """Mask (m,) of projected points that are the near side of a depth discontinuity: some point with
    ``|du| <= radius`` and ``|dv| <= 1`` pixels lies more than ``ratio`` times farther away."""
    out = np.zeros(len(z), dtype=bool)
    if len(z) < 2:
        return out
    tree = cKDTree(np.stack([uv[:, 0] / radius, uv[:, 1]], axis=1))
    pairs = tree.query_pairs(1.0, p=np.inf, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        out[i[z[j] > ratio * z[i]]] = True
        out[j[z[i] > ratio * z[j]]] = True
    return out


@dataclass
class FrameStats:
    """Sums over the LiDAR points of one frame (all views), from which the metrics are pooled.

    Edge sums hold row-normalised edge strength (a point's edge strength divided by the mean edge
    strength of its image row), so the ratio does not reward LiDAR discontinuities for merely
    falling on rows that are busy in every image (horizon, lane markings).
    """

    points: int = 0
    abs_rel: float = 0.0      # sum |p - g| / g
    sq_rel: float = 0.0       # sum (p - g)^2 / g
    sq_err: float = 0.0       # sum (p - g)^2
    delta1: int = 0           # count max(p/g, g/p) < 1.25
    above_points: int = 0     # points higher than ground_height above the ego ground plane
    above_abs_rel: float = 0.0
    above_delta1: int = 0
    edge_all: float = 0.0     # sum of row-normalised edge strength at all projected points
    edge_disc: float = 0.0    # ... at discontinuity points
    disc: int = 0             # discontinuity points

    def add(self, other: FrameStats) -> FrameStats:
        return FrameStats(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))


def frame_consistency(
    depth: np.ndarray,
    edges: np.ndarray,
    intrinsics: np.ndarray,
    cam_to_ego: np.ndarray,
    points_ego: np.ndarray,
    *,
    min_depth: float = 1.0,
    max_depth: float = 80.0,
    ground_height: float = 0.3,
    edge_radius: float = 2.0,
    edge_ratio: float = 1.5,
) -> FrameStats:
    """Consistency sums of one frame.

    depth: predicted depth maps (v, h', w') metres covering images of size (w, h) = edges' size at
    any stride; edges: edge strength (v, h, w) (:func:`edge_strength`); intrinsics (v, 3, 3) for the
    (w, h) images; cam_to_ego (v, 4, 4); points_ego: the frame's LiDAR (N, 3) in its ego frame.
    ground_height: metres; points with ego z above it also count towards the above-ground sums.
    """
    v_n, h, w = edges.shape
    dh, dw = depth.shape[1:]
    st = FrameStats()
    for v in range(v_n):
        uv, z, idx = project_lidar(points_ego, intrinsics[v], cam_to_ego[v], (w, h), min_depth, max_depth)
        if len(z) == 0:
            continue
        col = np.minimum((uv[:, 0] * dw / w).astype(np.int64), dw - 1)
        row = np.minimum((uv[:, 1] * dh / h).astype(np.int64), dh - 1)
        p = depth[v, row, col].astype(np.float64)
        rel = np.abs(p - z) / z
        good = np.maximum(p / z, z / np.maximum(p, 1e-12)) < 1.25
        above = np.asarray(points_ego)[idx, 2] > ground_height
        r, c = np.floor(uv[:, 1]).astype(np.int64), np.floor(uv[:, 0]).astype(np.int64)
        row_mean = edges[v].astype(np.float64).mean(axis=1)
        g = np.divide(edges[v, r, c], row_mean[r], out=np.zeros(len(r)), where=row_mean[r] > 0)
        disc = lidar_discontinuities(uv, z, edge_radius, edge_ratio)
        st = st.add(FrameStats(len(z), float(rel.sum()), float(np.sum((p - z) ** 2 / z)), float(np.sum((p - z) ** 2)), int(good.sum()),
                               int(above.sum()), float(rel[above].sum()), int(good[above].sum()),
                               float(g.sum()), float(g[disc].sum()), int(disc.sum())))  # fmt: skip
    return st


def pool_stats(stats: list[FrameStats]) -> dict[str, float]:
    """Metrics pooled over the points of several frames: AbsRel, SqRel, RMSE (m), delta1, the same
    AbsRel / delta1 over above-ground points, EdgeAlign (NaN where there is nothing to pool)."""
    tot = FrameStats()
    for s in stats:
        tot = tot.add(s)
    nan = float("nan")

    def div(a: float, b: float) -> float:
        return a / b if b else nan

    return {
        "abs_rel": div(tot.abs_rel, tot.points),
        "sq_rel": div(tot.sq_rel, tot.points),
        "rmse": math.sqrt(tot.sq_err / tot.points) if tot.points else nan,
        "delta1": div(tot.delta1, tot.points),
        "abs_rel_above_ground": div(tot.above_abs_rel, tot.above_points),
        "delta1_above_ground": div(tot.above_delta1, tot.above_points),
        "edge_align": div(div(tot.edge_disc, tot.disc), div(tot.edge_all, tot.points)) if tot.disc and tot.edge_all > 0 else nan,
    }


# ----------------------------------------------------------------------------- task


class _DepthSamples:
    """Clip -> ``images`` (v 3 h w) uint8, ``fx`` (v,), ``depth`` (v h/2 w/2) sparse LiDAR depth (0 = none)."""

    def __init__(self, cfg: DepthConfig, root: Path):
        self.cfg, self.root = cfg, root
        self._reader = None

    def __call__(self, clip: Clip) -> dict[str, torch.Tensor]:
        if self._reader is None:  # opened lazily, once per worker process
            from ..data.nuscenes import NuScenesReader

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


class DepthTask(Task):
    """Training recipe of the monocular depth network: L1 on log depth at pixels with a LiDAR return."""

    def __init__(self, cfg: DepthConfig, data_root: Path | None):
        if data_root is None:
            raise ConfigError("the depth task needs a data root (a nuScenes-format SynthTown root with LIDAR_TOP)")
        self.cfg, self.data_root = cfg, Path(data_root)

    def build_model(self) -> nn.Module:
        return DepthNet(self.cfg.model)

    def train_dataset(self) -> Dataset:
        from ..data.nuscenes import NuScenesReader

        index = ClipIndex(NuScenesReader(self.data_root), self.cfg.clip_spec())
        if len(index) == 0:
            raise DataError("no keyframes to train on", self.data_root)
        return ClipDataset(index, _DepthSamples(self.cfg, self.data_root))

    def collate(self, samples: list[dict]) -> dict:
        return collate_clips(samples)

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


def load_depth_model(path: str | Path, *, ema: bool = True) -> tuple[DepthNet, DepthConfig, dict]:
    """The trained depth network (eval mode, CPU), its run config and checkpoint info."""
    return load_run_model(path, DepthConfig, lambda c: DepthNet(c.model), ema=ema)


# ----------------------------------------------------------------------------- evaluation


class ConsistencyScorer:
    """Predicts depth and edge maps of one frame's views (at the network's image size) and scores
    LiDAR point sets against them (:func:`frame_consistency`)."""

    def __init__(self, model: DepthNet, *, ground_height: float = 0.3, edge_radius: float = 2.0, edge_ratio: float = 1.5,
                 device: str | torch.device = "cpu"):  # fmt: skip
        self.model = model.to(device).eval()
        self.device = device
        self.ground_height, self.edge_radius, self.edge_ratio = ground_height, edge_radius, edge_ratio

    @torch.no_grad()
    def maps(self, images: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images (v, h, w, 3) uint8 at the network's image size; intrinsics (v, 3, 3) ->
        depth (v, h/2, w/2) metres and edge strength (v, h, w)."""
        x = to_model_input(torch.from_numpy(rearrange(images, "v h w c -> v c h w").copy()).to(self.device))
        fx = torch.from_numpy(np.asarray(intrinsics)[:, 0, 0]).float().to(self.device)
        depth = self.model(x, fx)[:, 0].float().cpu().numpy()
        return depth, np.stack([edge_strength(im) for im in images])

    def score(self, depth: np.ndarray, edges: np.ndarray, intrinsics: np.ndarray, cam_to_ego: np.ndarray, points_ego: np.ndarray) -> FrameStats:
        m = self.model.cfg
        return frame_consistency(depth, edges, intrinsics, cam_to_ego, points_ego, min_depth=m.min_depth, max_depth=m.max_depth,
                                 ground_height=self.ground_height, edge_radius=self.edge_radius, edge_ratio=self.edge_ratio)  # fmt: skip


def evaluate_root(
    scorer: ConsistencyScorer,
    root: str | Path,
    *,
    views: tuple[str, ...] = CAMERA_CHANNELS,
    max_samples: int | None = None,
    control: bool = True,
    progress: bool = True,
) -> tuple[list[FrameStats], list[FrameStats] | None, list[str]]:
    """Score every keyframe of a nuScenes-format root: its images against its own LIDAR_TOP sweep
    (matched) and, with ``control``, against the sweep of the keyframe half the list away
    (mismatched; a different scene when the root has several, else a distant moment).

    Returns (matched stats, mismatched stats or None, scene name per frame).
    """
    from tqdm import tqdm

    from ..data.nuscenes import NuScenesReader

    reader = NuScenesReader(root)
    spec = ClipSpec(num_frames=1, window_stride=1, rate="keyframe", views=views, image_size=scorer.model.cfg.image_size, lidar="none")
    index = ClipIndex(reader, spec)
    n = len(index) if max_samples is None else min(len(index), max_samples)
    if n == 0:
        raise DataError("no keyframes to evaluate", root)
    if control and n < 2:
        raise DataError("the mismatched control needs at least two keyframes", root)
    maps, matched, scenes, lidar_src = [], [], [], []
    for i in tqdm(range(n), desc="consistency", disable=not progress, unit="frame"):
        clip = index.load(i)
        depth, edges = scorer.maps(clip.images[0], clip.intrinsics)
        src = (clip.sample_tokens[0], clip.ego_to_global[0])
        matched.append(scorer.score(depth, edges, clip.intrinsics, clip.cam_to_ego, sample_lidar_ego(reader, *src)))
        scenes.append(clip.clip_id.rsplit(":", 1)[0])
        if control:
            maps.append((depth, edges, clip.intrinsics, clip.cam_to_ego))
            lidar_src.append(src)
    if not control:
        return matched, None, scenes
    mismatched = []
    for i in tqdm(range(n), desc="consistency control", disable=not progress, unit="frame"):
        mismatched.append(scorer.score(*maps[i], sample_lidar_ego(reader, *lidar_src[(i + n // 2) % n])))
    return matched, mismatched, scenes
