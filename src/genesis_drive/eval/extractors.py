"""Feature extractors: preprocessing (resize, value range) + a feature network, as one ``nn.Module``.

The Fréchet metric takes *any* module mapping inputs to ``(b, d)`` features; these wrappers give
the standard networks the field's preprocessing so that callers pass raw frames:

- :class:`ImageFeatureExtractor`: ``(b, 3, h, w)`` uint8 (0..255) or float (0..1) RGB -> ``(b, d)``;
- :class:`VideoFeatureExtractor`: ``(b, t, 3, h, w)`` likewise -> ``(b, d)``.

Resize modes: ``"bilinear"`` / ``"bicubic"`` / ``"nearest"`` / ``"area"`` are ``F.interpolate``
(``align_corners=False``; pytorch-fid resizes with ``"bilinear"``); ``"bilinear_tf1"`` is TF1's
legacy ``resize_bilinear`` (source coordinate ``dst * in / out``, no half-pixel offset), the
resize torch-fidelity (and therefore torchmetrics' FID) applies. Crop ``"none"`` squashes to a
square of ``size`` (FID, TF FVD); ``"center"`` scales the shorter side to ``size`` and centre-crops
(VideoGPT's FVD preprocessing).

A SynthTown-trained network (FD_synth) plugs in the same way: wrap it in one of these classes or
pass any module with a ``num_features`` attribute to :class:`~genesis_drive.eval.fd_metric.FrechetDistance`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..models.blocks import to_unit_float
from .i3d import I3D_WEIGHTS, InceptionI3D
from .inception import INCEPTION_FID_WEIGHTS, FIDInceptionV3
from .weights import load_into

__all__ = [
    "RESIZE_MODES",
    "ImageFeatureExtractor",
    "VideoFeatureExtractor",
    "fid_extractor",
    "fvd_extractor",
    "resize_images",
    "to_unit_float",
]

RESIZE_MODES = ("bilinear", "bicubic", "nearest", "area", "bilinear_tf1")


def _resize_tf1_axis(x: torch.Tensor, out: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    src = torch.arange(out, dtype=torch.float64, device=x.device) * (n / out)
    i0 = src.floor().long().clamp(max=n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    w = (src - i0).to(x.dtype)
    shape = [1] * x.ndim
    shape[dim] = out
    return x.index_select(dim, i0) * (1 - w).view(shape) + x.index_select(dim, i1) * w.view(shape)


def resize_images(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(n, c, h, w)`` float images to ``size = (H, W)`` with one of :data:`RESIZE_MODES`."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if mode == "bilinear_tf1":
        return _resize_tf1_axis(_resize_tf1_axis(x, size[0], 2), size[1], 3)
    if mode in ("nearest", "area"):
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def _resize_crop(x: torch.Tensor, size: int, mode: str, crop: str) -> torch.Tensor:
    """``(n, c, h, w)`` -> ``(n, c, size, size)``: squash (``crop="none"``) or shorter side + centre crop."""
    if crop == "none":
        return resize_images(x, (size, size), mode)
    if crop != "center":
        raise ValueError(f"crop must be 'none' or 'center', got {crop!r}")
    h, w = x.shape[2:]
    scale = size / min(h, w)
    th, tw = max(size, round(h * scale)), max(size, round(w * scale))
    x = resize_images(x, (th, tw), mode)
    top, left = (th - size) // 2, (tw - size) // 2
    return x[:, :, top : top + size, left : left + size]


class _ResizingExtractor(nn.Module):
    """Shared settings of the image and video extractors: a ``network`` with ``num_features``,
    the square input ``size``, resize ``mode``, ``crop`` and the network's input ``value_range``."""

    INPUT = ""

    def __init__(self, network: nn.Module, size: int, mode: str = "bilinear", crop: str = "none", value_range=(-1.0, 1.0)):
        super().__init__()
        if mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
        self.network = network
        self.size, self.mode, self.crop = int(size), mode, crop
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.num_features = int(network.num_features)

    def protocol(self) -> dict:
        return {"input": self.INPUT, "size": self.size, "resize_mode": self.mode, "crop": self.crop, "value_range": list(self.value_range)}


class ImageFeatureExtractor(_ResizingExtractor):
    """``(b, 3, h, w)`` RGB -> resize to ``size x size`` -> scale to ``value_range`` -> ``network`` -> ``(b, d)``."""

    INPUT = "image"

    def __init__(self, network: nn.Module, size: int = 299, mode: str = "bilinear", crop: str = "none", value_range=(-1.0, 1.0)):
        super().__init__(network, size, mode, crop, value_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ImageFeatureExtractor expects (b, 3, h, w), got {tuple(x.shape)}")
        param = next(self.network.parameters(), None)
        x = to_unit_float(x).to(param.device if param is not None else x.device)
        x = _resize_crop(x, self.size, self.mode, self.crop)
        lo, hi = self.value_range
        return self.network(x * (hi - lo) + lo)


class VideoFeatureExtractor(_ResizingExtractor):
    """``(b, t, 3, h, w)`` RGB -> per-frame resize -> scale -> ``network`` on ``(b, 3, t, size, size)`` -> ``(b, d)``."""

    INPUT = "video"

    def __init__(self, network: nn.Module, size: int = 224, mode: str = "bilinear", crop: str = "none", value_range=(-1.0, 1.0)):
        super().__init__(network, size, mode, crop, value_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(f"VideoFeatureExtractor expects (b, t, 3, h, w), got {tuple(x.shape)}")
        param = next(self.network.parameters(), None)
        device = param.device if param is not None else x.device
        lo, hi = self.value_range
        # one video at a time to float and to the network size (full-resolution float batches are large)
        videos = [_resize_crop(to_unit_float(v.to(device)), self.size, self.mode, self.crop) for v in x]
        x = rearrange(torch.stack(videos) * (hi - lo) + lo, "b t c h w -> b c t h w")
        return self.network(x)


def fid_extractor(weights: str | Path, size: int = 299, mode: str = "bilinear") -> tuple[ImageFeatureExtractor, str]:
    """The FID Inception-v3 loaded from a local file, wrapped; returns (extractor in eval mode, file SHA-256)."""
    net = FIDInceptionV3()
    digest = load_into(net, weights, INCEPTION_FID_WEIGHTS)
    return ImageFeatureExtractor(net, size=size, mode=mode).eval(), digest


def fvd_extractor(weights: str | Path, size: int = 224, mode: str = "bilinear", crop: str = "none", features: str = "logits") -> tuple[VideoFeatureExtractor, str]:
    """The Kinetics-400 I3D loaded from a local file, wrapped; returns (extractor in eval mode, file SHA-256)."""
    net = InceptionI3D(num_classes=400, features=features)
    digest = load_into(net, weights, I3D_WEIGHTS)
    return VideoFeatureExtractor(net, size=size, mode=mode, crop=crop).eval(), digest
