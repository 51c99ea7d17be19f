"""Building blocks shared by the camera and LiDAR generative networks.

* :mod:`.attention`: :class:`Attention` (self / cross, key padding mask, qk RMSNorm, RoPE), :class:`MLP`.
* :mod:`.modulation`: adaLN-zero (:class:`AdaLNZero`, :func:`modulate`, :func:`gate`), :func:`zero_module`.
* :mod:`.embeddings`: flow-time and Fourier embeddings, 3D rotary positions over (t, h, w).
* :mod:`.patch`: :class:`PatchEmbed`, :func:`patchify` / :func:`unpatchify`, :class:`FinalLayer`.
* :mod:`.block`: :class:`TransformerBlock` (a DiT block with adaLN-zero, identity at init).
"""

from .attention import MLP, Attention
from .block import TransformerBlock
from .embeddings import (
    FourierEmbedder,
    TimestepEmbedder,
    apply_rope,
    axis_ropes,
    fourier_features,
    grid_positions,
    rope_3d,
    rope_split,
    timestep_embedding,
)
from .modulation import AdaLNZero, gate, modulate, zero_module
from .patch import FinalLayer, PatchEmbed, patchify, unpatchify

__all__ = [
    "MLP",
    "AdaLNZero",
    "Attention",
    "FinalLayer",
    "FourierEmbedder",
    "PatchEmbed",
    "TimestepEmbedder",
    "TransformerBlock",
    "apply_rope",
    "axis_ropes",
    "fourier_features",
    "gate",
    "grid_positions",
    "modulate",
    "patchify",
    "rope_3d",
    "rope_split",
    "timestep_embedding",
    "unpatchify",
    "zero_module",
]
