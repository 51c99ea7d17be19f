"""FD_synth: a feature network trained on SynthTown, so the embedded benchmark has a Fréchet distance
whose features mean something offline (no Inception / I3D weights are needed).

The network is a small residual CNN over single camera frames plus a temporal head over a clip of
one view. Its *frame embedding* (``num_features``) feeds FD_synth, its *clip embedding*
(``num_video_features``) feeds FD_synth-video. Both are trained jointly with supervised targets
computed from SynthTown annotations (every target is exact; none needs a human label):

frame level (one camera image)
    * ``channel``: which of the V cameras took it (cross-entropy) -- view-specific geometry;
    * ``presence`` / ``count`` per object group (vehicle, pedestrian, cycle, obstacle): boxes whose
      centre projects into the image at a depth in ``(0.5, max_range]`` metres (BCE on presence,
      MSE on ``log1p(count)``);
    * ``layout``: a coarse semantic map (``SEG_CLASSES`` at ``seg_stride``) decoded from the
      project's per-camera layout rendering (:func:`genesis_drive.layout.camera.render_layout`):
      cross-entropy against the per-block class fractions -- road shape, lanes and objects;
    * ``time`` / ``weather``: the scene's time of day and weather when its description names them
      (words of :data:`TIMES_OF_DAY` / :data:`WEATHERS`); unknown scenes are ignored (label -1).
clip level (T frames of one view)
    * ``motion``: ego speed (m/s, path length over duration) and yaw rate (rad/s) (MSE on scaled values);
    * ``shuffled``: whether the frames were put in a random non-identity order (BCE) -- the clip
      embedding becomes sensitive to temporal incoherence, which FVD is meant to catch.

Report the numbers as ``FD_synth`` / ``FD_synth-video``, never FID/FVD: the features are not
Inception's and values are not comparable to published FIDs.

This module also holds pieces the other learned evaluators reuse: :class:`ConvBlock`,
:class:`ImageEncoder`, :func:`to_model_input` and :func:`load_run_model` (a model, its run config
and checkpoint identity from a run directory; safetensors + JSON only, nothing unpickled).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..config import config_from_dict
from ..data.clips import ClipDataset, ClipIndex, ClipSpec, collate_clips
from ..data.geometry import project_points
from ..data.schema import CAMERA_CHANNELS, Box3D, Clip
from ..errors import ConfigError, DataError
from ..layout.camera import CameraLayoutConfig, render_layout
from ..layout.colors import (
    CLASS_COLORS,
    FACE_SHADES,
    MAP_COLORS,
    POSE_BOX_SHADE,
    class_color,
)
from ..layout.frames import CameraModel, clip_cameras, frame_map
from ..train.checkpoint import latest_checkpoint, load_weights, read_state
from ..train.config import TrainConfig
from ..train.task import Task, TaskDef
from ..world.lighting import LIGHTING_PRESETS
from ..world.lighting import WEATHERS as _WEATHERS
from .extractors import resize_images, to_unit_float

__all__ = [
    "OBJECT_GROUPS",
    "SEG_CLASSES",
    "SYNTH_FEATURES_TASK",
    "SYNTH_FEATURE_PRESETS",
    "TIMES_OF_DAY",
    "WEATHERS",
    "ConvBlock",
    "ImageEncoder",
    "SynthClipExtractor",
    "SynthFeatureNet",
    "SynthFeatureNetConfig",
    "SynthFeatureTargets",
    "SynthFeaturesConfig",
    "SynthFeaturesTask",
    "SynthFrameExtractor",
    "class_fractions",
    "ego_motion",
    "layout_semantics",
    "load_run_model",
    "load_synth_extractor",
    "load_synth_net",
    "scene_conditions",
    "to_model_input",
    "visible_object_counts",
]

#: Classes of the coarse layout map (index 0 = nothing drawn: sky, buildings, unmapped ground).
SEG_CLASSES: tuple[str, ...] = (
    "background", "drivable_area", "walkway", "ped_crossing", "lane_line", "vehicle", "pedestrian", "cycle", "obstacle",
)  # fmt: skip
#: Object groups (detection classes per group) for presence/count targets and the layout map.
OBJECT_GROUPS: dict[str, tuple[str, ...]] = {
    "vehicle": ("car", "truck", "bus", "trailer", "construction_vehicle"),
    "pedestrian": ("pedestrian",),
    "cycle": ("motorcycle", "bicycle"),
    "obstacle": ("traffic_cone", "barrier"),
}
#: Time-of-day and weather vocabularies (SynthTown's lighting presets and weathers).
TIMES_OF_DAY: tuple[str, ...] = tuple(LIGHTING_PRESETS)
WEATHERS: tuple[str, ...] = tuple(_WEATHERS)

_MAP_CLASS = {"drivable_area": 1, "walkway": 2, "ped_crossing": 3, "lane_divider": 4, "road_divider": 4, "road_edge": 4}


# ----------------------------------------------------------------------------- shared building blocks


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class ConvBlock(nn.Module):
    """Residual block: conv3x3(stride) - GroupNorm - SiLU - conv3x3 - GroupNorm, + (projected) input, SiLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(h)) + self.skip(x))


