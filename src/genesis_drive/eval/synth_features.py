"""FD_synth: a Fréchet distance whose features come from a network trained on SynthTown, so the
embedded benchmark has a distance whose features mean something offline (no Inception / I3D
weights are needed).

The network is :class:`~genesis_drive.models.evaluators.synth_features.SynthFeatureNet`, trained
by the ``synth_features`` task (``train/tasks/synth_features.py``, targets listed there). Its
*frame embedding* (``num_features``) feeds FD_synth (:class:`SynthFrameExtractor`), its *clip
embedding* (``num_video_features``) feeds FD_synth-video (:class:`SynthClipExtractor`).

Report the numbers as ``FD_synth`` / ``FD_synth-video``, never FID/FVD: the features are not
Inception's and values are not comparable to published FIDs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import nn

from ..models.evaluators.synth_features import SynthFeatureNet
from ..train.checkpoint import load_run_model
from ..train.tasks.synth_features import SynthFeaturesConfig
from .extractors import resize_images, to_unit_float

__all__ = ["SynthClipExtractor", "SynthFrameExtractor", "load_synth_extractor", "load_synth_net"]


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

    @classmethod
    def from_run(cls, net: SynthFeatureNet, cfg: SynthFeaturesConfig, info: Mapping[str, Any] | None = None) -> SynthClipExtractor:
        """The extractor at the run's training clip length and frame spacing (``cfg.clips``)."""
        return cls(net, cfg.clips.num_frames, cfg.clips.frame_stride, info)

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
    return SynthClipExtractor.from_run(net, cfg, info).eval()
