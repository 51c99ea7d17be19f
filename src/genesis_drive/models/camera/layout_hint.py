"""A learned pixel-space encoder of the per-camera layout video for the DiT's control branch.

The control branch reads the layout video through the frozen camera VAE, which was trained on
photographs: its round trip keeps the road and walkway areas of a layout rendering but loses the
thin lines (lane paint, skeletons) and most small boxes (docs/camera.md, "The layout hint"). This
encoder reads the rendering itself, as ControlNet's hint encoder does, and turns it into one token
per DiT patch and latent frame:

    layout video (b v T 3 H W), uint8 or [-1, 1]
      -> per frame: stride-2 3x3 convolutions (SiLU) down to the token grid (H / (s p), W / (s p))
      -> the frames of each latent frame side by side (the causal VAE's grouping: latent 0 = frame
         0, latent j = frames c (j - 1) + 1 .. c j; missing slots are zeros)
      -> a zero-initialised linear map to the DiT width: tokens (b v t' n d)

so at initialisation it adds nothing, and a DiT trained without it keeps its output exactly.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from ..common import zero_module
from .conditions import latent_frame_groups

__all__ = ["LayoutHint"]


class LayoutHint(nn.Module):
    """Layout video ``(b v T 3 H W)`` -> control tokens ``(b v t' n d)`` (module docstring).

    channels: the last convolution's width (the first ones are 16, 32, ... up to it). downsample:
    pixels per token side (the VAE's spatial factor times the DiT's patch size; a power of two).
    temporal: camera frames per latent frame (the VAE's temporal factor). width: the DiT width d.
    """

    def __init__(self, channels: int, downsample: int, temporal: int, width: int):
        super().__init__()
        stages = int(round(math.log2(downsample)))
        if stages < 1 or 2**stages != downsample:
            raise ValueError(f"LayoutHint: downsample must be a power of two >= 2, got {downsample}")
        widths = [min(channels, 16 * 2**i) for i in range(stages - 1)] + [channels]
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.SiLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers[:-1])  # no activation after the last convolution
        self.temporal = temporal
        self.downsample = downsample
        self.out = zero_module(nn.Linear(temporal * channels, width))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 6 or video.shape[3] != 3:
            raise ValueError(f"LayoutHint: the layout video must be (b v T 3 H W), got {tuple(video.shape)}")
        b, v, frames, _, h, w = video.shape
        if h % self.downsample or w % self.downsample:
            raise ValueError(f"LayoutHint: {h} x {w} pixels do not tile into {self.downsample}-pixel tokens")
        x = video.float() / 127.5 - 1.0 if video.dtype == torch.uint8 else video.to(self.out.weight.dtype)
        feats = self.convs(rearrange(x, "b v t c h w -> (b v t) c h w"))
        feats = rearrange(feats, "(b v t) c y x -> b v t (y x) c", b=b, v=v)
        index, valid = latent_frame_groups(frames, self.temporal, device=video.device)  # t' s
        grouped = feats[:, :, index] * valid[None, None, :, :, None, None].to(feats.dtype)  # b v t' s n c
        return self.out(rearrange(grouped, "b v t s n c -> b v t n (s c)"))