class ImageEncoder(nn.Module):
    """``(n, 3, h, w)`` in [-1, 1] -> feature maps at strides ``2, 4, ..., 2**len(widths)``.

    A stride-2 stem to ``widths[0]`` channels, then one stride-2 :class:`ConvBlock` per further width.
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        if not widths or min(widths) < 1:
            raise ConfigError(f"encoder widths must be positive channel counts, got {widths}")
        self.widths = tuple(widths)
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.GroupNorm(_groups(widths[0]), widths[0]), nn.SiLU())
        self.stages = nn.ModuleList(ConvBlock(a, b, 2) for a, b in itertools.pairwise(widths))

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(2 ** (i + 1) for i in range(len(self.widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float 0..1 images -> float in [-1, 1] (the learned evaluators' input range)."""
    return to_unit_float(images) * 2.0 - 1.0


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_run_model(
    path: str | Path, config_type: type, make_model: Callable[[Any], nn.Module], *, ema: bool = True
) -> tuple[nn.Module, Any, dict]:
    """A trained model from a run directory (its latest checkpoint) or a checkpoint directory.

    The run config is read from the checkpoint's ``state.json`` (key ``config``, as written by the
    training loop) into ``config_type`` (strict); ``make_model(cfg)`` builds the network, whose
    weights (EMA when present and ``ema``) are loaded strictly from safetensors. Returns
    ``(model in eval mode, run config, info)``; info holds the checkpoint path, step, task name and
    the SHA-256 of the weight files (for reference-statistics cache keys).
    """
    path = Path(path)
    ckpt = path if (path / "state.json").is_file() else latest_checkpoint(path)
    if ckpt is None:
        raise DataError("no checkpoint here (expected a run directory with checkpoints/step_*/ or a checkpoint directory)", path)
    state = read_state(ckpt)
    raw = state.get("config")
    if not isinstance(raw, Mapping):
        raise DataError("checkpoint state has no run config (a mapping)", ckpt / "state.json", "config")
    try:
        cfg = config_from_dict(config_type, raw)
    except ConfigError as e:
        raise DataError(f"run config does not fit {config_type.__name__} (a checkpoint of another task?): {e}",
                        ckpt / "state.json", "config") from None
    model = make_model(cfg)
    weights = load_weights(ckpt, ema=ema)
    missing, unexpected = set(model.state_dict()) - set(weights), set(weights) - set(model.state_dict())
    if missing or unexpected:
        raise DataError(f"weights do not match {type(model).__name__}: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}", ckpt / "model.safetensors")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise DataError(f"weights do not match {type(model).__name__}: {e}", ckpt / "model.safetensors") from None
    files = [n for n in ("model.safetensors", "ema.safetensors") if n in state["files"] and (ema or n == "model.safetensors")]
    digest = hashlib.sha256("".join(_file_sha256(ckpt / n) for n in files).encode()).hexdigest()
    info = {"checkpoint": str(ckpt), "step": int(state["step"]), "task": state.get("task"), "sha256": digest, "ema": ema}
    return model.eval(), cfg, info


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
    for gi, (group, classes) in enumerate(OBJECT_GROUPS.items()):
        for det in classes:
            for s in shades:
                put(class_color(det, s), SEG_CLASSES.index(group))
    missing = set(CLASS_COLORS) - {c for cl in OBJECT_GROUPS.values() for c in cl}
    if missing:
        raise RuntimeError(f"detection classes without an object group: {missing}")
    codes = np.array(sorted(table), dtype=np.int64)
    return codes, np.array([table[c] for c in codes], dtype=np.int64)


