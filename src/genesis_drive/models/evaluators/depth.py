"""The monocular depth network of the cross-modal consistency metric (training recipe:
``train/tasks/depth.py``; metric: ``eval/consistency.py``).

It predicts depth for a canonical focal length ``focal_ref_ratio * width`` and rescales it by
``fx / focal_ref`` (metric depth of the same image content scales with the focal length), so one
network serves cameras with different fields of view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..blocks import ConvBlock, ImageEncoder

__all__ = ["DepthNet", "DepthNetConfig"]


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
