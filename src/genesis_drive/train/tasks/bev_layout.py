"""``bev_layout``: training recipe of the BEV layout network
(:class:`~genesis_drive.models.evaluators.bev_layout.BevLayoutNet`) on SynthTown frames.

Targets are the project's BEV raster (:func:`genesis_drive.layout.bev.rasterize_bev`): coverage of
drivable area, pedestrian crossings, dividers (lane + road dividers stroked ``line_width`` m),
vehicle footprints (car, truck, bus, trailer, construction vehicle) and pedestrian footprints
(footprints enlarged to at least ``min_footprint`` m a side). Loss: BCE on coverage (positives weighted per class) + soft Dice per
class. The metric (IoU, mAP on a root) is ``eval/layout_bev.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...data.clips import ClipSpec
from ...data.nuscenes import NuScenesReader
from ...data.schema import Clip
from ...errors import ConfigError, DataError
from ...layout.bev import BevConfig, rasterize_bev
from ...layout.frames import frame_map
from ...models.blocks import to_model_input
from ...models.evaluators.bev_layout import BEV_CLASSES, BevLayoutNet, BevLayoutNetConfig
from ...models.evaluators.synth_features import OBJECT_GROUPS
from ..config import TrainConfig
from ..task import TaskDef
from .clip_task import ClipCut, ClipTask

__all__ = ["BEV_LAYOUT_PRESETS", "BEV_LAYOUT_TASK", "BEV_VEHICLES", "BevLayoutConfig", "BevLayoutTask", "BevSamples", "bev_targets"]

#: Detection classes of the ``vehicle`` BEV channel.
BEV_VEHICLES: tuple[str, ...] = OBJECT_GROUPS["vehicle"]


@dataclass(frozen=True)
class BevLayoutConfig:
    """Run config of the ``bev_layout`` task.

    clips: single-frame samples (``clips.num_frames`` must be 1) at "keyframe" (2 Hz, exact boxes) or
    "camera" (12 Hz, boxes interpolated) rate, every ``clips.window_stride``-th frame. line_width:
    metres, stroke width of dividers in the target raster. min_footprint: metres, smallest box
    footprint side in the target raster. pos_weight: per-class weight of the positive cells in the
    BCE (:data:`BEV_CLASSES` order; > 1 counters the rarity of small classes such as vehicles and
    pedestrians). dice_weight: weight of the soft Dice term (per class, so small classes count as
    much as large ones) added to BCE.
    """

    model: BevLayoutNetConfig = field(default_factory=BevLayoutNetConfig)
    clips: ClipCut = field(default_factory=ClipCut)
    line_width: float = 1.0
    min_footprint: float = 1.0
    pos_weight: tuple[float, ...] = (1.0,) * len(BEV_CLASSES)
    dice_weight: float = 1.0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.clips.num_frames != 1:
            raise ConfigError(f"bev_layout trains on single frames: clips.num_frames must be 1, got {self.clips.num_frames}")
        if not self.line_width > 0 or self.dice_weight < 0 or self.min_footprint < 0:
            raise ConfigError("line_width must be > 0 m, min_footprint >= 0 m, dice_weight >= 0")
        if len(self.pos_weight) != len(BEV_CLASSES) or not all(w > 0 for w in self.pos_weight):
            raise ConfigError(f"pos_weight must be {len(BEV_CLASSES)} positive weights ({', '.join(BEV_CLASSES)}), got {self.pos_weight}")

    def bev_config(self) -> BevConfig:
        return BevConfig(grid=self.model.grid, map_layers=("drivable_area", "ped_crossing", "lane_divider", "road_divider"),
                         classes=BEV_VEHICLES + ("pedestrian",), line_width=self.line_width, heading=False)  # fmt: skip


def _tiny() -> BevLayoutConfig:
    """Trains in ~15 min on one idle CPU thread (~0.7 s a step; 3-5x that on a busy machine):
    128 x 72 views (the generators' tiny camera size), lifted at stride 4 from a 3-stage encoder,
    5 heights, a +-24 m grid at 0.5 m (96 x 96 cells) decoded by a 2-level BEV U-Net with dilated
    context; 12 Hz frames (2304 on SynthTown's 24 training scenes, ~2 epochs); vehicle and
    pedestrian positives weighted 2x in the BCE."""
    return BevLayoutConfig(
        model=BevLayoutNetConfig(image_size=(128, 72), widths=(16, 32, 64), feature_stride=4, feature_dim=32,
                                 heights=(0.0, 0.5, 1.0, 1.5, 2.0), bev_range=24.0, bev_resolution=0.5, bev_width=32,
                                 bev_levels=2, bev_dilations=(2, 4)),
        clips=ClipCut(num_frames=1, window_stride=1, rate="camera"),
        line_width=1.0,
        pos_weight=(1.0, 1.0, 1.0, 2.0, 2.0),
        train=TrainConfig(steps=1200, batch_size=4, lr=1e-3, warmup_steps=100, schedule="cosine", min_lr=1e-5, weight_decay=0.01,
                          ema_decay=0.995, ckpt_every=300, preview_every=600),
    )  # fmt: skip


def _paper() -> BevLayoutConfig:
    return BevLayoutConfig(
        model=BevLayoutNetConfig(image_size=(256, 144), widths=(32, 64, 128), feature_stride=4, feature_dim=64,
                                 heights=(0.0, 0.4, 0.8, 1.2, 1.6, 2.0), bev_range=51.2, bev_resolution=0.512, bev_width=96,
                                 bev_levels=2, bev_dilations=(2, 4)),
        clips=ClipCut(num_frames=1, window_stride=2, rate="camera"),
        line_width=1.0,
        pos_weight=(1.0, 1.0, 1.0, 2.0, 2.0),
        train=TrainConfig(steps=30000, batch_size=8, lr=5e-4, warmup_steps=500, schedule="cosine", min_lr=1e-5,
                          weight_decay=0.01, ema_decay=0.999, ckpt_every=1000, preview_every=2000, num_workers=8),
    )  # fmt: skip


BEV_LAYOUT_PRESETS: dict[str, Callable[[], BevLayoutConfig]] = {"tiny": _tiny, "paper": _paper}


# ----------------------------------------------------------------------------- targets


def bev_targets(clip: Clip, t: int, cfg: BevLayoutConfig) -> np.ndarray:
    """Coverage (K, H, W) float32 in [0, 1] of ``BEV_CLASSES`` in the ego frame of frame ``t``.

    Box footprints are enlarged to at least ``cfg.min_footprint`` metres on each side first (a
    0.6 x 0.7 m pedestrian would otherwise cover no cell by half at 0.5 m resolution).
    """
    m = cfg.min_footprint
    boxes = [replace(b, size=np.maximum(b.size, [m, m, 0.0])) for b in clip.boxes[t]]
    r = rasterize_bev(frame_map(clip, t), boxes, cfg.bev_config())
    nv = len(BEV_VEHICLES)
    return np.stack([r[0], r[1], np.maximum(r[2], r[3]), np.clip(r[4 : 4 + nv].sum(0), 0, 1), r[4 + nv]]).astype(np.float32)


class BevSamples:
    """Clip -> ``images`` (v 3 h w) uint8, ``intrinsics`` (v 3 3), ``cam_to_ego`` (v 4 4), ``target`` (K H W)."""

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


# ----------------------------------------------------------------------------- task


def _dice(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per class (over batch and cells), averaged over classes; prob/target (b, K, H, W)."""
    inter = (prob * target).sum(dim=(0, 2, 3))
    total = prob.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return (1 - (2 * inter + eps) / (total + eps)).mean()


class BevLayoutTask(ClipTask):
    """Training recipe of the BEV layout model on a nuScenes-format root (SynthTown)."""

    name = "bev_layout"
    cfg: BevLayoutConfig

    def build_model(self) -> nn.Module:
        return BevLayoutNet(self.cfg.model)

    def clip_spec(self, rate: str | None = None) -> ClipSpec:
        """The training clips; ``rate`` overrides ``clips.rate`` (evaluation reads keyframes)."""
        m = self.cfg.model
        return self.clips.spec(m.views, m.image_size, rate=rate, map_radius=m.map_radius)

    def make_transform(self, reader: NuScenesReader) -> BevSamples:
        return BevSamples(self.cfg)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        logits = model(to_model_input(batch["images"]), batch["intrinsics"], batch["cam_to_ego"]).float()
        target = batch["target"].float()
        pos_weight = torch.tensor(self.cfg.pos_weight, device=logits.device, dtype=logits.dtype)[:, None, None]
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
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
