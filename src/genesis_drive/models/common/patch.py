"""Patch embedding of ``b c t h w`` latents with patches ``(1, p, p)`` and its inverse.

* :class:`PatchEmbed`: ``b c t h w`` -> tokens ``b (t h' w') dim`` with ``h' = h / p``, ``w' = w / p``
  (a strided ``Conv3d``), plus the token grid ``(t, h', w')``.
* :func:`patchify` / :func:`unpatchify`: the parameter-free rearrangements between ``b c t h w`` and
  ``b (t h' w') (p p c)``; exact inverses.
* :class:`FinalLayer`: DiT's output head: LayerNorm, adaLN shift/scale, zero-initialised linear to
  ``p * p * out_channels`` per token (so a DiT predicts zero velocity at init).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .modulation import AdaLNZero, modulate, zero_module

__all__ = ["FinalLayer", "PatchEmbed", "patchify", "unpatchify"]


def _check(h: int, w: int, patch: int) -> None:
    if h % patch or w % patch:
        raise ValueError(f"latent size {h}x{w} is not divisible by the patch size {patch}")


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``b c t h w`` -> ``b (t h' w') (p1 p2 c)``."""
    _check(x.shape[-2], x.shape[-1], patch)
    return rearrange(x, "b c t (h p1) (w p2) -> b (t h w) (p1 p2 c)", p1=patch, p2=patch)


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int, int], patch: int) -> torch.Tensor:
    """``b (t h' w') (p1 p2 c)`` with ``grid = (t, h', w')`` -> ``b c t (h' p1) (w' p2)``."""
    t, h, w = grid
    return rearrange(tokens, "b (t h w) (p1 p2 c) -> b c t (h p1) (w p2)", t=t, h=h, w=w, p1=patch, p2=patch)


class PatchEmbed(nn.Module):
    """``b c t h w`` -> ``(b (t h' w') dim, (t, h', w'))`` with a ``(1, p, p)``-strided ``Conv3d``."""

    def __init__(self, in_channels: int, dim: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=(1, patch, patch), stride=(1, patch, patch))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        _check(x.shape[-2], x.shape[-1], self.patch)
        y = self.proj(x)
        grid = (y.shape[2], y.shape[3], y.shape[4])
        return rearrange(y, "b d t h w -> b (t h w) d"), grid


class FinalLayer(nn.Module):
    """Tokens ``(b, n, dim)`` + conditioning -> ``(b, n, p * p * out_channels)`` (zero at init); feed to :func:`unpatchify`."""

    def __init__(self, dim: int, cond_dim: int, out_channels: int, patch: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = AdaLNZero(dim, cond_dim, chunks=2)
        self.linear = zero_module(nn.Linear(dim, patch * patch * out_channels))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c)
        return self.linear(modulate(self.norm(x), shift, scale))
