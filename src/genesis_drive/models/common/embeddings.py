"""Embeddings: flow time, continuous inputs (Fourier features) and 3D rotary positions.

* :func:`timestep_embedding` / :class:`TimestepEmbedder`: flow time ``t`` in [0, 1] (scaled by
  ``time_scale = 1000``, DiT's convention) -> sinusoidal features -> MLP ``(b, dim)``; also accepts
  ``(b, n)`` times (per-token / per-frame) giving ``(b, n, dim)``.
* :func:`fourier_features` / :class:`FourierEmbedder`: continuous inputs ``(..., in_dim)`` (box corners
  in metres, ego poses, ...) -> ``[x, sin(2 pi f x), cos(2 pi f x)]`` with geometric frequencies
  ``f = 2**k / max_wavelength`` (``k = 0 .. num_freqs - 1``; ``max_wavelength`` in the input's unit)
  -> MLP ``(..., out_dim)``.
* Positions: **3D rotary embedding (RoPE)** over ``(t, h, w)`` token positions (chosen over absolute
  sin-cos because it makes attention depend on relative offsets only, so chunked rollouts and other
  latent sizes reuse what was learned). The head dimension is split into three even parts (by
  default about 1/4 for time, 3/8 each for height and width, as CogVideoX); each part rotates pairs
  of channels by ``position * theta**(-2i/part)``. :func:`grid_positions` lists the ``(t, h, w)``
  integer positions of a ``t x h x w`` latent grid in ``"(t h w)"`` order (the patch order of
  :class:`genesis_drive.models.common.patch.PatchEmbed`); :func:`rope_3d` turns positions into the
  ``(cos, sin)`` pair :class:`~genesis_drive.models.common.attention.Attention` takes.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

__all__ = [
    "FourierEmbedder",
    "TimestepEmbedder",
    "apply_rope",
    "fourier_features",
    "grid_positions",
    "rope_3d",
    "rope_split",
    "timestep_embedding",
]


def timestep_embedding(t: torch.Tensor, dim: int, *, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features ``(..., dim)`` of scalar values ``t (...)`` (``[cos, sin]`` halves)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[..., None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Flow time ``(b,)`` or ``(b, n)`` in [0, 1] -> ``(b, dim)`` or ``(b, n, dim)``."""

    def __init__(self, dim: int, *, freq_dim: int = 256, time_scale: float = 1000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_scale = time_scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t * self.time_scale, self.freq_dim)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


def fourier_features(x: torch.Tensor, num_freqs: int, max_wavelength: float) -> torch.Tensor:
    """``(..., d)`` -> ``(..., d * (2 * num_freqs + 1))``: ``[x, sin(2 pi f x), cos(2 pi f x)]``, ``f = 2**k / max_wavelength``."""
    freqs = (2.0 ** torch.arange(num_freqs, dtype=torch.float32, device=x.device)) / max_wavelength
    args = 2.0 * math.pi * x.float()[..., None] * freqs  # (..., d, f)
    feats = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return torch.cat([x.float(), rearrange(feats, "... d f -> ... (d f)")], dim=-1)


class FourierEmbedder(nn.Module):
    """Continuous inputs ``(..., in_dim)`` -> Fourier features -> MLP ``(..., out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int, *, num_freqs: int = 8, max_wavelength: float = 100.0):
        super().__init__()
        self.num_freqs = num_freqs
        self.max_wavelength = max_wavelength
        feat = in_dim * (2 * num_freqs + 1)
        self.mlp = nn.Sequential(nn.Linear(feat, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = fourier_features(x, self.num_freqs, self.max_wavelength)
        return self.mlp(f.to(self.mlp[0].weight.dtype))


def grid_positions(t: int, h: int, w: int, *, t_offset: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """``(t * h * w, 3)`` float positions ``(t + t_offset, row, col)`` in ``"(t h w)"`` order."""
    gt, gh, gw = torch.meshgrid(
        torch.arange(t, device=device) + t_offset, torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    return torch.stack([gt, gh, gw], dim=-1).reshape(-1, 3).float()


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Channels of ``head_dim`` given to (t, h, w): even parts, about 1/4, 3/8, 3/8."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"3D rotary positions need an even head dimension >= 6, got {head_dim}")
    pairs = head_dim // 2
    pt = max(1, pairs // 4)
    ph = (pairs - pt) // 2
    pw = pairs - pt - ph
    return 2 * pt, 2 * ph, 2 * pw


def rope_3d(
    positions: torch.Tensor, head_dim: int, *, theta: float = 10000.0, split: tuple[int, int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(..., n, 3)`` (t, h, w; any real values) -> ``(cos, sin)``, each ``(..., n, head_dim)``.

    Channel pairs are interleaved (``2i, 2i + 1`` rotate together); see :func:`apply_rope`.
    """
    split = split or rope_split(head_dim)
    if sum(split) != head_dim or any(s % 2 for s in split):
        raise ValueError(f"rope split {split} must be three even parts summing to {head_dim}")
    angles = []
    for axis, part in enumerate(split):
        inv = theta ** (-torch.arange(0, part, 2, dtype=torch.float32, device=positions.device) / part)
        angles.append(positions[..., axis : axis + 1].float() * inv)  # (..., n, part/2)
    ang = torch.cat(angles, dim=-1).repeat_interleave(2, dim=-1)  # (..., n, head_dim)
    return torch.cos(ang), torch.sin(ang)


def axis_ropes(
    t: int, h: int, w: int, head_dim: int, *, theta: float = 10000.0, device: torch.device | str | None = None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Rotary positions for factorised attention over a ``(t, h, w)`` token grid: ``(rope_hw,
    rope_t)``, the ``(cos, sin)`` of positions ``(0, row, col)`` for the ``h * w`` tokens of a frame
    (spatial attention) and of ``(frame, 0, 0)`` for the ``t`` frames at a location (temporal
    attention); in each, the rotation of the other axes is the identity (a shared rotation would
    cancel in the attention scores anyway)."""
    split = rope_split(head_dim)
    hh, ww = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    pos_hw = torch.stack([torch.zeros_like(hh), hh, ww], dim=-1).reshape(-1, 3).float()
    tt = torch.arange(t, device=device).float()
    pos_t = torch.stack([tt, torch.zeros_like(tt), torch.zeros_like(tt)], dim=-1)
    return rope_3d(pos_hw, head_dim, theta=theta, split=split), rope_3d(pos_t, head_dim, theta=theta, split=split)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of ``x (..., n, head_dim)`` by the angles behind ``cos``/``sin``."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rot = torch.stack([-x2, x1], dim=-1).flatten(-2)
    return (x.float() * cos + rot.float() * sin).to(x.dtype)