_CODES, _CLASSES = _palette()


def layout_semantics(layout: np.ndarray) -> np.ndarray:
    """Per-pixel :data:`SEG_CLASSES` index (H, W) int64 of a layout image (H, W, 3) uint8; -1 for
    colours that are not exact layout colours."""
    img = np.asarray(layout)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"layout image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
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


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class SynthFeatureNetConfig:
    """The FD_synth network.

    image_size: (width, height) pixels the network sees (clips are resized to it; extractors resize
    any input to it). widths: encoder channels per stride-2 stage. seg_stride: stride of the layout
    map head (one of the encoder strides, dividing the image size). num_features / num_video_features:
    frame / clip embedding sizes. temporal_width: channels of the temporal 1D convolutions.
    views: camera channels, in the order of the ``channel`` target.
    """

    image_size: tuple[int, int] = (128, 72)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    seg_stride: int = 8
    num_features: int = 256
    num_video_features: int = 256
    temporal_width: int = 256
    views: tuple[str, ...] = CAMERA_CHANNELS

    def __post_init__(self) -> None:
        w, h = self.image_size
        strides = tuple(2 ** (i + 1) for i in range(len(self.widths)))
        if self.seg_stride not in strides:
            raise ConfigError(f"model.seg_stride must be one of the encoder strides {strides}, got {self.seg_stride}")
        if w % self.seg_stride or h % self.seg_stride:
            raise ConfigError(f"model.image_size {self.image_size} must be divisible by model.seg_stride={self.seg_stride}")
        if min(self.num_features, self.num_video_features, self.temporal_width) < 2 or not self.views:
            raise ConfigError("model.num_features, num_video_features, temporal_width must be >= 2 and views non-empty")


@dataclass(frozen=True)
class SynthFeatureLossWeights:
    """Weights of the loss terms (see the module docstring)."""

    channel: float = 1.0
    presence: float = 1.0
    count: float = 1.0
    layout: float = 1.0
    conditions: float = 1.0
    motion: float = 1.0
    shuffled: float = 1.0


@dataclass(frozen=True)
class SynthFeaturesConfig:
    """Run config of the ``synth_features`` task.

    num_frames / frame_stride / window_stride: clip cutting at 12 Hz camera rate (see ClipSpec).
    max_range: metres, farthest object counted in a view. layout_stride: frames 0, s, 2s, ... of a
    clip get layout-map targets (rendering them dominates data loading). shuffle_prob: probability that a clip's
    frames are shuffled for the ``shuffled`` target. speed_scale (m/s) and yaw_rate_scale (rad/s)
    normalise the motion regression.
    """

    model: SynthFeatureNetConfig = field(default_factory=SynthFeatureNetConfig)
    num_frames: int = 8
    frame_stride: int = 2
    window_stride: int = 8
    max_range: float = 60.0
    layout_stride: int = 2
    shuffle_prob: float = 0.5
    speed_scale: float = 10.0
    yaw_rate_scale: float = 0.5
    loss: SynthFeatureLossWeights = field(default_factory=SynthFeatureLossWeights)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if min(self.num_frames, self.frame_stride, self.window_stride, self.layout_stride) < 1:
            raise ConfigError("num_frames, frame_stride, window_stride and layout_stride must be >= 1")
        if not 0 <= self.shuffle_prob <= 1 or self.max_range <= 0.5:
            raise ConfigError("shuffle_prob must lie in [0, 1] and max_range exceed 0.5 m")
        if self.speed_scale <= 0 or self.yaw_rate_scale <= 0:
            raise ConfigError("speed_scale and yaw_rate_scale must be > 0")

    def clip_spec(self) -> ClipSpec:
        return ClipSpec(num_frames=self.num_frames, frame_stride=self.frame_stride, window_stride=self.window_stride,
                        rate="camera", views=self.model.views, image_size=self.model.image_size, lidar="none")  # fmt: skip


