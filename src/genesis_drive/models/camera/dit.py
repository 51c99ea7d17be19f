"""MultiViewDiT: the multi-view spatio-temporal diffusion transformer of the camera branch.

Input latents ``x (b v t c h w)`` (``v`` views in rig order, ``t`` latent frames, ``c`` latent
channels of the video VAE, ``h w`` the latent grid); output the flow velocity of the same shape
(rectified flow of :mod:`genesis_drive.diffusion.flow`: ``t = 0`` data, ``t = 1`` noise).

Tokens. A ``(1, p, p)`` patch embedding gives ``n = (h / p) (w / p)`` tokens per view-frame,
held as ``(b v t n d)``. Each view's camera geometry is added per patch: Plücker rays
(:func:`.rays.plucker_rays`, ``(d, o x d)`` in the ego frame) on the latent grid, through their
own patch embedding. Intrinsics are those of the image the VAE encoded, of
``(w * spatial_compression) x (h * spatial_compression)`` pixels. Positions: 3D rotary
embeddings over ``(t, h, w)`` (:func:`models.common.rope_3d`): the ``(h, w)`` part in spatial
attention, the ``t`` part in temporal attention (a shared rotation cancels in the other axes).
There is no learned per-view embedding: a view is known by its rays and its conditions, so
permuting the views with their cameras and conditions permutes the output (exactly with
``cross_view="all"``; with ``"neighbours"`` for permutations that keep the rig's neighbour sets,
i.e. cyclic shifts and reversal of the rig order).

Block (:class:`MultiViewBlock`), each residual branch gated by adaLN-zero on the flow time:

1. spatial self-attention within each view-frame (``n`` tokens);
2. cross-attention to the condition tokens of that view-frame (:class:`.conditions.ConditionEncoder`:
   caption, ego, boxes, pedestrians; key-padding masked; zero-initialised output);
3. cross-view attention at the same latent frame: each view's tokens attend to the tokens of all
   views (``"all"``) or of its two neighbours in the rig order, ``i - 1`` and ``i + 1`` cyclic
   (``"neighbours"``, MagicDrive-V2);
4. temporal self-attention per view and patch location over the ``t`` latent frames;
5. MLP.

adaLN (PixArt-alpha's "adaLN-single", as MagicDrive-V2's STDiT3): one zero-initialised
``SiLU -> Linear`` maps the time embedding to 12 modulation vectors (shift, scale, gate of the
four gated branches) shared by all blocks; each block adds its own learned table (zeros at
init), so every block is the identity at init and the final layer outputs zero. Time is per latent
frame: frames marked ``given`` (first-frame mode) are modulated with ``t = 0`` (clean), the others
with the sample's time.

Control branch (ControlNet-style): the per-camera layout video encoded by the frozen VAE encoder,
``layout (b v t c h w)``, goes through its own patch embedding and a zero-initialised linear
layer, is added to the base tokens, and runs through copies of the first ``control_depth``
blocks (initialised from the base blocks' weights); after base block ``i`` the output of control
block ``i`` is added through a zero-initialised linear projection. At init the control branch
changes nothing, exactly. Dropping the ``layout`` group for a sample (or ``layout=None``) removes
its control residuals. With ``layout_hint > 0`` the control branch also reads the layout video
itself (``layout_video (b v T 3 H W)``) through a learned pixel-space encoder
(:class:`.layout_hint.LayoutHint`, zero-initialised output) whose tokens are added to its input:
the frozen VAE, trained on photographs, loses the layout's thin lines and small boxes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch
from einops import rearrange, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...errors import ConfigError
from ..common import MLP, AdaLNZero, Attention, FinalLayer, PatchEmbed, TimestepEmbedder, axis_ropes, gate, modulate, zero_module
from .conditions import ConditionEncoder, ConditionEncoderConfig
from .layout_hint import LayoutHint
from .rays import plucker_rays

__all__ = ["MultiViewDiTConfig", "MultiViewDiT", "MultiViewBlock", "DIT_PRESETS", "grow_depth", "add_layout_hint", "test", "tiny", "paper"]

_CROSS_VIEW = ("all", "neighbours")
_CHUNKS = 12  # (shift, scale, gate) x (spatial, cross-view, temporal, mlp)


@dataclass(frozen=True)
class MultiViewDiTConfig:
    """latent_channels: the VAE's latent channels (take them from the VAE config).
    patch_size: spatial patch ``p`` (patches are ``1 x p x p``). width / depth / heads: transformer
    size (``width / heads`` must be even and >= 6 for 3D RoPE). mlp_ratio: MLP hidden width
    factor. cross_view: "all" or "neighbours". control_depth: blocks copied into the control
    branch (0: no control branch). spatial_compression: pixels per latent cell (the VAE's 8x).
    rope_theta: RoPE base. qk_norm: RMSNorm of queries and keys. conditions: the condition
    encoders (their ``temporal_compression`` must be the VAE's). grad_checkpointing: the initial
    value of every block's ``grad_checkpointing`` flag (recompute the block in the backward pass;
    the training loop's ``enable_grad_checkpointing`` sets the flags). layout_hint: channels of the
    learned pixel-space layout encoder of the control branch (0: none; the control branch then
    reads only the layout's VAE latents; needs ``control_depth > 0``)."""

    latent_channels: int
    patch_size: int = 1
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    cross_view: str = "neighbours"
    control_depth: int = 2
    spatial_compression: int = 8
    rope_theta: float = 10000.0
    qk_norm: bool = True
    conditions: ConditionEncoderConfig = field(default_factory=ConditionEncoderConfig)
    grad_checkpointing: bool = False
    layout_hint: int = 0

    def __post_init__(self) -> None:
        for name in ("latent_channels", "patch_size", "width", "depth", "heads", "spatial_compression"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MultiViewDiTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ConfigError(f"MultiViewDiTConfig.width {self.width} is not divisible by heads {self.heads}")
        head_dim = self.width // self.heads
        if head_dim % 2 or head_dim < 6:
            raise ConfigError(f"MultiViewDiTConfig: head width {head_dim} (width / heads) must be even and >= 6 for 3D RoPE")
        if self.cross_view not in _CROSS_VIEW:
            raise ConfigError(f"MultiViewDiTConfig.cross_view must be one of {_CROSS_VIEW}, got {self.cross_view!r}")
        if not 0 <= self.control_depth <= self.depth:
            raise ConfigError(f"MultiViewDiTConfig.control_depth must be in [0, depth={self.depth}], got {self.control_depth}")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"MultiViewDiTConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.layout_hint < 0 or (self.layout_hint and not self.control_depth):
            raise ConfigError(f"MultiViewDiTConfig.layout_hint must be >= 0 and needs control_depth > 0, got "
                              f"layout_hint={self.layout_hint}, control_depth={self.control_depth}")


def test(latent_channels: int = 4) -> MultiViewDiTConfig:
    """Unit-test size: width 32, depth 2, 2 heads, one control block."""
    return MultiViewDiTConfig(
        latent_channels=latent_channels, width=32, depth=2, heads=2, control_depth=1, mlp_ratio=2.0,
        conditions=ConditionEncoderConfig(dim=32, num_bands=3, pose_bands=2, hidden_mult=1),
    )  # fmt: skip


def tiny(latent_channels: int) -> MultiViewDiTConfig:
    """CPU size: width 128, depth 4, 4 heads, patch 1 (144 tokens per view-frame on a 16 x 9 latent),
    neighbour cross-view attention, two control blocks."""
    return MultiViewDiTConfig(
        latent_channels=latent_channels, patch_size=1, width=128, depth=4, heads=4, control_depth=2,
        conditions=ConditionEncoderConfig(dim=128, num_bands=4, max_range=64.0),
    )  # fmt: skip


def paper(latent_channels: int) -> MultiViewDiTConfig:
    """GPU size (MagicDrive-V2's STDiT3 scale): width 1152, depth 28, 16 heads, patch 2, neighbour
    cross-view attention, 13 control blocks, gradient checkpointing."""
    return MultiViewDiTConfig(
        latent_channels=latent_channels, patch_size=2, width=1152, depth=28, heads=16, control_depth=13,
        conditions=ConditionEncoderConfig(dim=1152, num_bands=8, max_range=102.4, pose_bands=6),
        grad_checkpointing=True,
    )  # fmt: skip


#: Named DiT presets (plain functions of the VAE's latent channel count).
DIT_PRESETS = {"test": test, "tiny": tiny, "paper": paper}


class MultiViewBlock(nn.Module):
    """One spatial / cross / cross-view / temporal / MLP block on tokens ``(b v t n d)``.

    ``mod (b t 12 d)`` is the shared adaLN output; ``context (b v t L dc)``, ``context_mask
    (b v t L)``; ``rope_hw`` ``(cos, sin)`` of ``(n, head_dim)``, ``rope_t`` of ``(t, head_dim)``.
    """

    def __init__(self, config: MultiViewDiTConfig):
        super().__init__()
        d, heads, qk = config.width, config.heads, config.qk_norm
        self.cross_view_mode = config.cross_view
        self.grad_checkpointing = config.grad_checkpointing
        self.table = nn.Parameter(torch.zeros(_CHUNKS, d))
        self.norm_spatial = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.spatial = Attention(d, heads, qk_norm=qk)
        self.norm_cross = nn.LayerNorm(d, eps=1e-6)
        self.cross = Attention(d, heads, context_dim=config.conditions.dim, qk_norm=qk)
        zero_module(self.cross.to_out)
        self.norm_view = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.cross_view = Attention(d, heads, qk_norm=qk)
        self.norm_temporal = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.temporal = Attention(d, heads, qk_norm=qk)
        self.norm_mlp = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(d, mult=config.mlp_ratio)

    def _views(self, y: torch.Tensor) -> torch.Tensor:
        """Cross-view attention of normalised, modulated tokens ``y (b v t n d)``."""
        b, v, t, n, _ = y.shape
        if self.cross_view_mode == "all":
            q = rearrange(y, "b v t n d -> (b t) (v n) d")
            out = self.cross_view(q)
            return rearrange(out, "(b t) (v n) d -> b v t n d", b=b, v=v)
        keys = torch.cat([y.roll(1, dims=1), y.roll(-1, dims=1)], dim=3)  # views i-1 and i+1: (b v t 2n d)
        q = rearrange(y, "b v t n d -> (b v t) n d")
        out = self.cross_view(q, rearrange(keys, "b v t m d -> (b v t) m d"))
        return rearrange(out, "(b v t) n d -> b v t n d", b=b, v=v)

    def _forward(self, x, mod, context, context_mask, rope_hw, rope_t):
        b, v, t, n, _ = x.shape
        m = (mod + self.table.to(mod.dtype))[:, None, :, None]  # b 1 t 1 12 d
        sh_s, sc_s, g_s, sh_v, sc_v, g_v, sh_t, sc_t, g_t, sh_m, sc_m, g_m = m.unbind(dim=4)

        y = rearrange(modulate(self.norm_spatial(x), sh_s, sc_s), "b v t n d -> (b v t) n d")
        x = x + gate(rearrange(self.spatial(y, rope=rope_hw), "(b v t) n d -> b v t n d", b=b, v=v), g_s)

        y = rearrange(self.norm_cross(x), "b v t n d -> (b v t) n d")
        ctx = rearrange(context, "b v t l d -> (b v t) l d")
        cmask = rearrange(context_mask, "b v t l -> (b v t) l")
        x = x + rearrange(self.cross(y, ctx, key_padding_mask=cmask), "(b v t) n d -> b v t n d", b=b, v=v)

        x = x + gate(self._views(modulate(self.norm_view(x), sh_v, sc_v)), g_v)

        y = rearrange(modulate(self.norm_temporal(x), sh_t, sc_t), "b v t n d -> (b v n) t d")
        x = x + gate(rearrange(self.temporal(y, rope=rope_t), "(b v n) t d -> b v t n d", b=b, v=v), g_t)

        return x + gate(self.mlp(modulate(self.norm_mlp(x), sh_m, sc_m)), g_m)

    def forward(self, x, mod, context, context_mask, rope_hw, rope_t):
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, mod, context, context_mask, rope_hw, rope_t, use_reentrant=False)
        return self._forward(x, mod, context, context_mask, rope_hw, rope_t)


class MultiViewDiT(nn.Module):
    """The camera DiT (module docstring). ``forward(x, time, cond, layout=None, given=None, drop=None,
    layout_video=None)``."""

    def __init__(self, config: MultiViewDiTConfig):
        super().__init__()
        self.config = config
        d, c, p = config.width, config.latent_channels, config.patch_size
        self.patch = PatchEmbed(c, d, p)
        self.rays = PatchEmbed(6, d, p)
        self.time = TimestepEmbedder(d)
        self.modulation = AdaLNZero(d, d, chunks=_CHUNKS)
        self.conditions = ConditionEncoder(config.conditions)
        self.blocks = nn.ModuleList(MultiViewBlock(config) for _ in range(config.depth))
        self.final = FinalLayer(d, d, c, p)
        self.head_dim = d // config.heads
        if config.control_depth:
            self.control_patch = PatchEmbed(c, d, p)
            self.control_in = zero_module(nn.Linear(d, d))
            self.control_blocks = nn.ModuleList(copy.deepcopy(self.blocks[i]) for i in range(config.control_depth))
            self.control_out = nn.ModuleList(zero_module(nn.Linear(d, d)) for _ in range(config.control_depth))
            if config.layout_hint:
                self.layout_hint = LayoutHint(config.layout_hint, config.spatial_compression * p,
                                              config.conditions.temporal_compression, d)

    def load_control_from_base(self) -> None:
        """Copy the first ``control_depth`` base blocks' weights into the control blocks
        (ControlNet's initialisation, e.g. after loading a pretrained base)."""
        for i in range(self.config.control_depth):
            self.control_blocks[i].load_state_dict(self.blocks[i].state_dict())

    def _embed(self, patch: PatchEmbed, x: torch.Tensor) -> torch.Tensor:
        """``(b v t c h w)`` -> tokens ``(b v t n d)``."""
        b = x.shape[0]
        tok, (t, _, _) = patch(rearrange(x, "b v t c h w -> (b v) c t h w"))
        return rearrange(tok, "(b v) (t n) d -> b v t n d", b=b, t=t)

    def forward(
        self,
        x: torch.Tensor,
        time: torch.Tensor,
        cond: Mapping[str, torch.Tensor],
        *,
        layout: torch.Tensor | None = None,
        given: torch.Tensor | None = None,
        drop: Mapping[str, torch.Tensor] | None = None,
        layout_video: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity ``(b v t c h w)``.

        x: noisy latents ``(b v t c h w)``. time: flow time ``(b,)`` in [0, 1]. cond: the batched
        :class:`layout.conditions.ConditionTransform` output (``intrinsics``, ``cam_to_ego`` and
        the keys :class:`.conditions.ConditionEncoder` reads; ``4 (t - 1) + 1`` camera frames).
        layout: the layout video's VAE latents ``(b v t c h w)`` for the control branch, or None.
        given: ``(b t)`` bool, latent frames given clean (modulated with time 0), or None.
        drop: ``group -> (b,)`` bool, condition groups dropped per sample (classifier-free
        guidance; groups of :data:`.conditions.CONDITION_GROUPS`), or None.
        layout_video: the layout video itself ``(b v 4 (t - 1) + 1 3 H W)``, uint8 (or in [-1, 1]),
        at the VAE's input size; required with ``layout`` when ``config.layout_hint > 0``.
        """
        cfg = self.config
        if x.ndim != 6 or x.shape[3] != cfg.latent_channels:
            raise ValueError(f"MultiViewDiT: latents must be (b v t c={cfg.latent_channels} h w), got {tuple(x.shape)}")
        b, v, t, _, h, w = x.shape
        p = cfg.patch_size
        if cond["intrinsics"].shape[:2] != (b, v) or cond["cam_to_ego"].shape[:2] != (b, v):
            raise ValueError(f"MultiViewDiT: intrinsics / cam_to_ego must be (b={b}, v={v}, ...), got {tuple(cond['intrinsics'].shape)} {tuple(cond['cam_to_ego'].shape)}")
        if layout is not None and layout.shape != x.shape:
            raise ValueError(f"MultiViewDiT: layout latents must have the latents' shape {tuple(x.shape)}, got {tuple(layout.shape)}")
        if layout is not None and cfg.layout_hint and layout_video is None:
            raise ValueError("MultiViewDiT: this DiT has a layout hint encoder (layout_hint > 0): pass layout_video with layout")

        tok = self._embed(self.patch, x)
        size = (w * cfg.spatial_compression, h * cfg.spatial_compression)
        rays = plucker_rays(cond["intrinsics"], cond["cam_to_ego"], size, (h, w))  # b v h w 6
        ray_tok, _ = self.rays(rearrange(rays, "b v h w c -> (b v) c 1 h w").to(x.dtype))
        tok = tok + rearrange(ray_tok, "(b v) n d -> b v 1 n d", b=b)

        times = time.reshape(b, 1).expand(b, t)
        if given is not None:
            times = torch.where(given.bool(), torch.zeros_like(times), times)
        temb = self.time(times)  # b t d
        mod = torch.stack(self.modulation(temb), dim=2)  # b t 12 d
        context, context_mask = self.conditions(cond, t, drop)
        rope_hw, rope_t = axis_ropes(t, h // p, w // p, self.head_dim, theta=cfg.rope_theta, device=x.device)

        ctrl = None
        if layout is not None and cfg.control_depth:
            ctrl = tok + self.control_in(self._embed(self.control_patch, layout))
            if cfg.layout_hint:
                ctrl = ctrl + self.layout_hint(layout_video).to(ctrl.dtype)
            keep = None
            if drop is not None and "layout" in drop:
                keep = (~drop["layout"].bool()).to(tok.dtype).reshape(b, 1, 1, 1, 1)
        for i, blk in enumerate(self.blocks):
            tok = blk(tok, mod, context, context_mask, rope_hw, rope_t)
            if ctrl is not None and i < cfg.control_depth:
                ctrl = self.control_blocks[i](ctrl, mod, context, context_mask, rope_hw, rope_t)
                res = self.control_out[i](ctrl)
                tok = tok + (res if keep is None else res * keep)

        out = self.final(rearrange(tok, "b v t n d -> (b v t) n d"), repeat(temb, "b t d -> (b v t) d", v=v))
        out = rearrange(out, "(b v t) (h w) (p1 p2 c) -> b v t c (h p1) (w p2)", b=b, v=v, h=h // p, p1=p, p2=p)
        return out


#: The residual output projections of a block: zeroed, they make the block the identity.
_BLOCK_OUTPUTS = ("spatial.to_out", "cross.to_out", "cross_view.to_out", "temporal.to_out", "mlp.fc2")


def grow_depth(weights: Mapping[str, torch.Tensor], config: MultiViewDiTConfig, depth: int, *,
               seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """The weights of a trained ``config`` DiT grown to ``depth`` blocks that compute exactly the
    same function (zero-initialised residual growth, as Net2Net's identity layers).

    The trained blocks keep their places, so the control branch still feeds blocks ``0 ..
    control_depth - 1``; the new blocks ``config.depth .. depth - 1`` come after them, before the
    final layer, freshly initialised (``seed``) with every residual output projection zeroed. The
    gates of the shared adaLN are trained and not zero, so the projections must be: then each new
    block adds nothing, while its gradients (into those projections first) are not zero.
    """
    if depth <= config.depth:
        raise ConfigError(f"grow_depth: the new depth must exceed the trained depth {config.depth}, got {depth}")
    new = tuple(f"blocks.{i}." for i in range(config.depth, depth))
    out = _extend(weights, replace(config, depth=depth), new, seed, "grow_depth")
    for i in range(config.depth, depth):
        for part in _BLOCK_OUTPUTS:
            for kind in ("weight", "bias"):
                out[f"blocks.{i}.{part}.{kind}"] = torch.zeros_like(out[f"blocks.{i}.{part}.{kind}"])
    return out


def add_layout_hint(weights: Mapping[str, torch.Tensor], config: MultiViewDiTConfig, channels: int, *,
                    seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """The weights of a trained ``config`` DiT with a freshly initialised (``seed``) layout hint
    encoder of ``channels`` added (:class:`.layout_hint.LayoutHint`); its output projection is
    zero-initialised, so the DiT computes exactly the same function until it is trained."""
    if config.layout_hint:
        raise ConfigError(f"add_layout_hint: the DiT has a layout hint already (layout_hint={config.layout_hint})")
    if channels < 1:
        raise ConfigError(f"add_layout_hint: channels must be >= 1, got {channels}")
    return _extend(weights, replace(config, layout_hint=channels), ("layout_hint.",), seed, "add_layout_hint")


def _extend(weights: Mapping[str, torch.Tensor], new_config: MultiViewDiTConfig, new_prefixes: tuple[str, ...],
            seed: int, what: str) -> dict[str, torch.Tensor]:  # fmt: skip
    """Trained ``weights`` completed to a ``new_config`` DiT: the parameters under ``new_prefixes``
    initialised with ``seed`` (the caller's RNG state untouched), every other one taken from
    ``weights``, which must hold exactly those."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = MultiViewDiT(new_config).state_dict()
    missing = sorted(k for k in fresh if k not in weights and not k.startswith(new_prefixes))
    extra = sorted(set(weights) - set(fresh))
    if missing or extra:
        raise ConfigError(f"{what}: the weights do not fit the config (missing {missing[:3]}, unexpected {extra[:3]})")
    return {k: (weights[k] if k in weights else v) for k, v in fresh.items()}
