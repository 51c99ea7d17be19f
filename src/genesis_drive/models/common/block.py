"""A DiT transformer block with adaLN-zero: self-attention, optional cross-attention, MLP.

``x (b, n, dim)``, conditioning ``c (b, cond_dim)`` or ``(b, n, cond_dim)`` (flow-time embedding,
possibly per token), optional ``context (b, m, context_dim)`` with ``context_mask (b, m)`` (True =
real token), optional rotary ``rope`` for the self-attention. Self-attention and MLP residuals are
gated by adaLN-zero, the cross-attention output projection is zero-initialised: the block is the
identity at init. ``grad_checkpointing`` (the training loop's convention) recomputes the block in
the backward pass when set.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import MLP, Attention
from .modulation import AdaLNZero, gate, modulate, zero_module

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    """Pre-norm DiT block: ``x + g1 * attn(mod(norm x)) [+ cross(norm x, context)] + g2 * mlp(mod(norm x))``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        cond_dim: int,
        *,
        context_dim: int | None = None,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
    ):
        super().__init__()
        self.grad_checkpointing = False
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, qk_norm=qk_norm)
        self.cross = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross = Attention(dim, heads, context_dim=context_dim, qk_norm=qk_norm)
            zero_module(self.cross.to_out)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, mult=mlp_ratio)
        self.ada = AdaLNZero(dim, cond_dim, chunks=6)

    def _forward(self, x, c, context, context_mask, rope):
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c)
        x = x + gate(self.attn(modulate(self.norm1(x), sh1, sc1), rope=rope), g1)
        if self.cross is not None:
            if context is None:
                raise ValueError("this block has cross-attention and needs a context")
            x = x + self.cross(self.norm_cross(x), context, key_padding_mask=context_mask)
        return x + gate(self.mlp(modulate(self.norm2(x), sh2, sc2)), g2)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        *,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, c, context, context_mask, rope, use_reentrant=False)
        return self._forward(x, c, context, context_mask, rope)