def _tiny() -> SynthFeaturesConfig:
    return SynthFeaturesConfig(
        model=SynthFeatureNetConfig(image_size=(64, 36), widths=(16, 32, 64), seg_stride=4, num_features=64,
                                    num_video_features=64, temporal_width=64),
        num_frames=4, frame_stride=2, window_stride=4, layout_stride=4,
        train=TrainConfig(steps=200, batch_size=4, lr=1e-3, warmup_steps=20, ema_decay=0.99, log_every=10,
                          ckpt_every=100, preview_every=0),
    )  # fmt: skip


def _paper() -> SynthFeaturesConfig:
    return SynthFeaturesConfig(
        model=SynthFeatureNetConfig(image_size=(256, 144), widths=(32, 64, 128, 256, 384), seg_stride=8, num_features=256,
                                    num_video_features=256, temporal_width=256),
        num_frames=8, frame_stride=2, window_stride=8, layout_stride=2,
        train=TrainConfig(steps=20000, batch_size=8, lr=5e-4, warmup_steps=500, schedule="cosine", min_lr=1e-5,
                          weight_decay=0.01, ema_decay=0.999, ckpt_every=1000, preview_every=0, num_workers=8),
    )  # fmt: skip


SYNTH_FEATURE_PRESETS: dict[str, Callable[[], SynthFeaturesConfig]] = {"tiny": _tiny, "paper": _paper}


# ----------------------------------------------------------------------------- network


class SynthFeatureNet(nn.Module):
    """Frame encoder + linear target heads, and a temporal head over one view's frames.

    Inputs are float images in [-1, 1] at ``cfg.image_size``. :meth:`embed_frames` gives
    ``(n, num_features)``, :meth:`embed_clips` ``(n, num_video_features)``; :meth:`forward` gives
    every head's output for training.
    """

    def __init__(self, cfg: SynthFeatureNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.widths)
        self.seg_level = self.encoder.strides.index(cfg.seg_stride)
        top = cfg.widths[-1]
        self.embed = nn.Linear(2 * top, cfg.num_features)
        g = len(OBJECT_GROUPS)
        self.heads = nn.ModuleDict({
            "channel": nn.Linear(cfg.num_features, len(cfg.views)),
            "presence": nn.Linear(cfg.num_features, g),
            "count": nn.Linear(cfg.num_features, g),
            "time": nn.Linear(cfg.num_features, len(TIMES_OF_DAY)),
            "weather": nn.Linear(cfg.num_features, len(WEATHERS)),
        })  # fmt: skip
        self.seg_head = nn.Conv2d(cfg.widths[self.seg_level], len(SEG_CLASSES), 1)
        tw = cfg.temporal_width
        self.temporal = nn.Sequential(
            nn.Conv1d(cfg.num_features, tw, 3, padding=1), nn.SiLU(), nn.Conv1d(tw, tw, 3, padding=1), nn.SiLU()
        )
        self.video_embed = nn.Linear(2 * tw, cfg.num_video_features)
        self.video_heads = nn.ModuleDict({"motion": nn.Linear(cfg.num_video_features, 2), "shuffled": nn.Linear(cfg.num_video_features, 1)})

    def _check(self, x: torch.Tensor) -> None:
        w, h = self.cfg.image_size
        if x.shape[-3:] != (3, h, w):
            raise ValueError(f"SynthFeatureNet expects images (..., 3, {h}, {w}), got {tuple(x.shape)}")

    def _frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3, h, w) -> embedding (n, d), layout-level feature map (n, c, h/s, w/s)."""
        feats = self.encoder(x)
        top = feats[-1]
        pooled = torch.cat([top.mean(dim=(2, 3)), top.amax(dim=(2, 3))], dim=1)
        return self.embed(pooled), feats[self.seg_level]

    def _clips(self, emb: torch.Tensor) -> torch.Tensor:
        """Frame embeddings (n, t, d) -> clip embedding (n, dv)."""
        h = self.temporal(rearrange(emb, "n t d -> n d t"))
        return self.video_embed(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))

    def embed_frames(self, x: torch.Tensor) -> torch.Tensor:
        """FD_synth features ``(n, num_features)`` of images ``(n, 3, h, w)`` in [-1, 1]."""
        self._check(x)
        return self._frames(x)[0]

    def embed_clips(self, x: torch.Tensor) -> torch.Tensor:
        """FD_synth-video features ``(n, num_video_features)`` of clips ``(n, t, 3, h, w)`` in [-1, 1]."""
        self._check(x)
        n = x.shape[0]
        emb = self._frames(rearrange(x, "n t c h w -> (n t) c h w"))[0]
        return self._clips(rearrange(emb, "(n t) d -> n t d", n=n))

    def forward(self, x: torch.Tensor, order: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Clips ``(n, t, 3, h, w)`` in [-1, 1] -> head outputs.

        order: optional ``(n, t)`` frame order fed to the temporal head (frame heads always see the
        frames as given). Frame outputs are ``(n, t, ...)``; ``layout`` is ``(n, t, K, h/s, w/s)``.
        """
        self._check(x)
        n = x.shape[0]
        emb, fmap = self._frames(rearrange(x, "n t c h w -> (n t) c h w"))
        out = {k: rearrange(head(emb), "(n t) k -> n t k", n=n) for k, head in self.heads.items()}
        out["layout"] = rearrange(self.seg_head(fmap), "(n t) k h w -> n t k h w", n=n)
        seq = rearrange(emb, "(n t) d -> n t d", n=n)
        if order is not None:
            seq = torch.gather(seq, 1, order[..., None].expand_as(seq))
        vid = self._clips(seq)
        out["motion"] = self.video_heads["motion"](vid)
        out["shuffled"] = self.video_heads["shuffled"](vid)[:, 0]
        out["frame_features"], out["clip_features"] = rearrange(emb, "(n t) d -> n t d", n=n), vid
        return out


