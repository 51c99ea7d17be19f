"""Convolutional building blocks shared by the learned evaluators (and any small image network).

* :class:`ConvBlock`: a residual conv3x3 block with GroupNorm and SiLU, optionally strided.
* :class:`ImageEncoder`: ``(n, 3, h, w)`` -> feature maps at strides ``2, 4, ..., 2**len(widths)``.
* :func:`encoder_strides`: those strides for a tuple of widths (for config validation).
* :func:`to_model_input`: uint8 0..255 or float 0..1 images -> float in [-1, 1], the evaluators'
  input range.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["ConvBlock", "ImageEncoder", "encoder_strides", "group_count", "to_model_input", "to_unit_float"]


def group_count(channels: int) -> int:
    """GroupNorm groups for ``channels``: gcd(channels, 8)."""
    return math.gcd(channels, 8)


def encoder_strides(widths: tuple[int, ...]) -> tuple[int, ...]:
    """Output strides (pixels) of an :class:`ImageEncoder` with these widths: ``2, 4, ..., 2**len(widths)``."""
    return tuple(2 ** (i + 1) for i in range(len(widths)))


class ConvBlock(nn.Module):
    """Residual block: conv3x3(stride) - GroupNorm - SiLU - conv3x3 - GroupNorm, + (projected) input, SiLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(group_count(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(group_count(cout), cout)
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
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.GroupNorm(group_count(widths[0]), widths[0]), nn.SiLU())
        self.stages = nn.ModuleList(ConvBlock(a, b, 2) for a, b in itertools.pairwise(widths))

    @property
    def strides(self) -> tuple[int, ...]:
        return encoder_strides(self.widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float 0..1 images (any shape) -> float32 in [0, 1]; other dtypes or float
    values outside [0, 1] raise ValueError."""
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not torch.is_floating_point(images):
        raise ValueError(f"images must be uint8 (0..255) or float (0..1), got {images.dtype}")
    if images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
        raise ValueError(f"float images must lie in [0, 1], got range [{float(images.min()):.3g}, {float(images.max()):.3g}]")
    return images.float()


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float 0..1 images (any shape) -> float32 in [-1, 1] (:func:`to_unit_float`)."""
    return to_unit_float(images) * 2.0 - 1.0
