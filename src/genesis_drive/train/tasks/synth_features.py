"""``synth_features``: training recipe of the FD_synth feature network
(:class:`~genesis_drive.models.evaluators.synth_features.SynthFeatureNet`) on SynthTown clips.

Targets are computed from SynthTown annotations (every target is exact; none needs a human label):

frame level (one camera image)
    * ``channel``: which of the V cameras took it (cross-entropy) -- view-specific geometry;
    * ``presence`` / ``count`` per object group (vehicle, pedestrian, cycle, obstacle): boxes whose
      centre projects into the image at a depth in ``(0.5, max_range]`` metres (BCE on presence,
      MSE on ``log1p(count)``);
    * ``layout``: a coarse semantic map (``SEG_CLASSES`` at ``seg_stride``) decoded from the
      project's per-camera layout rendering (:func:`genesis_drive.layout.camera.render_layout`):
      cross-entropy against the per-block class fractions -- road shape, lanes and objects;
    * ``time`` / ``weather``: the scene's time of day and weather when its description names them
      (words of ``TIMES_OF_DAY`` / ``WEATHERS``); unknown scenes are ignored (label -1).
clip level (T >= 2 frames of one view; each clip enters the temporal head in one of the
:data:`FRAME_ORDERS`, drawn with ``order_weights``: as recorded, reversed, or another permutation)
    * ``order``: which of the three (cross-entropy) -- the clip embedding must tell the direction
      of time (reversed clips show the ego driving backwards) and temporal incoherence (shuffled
      frames jump), which FVD is meant to catch;
    * ``motion``: signed ego velocity along the clip's time direction, (speed m/s = path length over
      duration, yaw rate rad/s), negated for reversed clips (MSE on scaled values; not on shuffled
      clips, whose motion is undefined).
multi-view clip level
    * ``order_clip`` (with ``loss.order_clip > 0``; every view of a clip then gets the same
      order): cross-entropy of the clip's order from the sum over its views of the per-view
      log-probabilities. 0 (default): views draw their orders independently and this term is absent.
    * ``order_joint`` (only with a multi-view order head, ``model.joint_order > 0``): each
      multi-view clip draws a second order, shared by its views, in which the temporal head runs
      once more; cross-entropy of the multi-view order head, which reads the motion summaries of all
      the clip's views together. The per-view terms keep their own (independent) orders.

The metric (FD_synth / FD_synth-video, extractors, loading a trained run) is ``eval/synth_features.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...data.clips import ClipSpec
from ...data.geometry import project_points
from ...data.nuscenes import NuScenesReader
from ...data.schema import Box3D, Clip
from ...errors import ConfigError, DataError
from ...layout.camera import CameraLayoutConfig, render_layout
from ...layout.colors import CLASS_COLORS, FACE_SHADES, MAP_COLORS, POSE_BOX_SHADE, class_color
from ...layout.frames import CameraModel, clip_cameras, frame_map
from ...models.blocks import to_model_input
from ...models.evaluators.synth_features import (
    FRAME_ORDERS,
    OBJECT_GROUPS,
    SEG_CLASSES,
    TIMES_OF_DAY,
    WEATHERS,
    SynthFeatureNet,
    SynthFeatureNetConfig,
)
from ..config import TrainConfig
from ..task import TaskDef
from .clip_task import ClipCut, ClipTask

__all__ = [
    "SYNTH_FEATURES_TASK",
    "SYNTH_FEATURE_PRESETS",
    "SynthFeatureLossWeights",
    "SynthFeatureTargets",
    "SynthFeaturesConfig",
    "SynthFeaturesTask",
    "class_fractions",
    "ego_motion",
    "CachedSamples",
    "clip_orders",
    "layout_semantics",
    "scene_conditions",
    "visible_object_counts",
]

_MAP_CLASS = {"drivable_area": 1, "walkway": 2, "ped_crossing": 3, "lane_divider": 4, "road_divider": 4, "road_edge": 4}


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class SynthFeatureLossWeights:
    """Weights of the loss terms (see the module docstring)."""

    channel: float = 1.0
    presence: float = 1.0
    count: float = 1.0
    layout: float = 1.0
    conditions: float = 1.0
    motion: float = 1.0
    order: float = 1.0
    order_clip: float = 0.0
    order_joint: float = 1.0


@dataclass(frozen=True)
class SynthFeaturesConfig:
    """Run config of the ``synth_features`` task.

    clips: clip cutting (frames at 12 Hz camera rate by default, at least 2 per clip;
    ``clips.manifest`` for curated clips). max_range: metres, farthest object counted in a view.
    layout_stride: frames 0, s, 2s, ... of a clip get layout-map targets (rendering them dominates
    data loading). order_weights: relative sampling weights of the :data:`FRAME_ORDERS` (in order,
    reversed, shuffled) a clip enters the temporal head in (shuffled is never drawn for 2-frame
    clips). speed_scale (m/s) and yaw_rate_scale (rad/s) normalise the motion regression.
    cache_samples: keep every transformed training sample in memory after its first load (the
    samples are deterministic; with ``train.num_workers > 0`` each worker keeps its own cache).
    """

    model: SynthFeatureNetConfig = field(default_factory=SynthFeatureNetConfig)
    clips: ClipCut = field(default_factory=lambda: ClipCut(num_frames=8, frame_stride=2, window_stride=8, rate="camera"))
    max_range: float = 60.0
    layout_stride: int = 2
    order_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    speed_scale: float = 10.0
    yaw_rate_scale: float = 0.5
    cache_samples: bool = False
    loss: SynthFeatureLossWeights = field(default_factory=SynthFeatureLossWeights)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.layout_stride < 1:
            raise ConfigError(f"layout_stride must be >= 1, got {self.layout_stride}")
        if len(self.order_weights) != len(FRAME_ORDERS) or min(self.order_weights) < 0 or sum(self.order_weights) <= 0:
            raise ConfigError(f"order_weights must be {len(FRAME_ORDERS)} non-negative weights (in order, reversed, "
                              f"shuffled) with a positive sum, got {self.order_weights}")  # fmt: skip
        if self.clips.num_frames < 2:
            raise ConfigError(f"clips.num_frames must be >= 2 (the temporal head compares consecutive frames), got {self.clips.num_frames}")
        if self.max_range <= 0.5:
            raise ConfigError(f"max_range must exceed 0.5 m, got {self.max_range}")
        if self.speed_scale <= 0 or self.yaw_rate_scale <= 0:
            raise ConfigError("speed_scale and yaw_rate_scale must be > 0")


def _tiny() -> SynthFeaturesConfig:
    return SynthFeaturesConfig(
        model=SynthFeatureNetConfig(image_size=(64, 36), widths=(16, 32, 64), seg_stride=4, num_features=64,
                                    num_video_features=64, temporal_width=64, motion_widths=(16, 32, 32), view_gate=16),
        clips=ClipCut(num_frames=4, frame_stride=4, window_stride=4, rate="camera"),
        layout_stride=4,
        cache_samples=True,
        loss=SynthFeatureLossWeights(order=2.0, motion=2.0),
        train=TrainConfig(steps=6000, batch_size=4, lr=1e-3, warmup_steps=100, schedule="cosine", min_lr=2e-5,
                          ema_decay=0.998, log_every=50, ckpt_every=500, preview_every=0),
    )  # fmt: skip


def _paper() -> SynthFeaturesConfig:
    return SynthFeaturesConfig(
        model=SynthFeatureNetConfig(image_size=(256, 144), widths=(32, 64, 128, 256, 384), seg_stride=8, num_features=256,
                                    num_video_features=256, temporal_width=256, motion_widths=(32, 64, 64), view_gate=32),
        clips=ClipCut(num_frames=8, frame_stride=2, window_stride=8, rate="camera"),
        layout_stride=2,
        train=TrainConfig(steps=20000, batch_size=8, lr=5e-4, warmup_steps=500, schedule="cosine", min_lr=1e-5,
                          weight_decay=0.01, ema_decay=0.999, ckpt_every=1000, preview_every=0, num_workers=8),
    )  # fmt: skip


SYNTH_FEATURE_PRESETS: dict[str, Callable[[], SynthFeaturesConfig]] = {"tiny": _tiny, "paper": _paper}


# ----------------------------------------------------------------------------- targets from annotations


def _palette() -> tuple[np.ndarray, np.ndarray]:
    """Sorted packed RGB codes of every exact layout colour and the :data:`SEG_CLASSES` index of each."""
    table: dict[int, int] = {0: 0}

    def put(rgb: tuple[int, int, int], cls: int) -> None:
        code = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
        if table.get(code, cls) != cls:
            raise RuntimeError(f"layout colour {rgb} is shared by two classes")
        table[code] = cls

    for layer, cls in _MAP_CLASS.items():
        put(MAP_COLORS[layer], cls)
    shades = {1.0, POSE_BOX_SHADE, *FACE_SHADES.values()}
    for group, classes in OBJECT_GROUPS.items():
        for det in classes:
            for s in shades:
                put(class_color(det, s), SEG_CLASSES.index(group))
    missing = set(CLASS_COLORS) - {c for cl in OBJECT_GROUPS.values() for c in cl}
    if missing:
        raise RuntimeError(f"detection classes without an object group: {missing}")
    codes = np.array(sorted(table), dtype=np.int64)
    return codes, np.array([table[c] for c in codes], dtype=np.int64)


_CODES, _CLASSES = _palette()
_RGB = np.stack([(_CODES >> 16) & 255, (_CODES >> 8) & 255, _CODES & 255], axis=-1)  # K 3, the exact colours


def layout_semantics(layout: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Per-pixel :data:`SEG_CLASSES` index (H, W) int64 of a layout image (H, W, 3) uint8; -1 for
    colours that are not exact layout colours, or with ``nearest`` the class of the nearest exact
    colour (squared RGB distance; for a layout image that went through a lossy codec)."""
    img = np.asarray(layout)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"layout image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if nearest:
        dist = ((img[..., None, :].astype(np.int64) - _RGB) ** 2).sum(-1)  # H W K
        return _CLASSES[dist.argmin(-1)]
    code = (img[..., 0].astype(np.int64) << 16) | (img[..., 1].astype(np.int64) << 8) | img[..., 2]
    pos = np.clip(np.searchsorted(_CODES, code), 0, len(_CODES) - 1)
    return np.where(_CODES[pos] == code, _CLASSES[pos], -1)