# ----------------------------------------------------------------------------- data


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


def _random_orders(n: int, t: int, prob: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame orders (n, t) and shuffled flags (n,): with probability ``prob`` a random non-identity
    permutation (a cyclic shift by 1 when a draw is the identity), else the identity."""
    ident = torch.arange(t, device=device).expand(n, t)
    if t < 2:
        return ident.clone(), torch.zeros(n, dtype=torch.bool, device=device)
    perm = torch.argsort(torch.rand(n, t, device=device), dim=1)
    same = (perm == ident).all(dim=1)
    perm[same] = torch.roll(ident[same], 1, dims=1)
    flag = torch.rand(n, device=device) < prob
    return torch.where(flag[:, None], perm, ident), flag


class SynthFeaturesTask(Task):
    """Training recipe of the FD_synth network on a nuScenes-format root (SynthTown)."""

    def __init__(self, cfg: SynthFeaturesConfig, data_root: Path | None):
        if data_root is None:
            raise ConfigError("the synth_features task needs a data root (a nuScenes-format SynthTown root)")
        self.cfg, self.data_root = cfg, Path(data_root)

    def build_model(self) -> nn.Module:
        return SynthFeatureNet(self.cfg.model)

    def train_dataset(self) -> ClipDataset:
        from ..data.nuscenes import NuScenesReader

        reader = NuScenesReader(self.data_root)
        index = ClipIndex(reader, self.cfg.clip_spec())
        if len(index) == 0:
            raise DataError(f"no clips of {self.cfg.num_frames} frames (stride {self.cfg.frame_stride}) in the root", self.data_root)
        descriptions = {tok: reader.nusc.get("scene", tok)["description"] for tok in reader.scene_tokens()}
        return ClipDataset(index, SynthFeatureTargets(self.cfg, descriptions))

    def collate(self, samples: list[dict]) -> dict:
        return collate_clips(samples)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        cfg, w = self.cfg, self.cfg.loss
        images = batch["images"]  # b v t c h w
        b, v, t = images.shape[:3]
        x = to_model_input(rearrange(images, "b v t c h w -> (b v) t c h w"))
        order, shuffled = _random_orders(b * v, t, cfg.shuffle_prob, x.device)
        out = model(x, order)
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
        motion = batch["motion"][:, None].expand(b, v, 2).reshape(b * v, 2)
        keep = ~shuffled
        if t >= 2 and keep.any():
            terms["motion"] = F.mse_loss(f32["motion"][keep], motion[keep])
        else:
            terms["motion"] = f32["motion"].sum() * 0.0
        if t >= 2:
            terms["shuffled"] = F.binary_cross_entropy_with_logits(f32["shuffled"], shuffled.float())
        else:
            terms["shuffled"] = f32["shuffled"].sum() * 0.0
        total = sum(getattr(w, k) * val for k, val in terms.items())
        return {"loss": total, **{f"loss_{k}": val.detach() for k, val in terms.items()}}


SYNTH_FEATURES_TASK = TaskDef(
    config_type=SynthFeaturesConfig,
    presets=SYNTH_FEATURE_PRESETS,
    build=SynthFeaturesTask,
    description="FD_synth feature network (frame + clip embeddings) trained on SynthTown annotations",
)


# ----------------------------------------------------------------------------- extractors


class SynthFrameExtractor(nn.Module):
    """FD_synth extractor: ``(b, 3, h, w)`` RGB (uint8 0..255 or float 0..1) -> resize (bilinear,
    to the network's ``image_size``, no crop) -> [-1, 1] -> frame embedding ``(b, num_features)``."""

    def __init__(self, net: SynthFeatureNet, info: Mapping[str, Any] | None = None):
        super().__init__()
        self.net = net
        self.num_features = net.cfg.num_features
        self.info = dict(info or {})

    def protocol(self) -> dict:
        w, h = self.net.cfg.image_size
        return {"input": "image", "network": "synth_features/frame", "size": [w, h], "resize_mode": "bilinear",
                "crop": "none", "value_range": [-1.0, 1.0], "weights_sha256": self.info.get("sha256"), "step": self.info.get("step")}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SynthFrameExtractor expects (b, 3, h, w), got {tuple(x.shape)}")
        w, h = self.net.cfg.image_size
        x = to_unit_float(x).to(next(self.net.parameters()).device)
        return self.net.embed_frames(resize_images(x, (h, w), "bilinear") * 2 - 1)


class SynthClipExtractor(nn.Module):
    """FD_synth-video extractor: ``(b, t, 3, h, w)`` RGB -> per-frame resize -> clip embedding
    ``(b, num_video_features)``. Clips should have the training ``num_frames`` at the training
    frame spacing (``frame_stride`` camera frames, 12 Hz data); both are in :meth:`protocol`."""

    def __init__(self, net: SynthFeatureNet, num_frames: int, frame_stride: int, info: Mapping[str, Any] | None = None):
        super().__init__()
        self.net = net
        self.num_features = net.cfg.num_video_features
        self.num_frames, self.frame_stride = num_frames, frame_stride
        self.info = dict(info or {})

    def protocol(self) -> dict:
        w, h = self.net.cfg.image_size
        return {"input": "video", "network": "synth_features/clip", "size": [w, h], "resize_mode": "bilinear", "crop": "none",
                "value_range": [-1.0, 1.0], "num_frames": self.num_frames, "frame_stride": self.frame_stride,
                "weights_sha256": self.info.get("sha256"), "step": self.info.get("step")}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(f"SynthClipExtractor expects (b, t, 3, h, w), got {tuple(x.shape)}")
        b = x.shape[0]
        w, h = self.net.cfg.image_size
        x = to_unit_float(x).to(next(self.net.parameters()).device)
        x = resize_images(rearrange(x, "b t c h w -> (b t) c h w"), (h, w), "bilinear") * 2 - 1
        return self.net.embed_clips(rearrange(x, "(b t) c h w -> b t c h w", b=b))


def load_synth_net(path: str | Path, *, ema: bool = True) -> tuple[SynthFeatureNet, SynthFeaturesConfig, dict]:
    """The trained FD_synth network (eval mode, CPU, frozen), its run config and checkpoint info,
    from a ``synth_features`` run directory or checkpoint directory."""
    net, cfg, info = load_run_model(path, SynthFeaturesConfig, lambda c: SynthFeatureNet(c.model), ema=ema)
    net.requires_grad_(False)
    return net, cfg, info


def load_synth_extractor(path: str | Path, kind: str = "image", *, ema: bool = True) -> SynthFrameExtractor | SynthClipExtractor:
    """The trained FD_synth extractor (``kind="image"``) or FD_synth-video extractor (``kind="video"``)
    from a ``synth_features`` run directory or checkpoint directory, in eval mode on the CPU."""
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    net, cfg, info = load_synth_net(path, ema=ema)
    if kind == "image":
        return SynthFrameExtractor(net, info).eval()
    return SynthClipExtractor(net, cfg.num_frames, cfg.frame_stride, info).eval()
