"""adaLN-zero modulation (DiT): shift / scale / gate vectors from a conditioning vector.

* :func:`zero_module`: zero every parameter of a module (returns it), for zero-initialised outputs
  (adaLN-zero, ControlNet-style injections).
* :func:`modulate`: ``x * (1 + scale) + shift``.
* :class:`AdaLNZero`: ``SiLU -> Linear(cond_dim, chunks * dim)``, zero-initialised, so every shift,
  scale and gate is 0 at init (a gated residual block is then the identity).

Conditioning is ``(b, cond_dim)`` (one vector per sample, e.g. the flow-time embedding) or
``(b, n, cond_dim)`` (one per token, e.g. per-frame times when clean conditioning frames have t = 0);
modulation vectors come out as ``(b, dim)`` or ``(b, n, dim)`` and broadcast over the ``n`` tokens of
``x`` of shape ``(b, n, dim)``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AdaLNZero", "modulate", "gate", "zero_module"]


def zero_module(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero and return it."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _tokens(v: torch.Tensor) -> torch.Tensor:
    return v.unsqueeze(1) if v.ndim == 2 else v


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x (b, n, d) * (1 + scale) + shift`` with ``shift``/``scale`` of shape ``(b, d)`` or ``(b, n, d)``."""
    return x * (1.0 + _tokens(scale)) + _tokens(shift)


def gate(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``x (b, n, d) * g`` with ``g`` of shape ``(b, d)`` or ``(b, n, d)``."""
    return x * _tokens(g)


class AdaLNZero(nn.Module):
    """Conditioning ``(b, cond_dim)`` or ``(b, n, cond_dim)`` -> ``chunks`` tensors of width ``dim`` (zero at init)."""

    def __init__(self, dim: int, cond_dim: int, chunks: int = 6):
        super().__init__()
        self.chunks = chunks
        self.act = nn.SiLU()
        self.linear = zero_module(nn.Linear(cond_dim, chunks * dim))

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(self.act(c)).chunk(self.chunks, dim=-1)
