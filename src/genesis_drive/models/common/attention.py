"""Multi-head attention and the MLP of the transformer blocks.

:class:`Attention` works on tokens ``x (b, n, dim)``; with ``context (b, m, context_dim)`` it is
cross-attention (queries from ``x``, keys/values from ``context``). It calls
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels where the
device has them).

* ``key_padding_mask (b, m)`` bool: **True = a real token to attend to**, False = padding. A row with
  no real key (e.g. a sample without any box token) gives a zero output for that sample instead of NaN.
* ``qk_norm``: RMSNorm over each head's query and key (stabilises attention logits; SD3 / CogVideoX).
* ``rope``: a ``(cos, sin)`` pair from :func:`genesis_drive.models.common.embeddings.rope_3d`, each
  ``(n, head_dim)`` or ``(b, n, head_dim)``, rotating queries and keys (self-attention only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .embeddings import apply_rope

__all__ = ["Attention", "MLP"]


class Attention(nn.Module):
    """Multi-head (self- or cross-) attention over ``(b, n, dim)`` tokens."""

    def __init__(self, dim: int, heads: int, *, context_dim: int | None = None, qk_norm: bool = True, bias: bool = True):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        kv_dim = dim if context_dim is None else context_dim
        self.is_cross = context_dim is not None
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(kv_dim, dim, bias=bias)
        self.to_v = nn.Linear(kv_dim, dim, bias=bias)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        kv = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k = rearrange(self.to_k(kv), "b m (h d) -> b h m d", h=self.heads)
        v = rearrange(self.to_v(kv), "b m (h d) -> b h m d", h=self.heads)
        q, k = self.norm_q(q), self.norm_k(k)
        if rope is not None:
            if context is not None:
                raise ValueError("rotary positions apply to self-attention only")
            cos, sin = rope
            if cos.ndim == 3:  # (b, n, d) -> (b, 1, n, d)
                cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask = None
        empty = None
        if key_padding_mask is not None:
            keep = key_padding_mask.to(torch.bool)
            empty = ~keep.any(dim=1)  # (b,)
            keep = keep | empty[:, None]
            mask = keep[:, None, None, :]  # (b, 1, 1, m): True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.to_out(rearrange(out, "b h n d -> b n (h d)"))
        if empty is not None:  # no host sync: zero the rows of samples without any real key
            out = out.masked_fill(empty[:, None, None], 0.0)
        return out


class MLP(nn.Module):
    """``Linear -> GELU(tanh) -> Linear``; hidden width ``mult * dim`` unless ``hidden`` is given."""

    def __init__(self, dim: int, *, mult: float = 4.0, hidden: int | None = None, out_dim: int | None = None):
        super().__init__()
        hidden = hidden or int(dim * mult)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
