"""The 2D layout-faithfulness network: one camera image -> per-pixel logits over
:data:`LAYOUT2D_CLASSES` (training recipe: ``train/tasks/layout2d.py``; metric: ``eval/layout2d.py``).

A U-Net: the shared :class:`~genesis_drive.models.blocks.ImageEncoder` gives feature maps at strides
``2, 4, ..., 2**len(widths)``; the decoder upsamples (bilinear) and merges each skip with a
:class:`~genesis_drive.models.blocks.ConvBlock` back to stride 2. With ``output_stride=1`` a light
full-resolution branch (one conv3x3 on the input) is merged after a last upsampling, so thin
structures (lane paint, distant pedestrians) keep their pixels; with ``output_stride=2`` the logits
come straight from the stride-2 decoder map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..blocks import ConvBlock, ImageEncoder, group_count

__all__ = ["LAYOUT2D_CLASSES", "LAYOUT2D_PALETTE", "SCORED_CLASSES", "Layout2DNet", "Layout2DNetConfig"]

#: Output classes, in logit order. The first six are the layout classes the metric scores; ``other``
#: (buildings, vegetation, sky, terrain, poles, barriers, street lamps) is predicted, never scored.
LAYOUT2D_CLASSES: tuple[str, ...] = ("road", "lane_marking", "sidewalk", "vehicle", "cyclist", "pedestrian", "other")
#: The classes mIoU averages over (every class but ``other``).
SCORED_CLASSES: tuple[str, ...] = LAYOUT2D_CLASSES[:-1]
#: Display colour (RGB) of each class, in :data:`LAYOUT2D_CLASSES` order.
LAYOUT2D_PALETTE: tuple[tuple[int, int, int], ...] = (
    (90, 90, 90), (255, 255, 255), (60, 150, 60), (0, 128, 255), (0, 255, 100), (255, 0, 0), (25, 20, 35),
)  # fmt: skip


@dataclass(frozen=True)
class Layout2DNetConfig:
    """The per-camera segmentation network.

    image_size: (width, height) pixels of its input (16:9 cameras: e.g. 128x72).
    widths: encoder channels per stride-2 stage; the decoder mirrors them back to stride 2.
    output_stride: 1 (logits at the input size) or 2 (half the input size).
    full_res_width: channels of the full-resolution branch (``output_stride=1`` only).
    """

    image_size: tuple[int, int] = (128, 72)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    output_stride: int = 1
    full_res_width: int = 16

    def __post_init__(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) < 2 or any(s % 2 for s in self.image_size):
            raise ConfigError(f"model.image_size must be (width, height), both even, got {self.image_size}")
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ConfigError(f"model.widths must hold at least two positive channel counts, got {self.widths}")
        if self.output_stride not in (1, 2):
            raise ConfigError(f"model.output_stride must be 1 or 2, got {self.output_stride}")
        if self.full_res_width < 1:
            raise ConfigError(f"model.full_res_width must be >= 1, got {self.full_res_width}")

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) pixels of the logit map."""
        w, h = self.image_size
        return w // self.output_stride, h // self.output_stride


class Layout2DNet(nn.Module):
    """Images ``(n, 3, h, w)`` in [-1, 1] -> logits ``(n, K, h / s, w / s)``, K = len(LAYOUT2D_CLASSES),
    s = ``output_stride``."""

    def __init__(self, cfg: Layout2DNetConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.encoder = ImageEncoder(w)
        self.up = nn.ModuleList(ConvBlock(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        k = len(LAYOUT2D_CLASSES)
        if cfg.output_stride == 1:
            f = cfg.full_res_width
            self.full_res = nn.Sequential(nn.Conv2d(3, f, 3, 1, 1, bias=False), nn.GroupNorm(group_count(f), f), nn.SiLU())
            self.merge = ConvBlock(w[0] + f, f)
            self.head = nn.Conv2d(f, k, 1)
        else:
            self.full_res = None
            self.merge = None
            self.head = nn.Conv2d(w[0], k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, h = self.cfg.image_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(f"Layout2DNet expects images (n, 3, {h}, {w}), got {tuple(x.shape)}")
        feats = self.encoder(x)
        y = feats[-1]
        for block, skip in zip(self.up, reversed(feats[:-1])):
            y = block(torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], dim=1))
        if self.full_res is not None:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
            y = self.merge(torch.cat([y, self.full_res(x)], dim=1))
        return self.head(y)