def class_fractions(labels: np.ndarray, stride: int, num_classes: int = len(SEG_CLASSES)) -> np.ndarray:
    """Fractions (K, H/s, W/s) float32 of each class among the known pixels of every s x s block of
    ``labels`` (H, W) (-1 = unknown, not counted). A block without known pixels is all zeros."""
    h, w = labels.shape
    if h % stride or w % stride:
        raise ValueError(f"label map {h}x{w} is not divisible by stride {stride}")
    onehot = (labels[None] == np.arange(num_classes)[:, None, None]).astype(np.float32)
    counts = onehot.reshape(num_classes, h // stride, stride, w // stride, stride).sum(axis=(2, 4))
    total = counts.sum(axis=0, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def scene_conditions(description: str) -> tuple[int, int]:
    """(time-of-day index, weather index) named by whole words of a scene description; -1 when absent."""
    words = set(re.findall(r"[a-z]+", description.lower()))

    def first(vocab: tuple[str, ...]) -> int:
        return next((i for i, v in enumerate(vocab) if v in words), -1)

    return first(TIMES_OF_DAY), first(WEATHERS)


def visible_object_counts(camera: CameraModel, boxes: Sequence[Box3D], max_range: float) -> np.ndarray:
    """Objects per :data:`OBJECT_GROUPS` group (G,) float32 among ``boxes`` (ego frame) whose centre
    projects inside ``camera``'s image at a camera depth in (0.5, max_range] metres."""
    out = np.zeros(len(OBJECT_GROUPS), dtype=np.float32)
    group_of = {c: i for i, cl in enumerate(OBJECT_GROUPS.values()) for c in cl}
    boxes = [b for b in boxes if b.detection_class in group_of]
    if not boxes:
        return out
    pc = camera.to_camera(np.stack([b.center for b in boxes]))
    uv, front = project_points(pc, camera.intrinsics, min_depth=0.5)
    z = pc[:, 2]
    with np.errstate(invalid="ignore"):
        ok = front & (z <= max_range) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    for b, keep in zip(boxes, ok):
        if keep:
            out[group_of[b.detection_class]] += 1
    return out


def ego_motion(clip: Clip) -> tuple[float, float]:
    """(mean speed m/s, mean yaw rate rad/s) of the ego over the clip; (0, 0) for one frame."""
    if clip.num_frames < 2:
        return 0.0, 0.0
    dur = (clip.timestamps[-1] - clip.timestamps[0]) / 1e6
    if dur <= 0:
        raise DataError(f"clip {clip.clip_id} has non-increasing timestamps", None, "timestamps")
    xy = clip.ego_trajectory[:, :2]
    yaw = np.unwrap(clip.ego_trajectory[:, 2])
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum() / dur), float((yaw[-1] - yaw[0]) / dur)


class SynthFeatureTargets:
    """Clip -> training sample: ``images`` (v t 3 h w) uint8 and the targets of the module docstring.

    descriptions: scene token -> scene description (for time of day / weather).
    """

    def __init__(self, cfg: SynthFeaturesConfig, descriptions: Mapping[str, str]):
        self.cfg = cfg
        self.conditions = {tok: scene_conditions(d) for tok, d in descriptions.items()}
        self.layout_cfg = CameraLayoutConfig()

    def __call__(self, clip: Clip) -> dict[str, torch.Tensor]:
        cfg, m = self.cfg, self.cfg.model
        if clip.views != tuple(m.views):
            raise DataError(f"clip {clip.clip_id} has views {clip.views}, the model expects {m.views}")
        t_n, v_n = clip.num_frames, clip.num_views
        cams = clip_cameras(clip)
        fractions = np.zeros((v_n, t_n, len(SEG_CLASSES), m.image_size[1] // m.seg_stride, m.image_size[0] // m.seg_stride), np.float32)
        counts = np.zeros((v_n, t_n, len(OBJECT_GROUPS)), np.float32)
        for t in range(t_n):
            layers = frame_map(clip, t) if t % cfg.layout_stride == 0 else None
            for v in range(v_n):
                counts[v, t] = visible_object_counts(cams[v], clip.boxes[t], cfg.max_range)
                if layers is not None:  # other frames keep all-zero fractions: no layout loss there
                    layout = render_layout(cams[v], clip.boxes[t], clip.poses[t], layers, self.layout_cfg)
                    fractions[v, t] = class_fractions(layout_semantics(layout), m.seg_stride)
        speed, yaw_rate = ego_motion(clip)
        tod, weather = self.conditions.get(clip.scene_token, (-1, -1))
        return {
            "images": torch.from_numpy(rearrange(clip.images, "t v h w c -> v t c h w").copy()),
            "channel": torch.arange(v_n),
            "counts": torch.from_numpy(counts),
            "layout": torch.from_numpy(fractions),
            "motion": torch.tensor([speed / cfg.speed_scale, yaw_rate / cfg.yaw_rate_scale], dtype=torch.float32),
            "time": torch.tensor(tod),
            "weather": torch.tensor(weather),
        }


def clip_orders(n: int, t: int, weights: Sequence[float], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame orders (n, t) and their :data:`FRAME_ORDERS` index (n,) int64, drawn with relative
    ``weights``: 0 the identity, 1 the reversal, 2 a uniformly random permutation that is neither
    (redrawn until it is; needs t >= 3, so never drawn for t = 2). Uses the torch global RNG."""
    if t < 2:
        raise ValueError(f"frame orders need clips of at least 2 frames, got {t}")
    w = torch.tensor([float(x) for x in weights], device=device)
    if t == 2:
        w[2] = 0.0
    if w.sum() <= 0:
        raise ValueError(f"order weights {tuple(weights)} leave nothing to draw for {t}-frame clips")
    kind = torch.multinomial(w / w.sum(), n, replacement=True)
    ident = torch.arange(t, device=device).expand(n, t)
    perm = torch.argsort(torch.rand(n, t, device=device), dim=1)
    bad = (perm == ident).all(dim=1) | (perm == ident.flip(1)).all(dim=1)
    while t >= 3 and bad.any():
        perm[bad] = torch.argsort(torch.rand(int(bad.sum()), t, device=device), dim=1)
        bad = (perm == ident).all(dim=1) | (perm == ident.flip(1)).all(dim=1)
    order = torch.where((kind == 1)[:, None], ident.flip(1), torch.where((kind == 2)[:, None], perm, ident))
    return order.contiguous(), kind


class CachedSamples(torch.utils.data.Dataset):
    """A map-style dataset that keeps each item of ``dataset`` after its first ``__getitem__``
    (for deterministic, costly samples: the layout-map targets dominate loading)."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset
        self.items: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        if i not in self.items:
            self.items[i] = self.dataset[i]
        return self.items[i]


# ----------------------------------------------------------------------------- task


class SynthFeaturesTask(ClipTask):
    """Training recipe of the FD_synth network on a nuScenes-format root (SynthTown)."""

    name = "synth_features"
    cfg: SynthFeaturesConfig

    def build_model(self) -> nn.Module:
        return SynthFeatureNet(self.cfg.model)

    def clip_spec(self) -> ClipSpec:
        return self.clips.spec(self.cfg.model.views, self.cfg.model.image_size)

    def train_dataset(self) -> torch.utils.data.Dataset:
        ds = super().train_dataset()
        return CachedSamples(ds) if self.cfg.cache_samples else ds

    def make_transform(self, reader: NuScenesReader) -> SynthFeatureTargets:
        descriptions = {tok: reader.nusc.get("scene", tok)["description"] for tok in reader.scene_tokens()}
        return SynthFeatureTargets(self.cfg, descriptions)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        cfg, w = self.cfg, self.cfg.loss
        images = batch["images"]  # b v t c h w
        b, v, t = images.shape[:3]
        x = to_model_input(rearrange(images, "b v t c h w -> (b v) t c h w"))
        if w.order_clip > 0:  # one order per multi-view clip, shared by its views
            order, kind_clip = clip_orders(b, t, cfg.order_weights, x.device)
            order, kind = order.repeat_interleave(v, dim=0), kind_clip.repeat_interleave(v)
        else:
            order, kind = clip_orders(b * v, t, cfg.order_weights, x.device)
        mv_order = kind_joint = None
        if cfg.model.joint_order > 0:  # the multi-view order head: a second order per multi-view clip, shared by its views
            mv_order, kind_joint = clip_orders(b, t, cfg.order_weights, x.device)
            mv_order = mv_order.repeat_interleave(v, dim=0)
        out = model(x, order, multiview_order=mv_order)
        f32 = {k: val.float() for k, val in out.items()}
        channel = rearrange(batch["channel"], "b v -> (b v)")[:, None].expand(b * v, t)
        counts = rearrange(batch["counts"], "b v t g -> (b v) t g")
        layout = rearrange(batch["layout"], "b v t k h w -> (b v t) k h w")
        terms = {
            "channel": F.cross_entropy(rearrange(f32["channel"], "n t k -> (n t) k"), channel.reshape(-1)),
            "presence": F.binary_cross_entropy_with_logits(f32["presence"], (counts > 0).float()),
            "count": F.mse_loss(f32["count"], torch.log1p(counts)),
            # mean over the blocks that have a target (frames between layout_stride frames have none)
            "layout": F.cross_entropy(rearrange(f32["layout"], "n t k h w -> (n t) k h w"), layout, reduction="none").sum()
            / layout.sum(1).gt(0).sum().clamp_min(1),
        }
        # heads without a target in this batch still join the graph (x 0), so DDP sees every parameter used
        cond = []
        for name in ("time", "weather"):
            labels = batch[name][:, None, None].expand(b, v, t).reshape(-1)
            if (labels >= 0).any():
                cond.append(F.cross_entropy(rearrange(f32[name], "n t k -> (n t) k"), labels, ignore_index=-1))
            else:
                cond.append(f32[name].sum() * 0.0)
        terms["conditions"] = torch.stack(cond).sum()
        # signed motion along the clip's time direction: reversed clips drive backwards, turning the other way
        sign = torch.where(kind == 1, -1.0, 1.0)[:, None]
        motion = batch["motion"][:, None].expand(b, v, 2).reshape(b * v, 2) * sign
        keep = kind != 2
        if keep.any():
            terms["motion"] = F.mse_loss(f32["motion"][keep], motion[keep])
        else:
            terms["motion"] = f32["motion"].sum() * 0.0
        terms["order"] = F.cross_entropy(f32["order"], kind)
        if w.order_clip > 0:
            votes = rearrange(f32["order"].log_softmax(dim=-1), "(b v) k -> b v k", b=b).sum(dim=1)
            terms["order_clip"] = F.cross_entropy(votes, kind_clip)
        if kind_joint is not None:
            terms["order_joint"] = F.cross_entropy(f32["order_joint"], kind_joint)
        total = sum(getattr(w, k) * val for k, val in terms.items())
        return {"loss": total, **{f"loss_{k}": val.detach() for k, val in terms.items()}}


SYNTH_FEATURES_TASK = TaskDef(
    config_type=SynthFeaturesConfig,
    presets=SYNTH_FEATURE_PRESETS,
    build=SynthFeaturesTask,
    description="FD_synth feature network (frame + clip embeddings) trained on SynthTown annotations",
)
