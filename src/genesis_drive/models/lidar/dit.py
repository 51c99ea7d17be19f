"""LidarDiT: the LiDAR branch's spatio-temporal diffusion transformer over BEV latent sequences.

Input latents ``x (b t c h w)``: ``t`` future keyframe sweeps (2 Hz), each the normalised BEV
latent of the LiDAR AE (:class:`.ae.LidarAE`) **in its own sensor frame** (LIDAR_TOP at that
keyframe: x right, y forward, z up; latent cell ``(i, j)`` as the AE's grid, see :mod:`.voxel`).
Output: the flow velocity of the same shape (rectified flow, :mod:`genesis_drive.diffusion.flow`,
``t = 0`` data, ``t = 1`` noise).

Conditions (every one optional per sample through ``drop``, for guidance and the paper's
ablations):

* ``reference (b t c h w)``: the clean reference (past) sweep's latent, **re-voxelised in each
  future sensor frame** (the reference points moved by the known ego motion, then encoded). It is
  concatenated to the noisy latents channel-wise (in-context conditioning), with a learned
  "reference present" embedding added to the tokens; the static world is then aligned with the
  target and the network learns what changes (moving agents, newly seen space).
* control branch (ControlNet-style, zero-initialised injections as the camera DiT's): the layout
  BEV ``layout (b t Cl H W)`` (:func:`genesis_drive.layout.bev.rasterize_bev` channels resampled into
  the sensor grid at the AE's full grid resolution, ``H = layout_stride * h``) through a strided
  conv stem, concatenated with the camera features lifted to BEV ``camera (b t Cc h w)`` (the
  frozen video VAE's latents of the reference keyframe's six images, lifted into each future
  sensor grid, :mod:`.lift`), patch-embedded and added to the base tokens through a
  zero-initialised linear layer; copies of the first ``control_depth`` blocks process it and add
  their output after each base block through zero-initialised projections. At init the control
  branch changes nothing. Dropping ``layout`` or ``camera`` zeroes that part of the control input;
  dropping both removes the control residuals.
* semantic tokens by cross-attention, per future frame: the frame's boxes
  (:class:`..camera.conditions.BoxEncoder`: corners in that frame's ego frame, class, track), its
  ego pose relative to the reference keyframe (:class:`..camera.conditions.EgoEncoder`) and the
  clip's global caption embedding; each group has a learned null token (always attended), so a
  dropped group contributes only its null token.

Tokens: ``p x p`` patches, ``n = (h / p) (w / p)`` per frame. Block (:class:`SpatioTemporalBlock`):
a DiT block (:class:`..common.TransformerBlock`, adaLN-zero on the flow time) with spatial
self-attention and cross-attention to the frame's semantic tokens, then a temporal DiT block over
the ``t`` frames at each patch location. Positions: 3D rotary embeddings over ``(t, h, w)``
(:func:`..common.axis_ropes`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from einops import rearrange, repeat
from torch import nn

from ...errors import ConfigError
from ..camera.conditions import BoxEncoder, CaptionProjection, ConditionEncoderConfig, EgoEncoder
from ..common import FinalLayer, PatchEmbed, TimestepEmbedder, TransformerBlock, axis_ropes, zero_module

__all__ = ["LIDAR_DIT_GROUPS", "LidarDiTConfig", "LidarDiT", "SpatioTemporalBlock", "LIDAR_DIT_PRESETS", "test", "tiny", "paper"]

#: Condition groups of the LiDAR DiT that ``drop`` may remove per sample.
LIDAR_DIT_GROUPS: tuple[str, ...] = ("reference", "layout", "camera", "boxes", "ego", "caption")
_TOKEN_GROUPS = ("caption", "ego", "boxes")


@dataclass(frozen=True)
class LidarDiTConfig:
    """latent_channels: the LiDAR AE's latent channels. layout_channels: BEV raster channels.
    camera_channels: lifted camera feature channels (the video VAE's latent channels; 0 = no
    camera input). layout_stride: layout raster cells per latent cell (the AE's down factor).
    patch_size / width / depth / heads / mlp_ratio: transformer size. control_depth: blocks copied
    into the control branch (0: none; then layout and camera are unused). conditions: the box /
    ego / caption encoders (their ``dim`` is the context width). rope_theta, qk_norm: attention
    details."""

    latent_channels: int
    layout_channels: int
    camera_channels: int
    layout_stride: int = 4
    patch_size: int = 2
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    control_depth: int = 2
    conditions: ConditionEncoderConfig = field(default_factory=ConditionEncoderConfig)
    rope_theta: float = 10000.0
    qk_norm: bool = True

    def __post_init__(self) -> None:
        for name in ("latent_channels", "layout_channels", "layout_stride", "patch_size", "width", "depth", "heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LidarDiTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.camera_channels < 0:
            raise ConfigError(f"LidarDiTConfig.camera_channels must be >= 0, got {self.camera_channels}")
        if self.width % self.heads or (self.width // self.heads) % 2 or self.width // self.heads < 6:
            raise ConfigError(f"LidarDiTConfig: width {self.width} / heads {self.heads} must be an even head width >= 6 (3D RoPE)")
        if not 0 <= self.control_depth <= self.depth:
            raise ConfigError(f"LidarDiTConfig.control_depth must be in [0, depth={self.depth}], got {self.control_depth}")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"LidarDiTConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")


def test(latent_channels: int = 4, layout_channels: int = 5, camera_channels: int = 3) -> LidarDiTConfig:
    """Unit-test size: width 32, depth 2, 2 heads, one control block, patch 1."""
    return LidarDiTConfig(latent_channels, layout_channels, camera_channels, layout_stride=2, patch_size=1, width=32,
                          depth=2, heads=2, mlp_ratio=2.0, control_depth=1,
                          conditions=ConditionEncoderConfig(dim=32, num_bands=3, hidden_mult=1))  # fmt: skip


def tiny(latent_channels: int, layout_channels: int, camera_channels: int) -> LidarDiTConfig:
    """CPU size: width 128, depth 4, 4 heads, patch 2 (256 tokens per frame on a 32 x 32 latent),
    two control blocks."""
    return LidarDiTConfig(latent_channels, layout_channels, camera_channels, layout_stride=4, patch_size=2, width=128,
                          depth=4, heads=4, control_depth=2,
                          conditions=ConditionEncoderConfig(dim=128, num_bands=4, max_range=64.0))  # fmt: skip


def paper(latent_channels: int, layout_channels: int, camera_channels: int) -> LidarDiTConfig:
    """GPU size: width 768, depth 16, 12 heads, patch 2 on the paper AE's 32 x 32 latents
    (8x down of a 256 x 256 grid), 8 control blocks."""
    return LidarDiTConfig(latent_channels, layout_channels, camera_channels, layout_stride=8, patch_size=2, width=768,
                          depth=16, heads=12, control_depth=8,
                          conditions=ConditionEncoderConfig(dim=768, num_bands=8, max_range=102.4))  # fmt: skip


#: Named LiDAR DiT presets (plain functions of the AE's, the raster's and the camera features' channels).
LIDAR_DIT_PRESETS = {"test": test, "tiny": tiny, "paper": paper}


class SpatioTemporalBlock(nn.Module):
    """Spatial DiT block (self-attention + cross-attention to the frame's tokens + MLP), then a
    temporal DiT block (self-attention over frames + MLP), on tokens ``(b t n d)``."""

    def __init__(self, config: LidarDiTConfig):
        super().__init__()
        d = config.width
        self.spatial = TransformerBlock(d, config.heads, d, context_dim=config.conditions.dim,
                                        mlp_ratio=config.mlp_ratio, qk_norm=config.qk_norm)  # fmt: skip
        self.temporal = TransformerBlock(d, config.heads, d, mlp_ratio=config.mlp_ratio, qk_norm=config.qk_norm)

    def forward(self, x, temb, context, context_mask, rope_hw, rope_t):
        """x ``(b t n d)``, temb ``(b d)``, context ``(b t L dc)``, mask ``(b t L)``."""
        b, t, n, _ = x.shape
        y = self.spatial(rearrange(x, "b t n d -> (b t) n d"), repeat(temb, "b d -> (b t) d", t=t),
                         context=rearrange(context, "b t l d -> (b t) l d"),
                         context_mask=rearrange(context_mask, "b t l -> (b t) l"), rope=rope_hw)  # fmt: skip
        y = rearrange(y, "(b t) n d -> (b n) t d", b=b)
        y = self.temporal(y, repeat(temb, "b d -> (b n) d", n=n), rope=rope_t)
        return rearrange(y, "(b n) t d -> b t n d", b=b)


class LidarDiT(nn.Module):
    """The LiDAR DiT (module docstring). ``forward(x, time, cond, drop=None)``."""

    def __init__(self, config: LidarDiTConfig):
        super().__init__()
        self.config = config
        d, c, p = config.width, config.latent_channels, config.patch_size
        cc = config.conditions
        self.patch = PatchEmbed(2 * c, d, p)
        self.reference_flag = nn.Parameter(torch.zeros(d))
        self.time = TimestepEmbedder(d)
        self.boxes = BoxEncoder(cc)
        self.ego = EgoEncoder(cc)
        self.caption = CaptionProjection(cc)
        self.null = nn.Parameter(torch.randn(len(_TOKEN_GROUPS), cc.dim) * 0.02)
        self.blocks = nn.ModuleList(SpatioTemporalBlock(config) for _ in range(config.depth))
        self.final = FinalLayer(d, d, c, p)
        self.head_dim = d // config.heads
        if config.control_depth:
            s = config.layout_stride
            self.layout_stem = nn.Sequential(nn.Conv2d(config.layout_channels, d // 2, kernel_size=s, stride=s), nn.SiLU(),
                                             nn.Conv2d(d // 2, d // 2, kernel_size=3, padding=1))  # fmt: skip
            self.control_patch = PatchEmbed(d // 2 + config.camera_channels, d, p)
            self.control_in = zero_module(nn.Linear(d, d))
            self.control_blocks = nn.ModuleList(copy.deepcopy(self.blocks[i]) for i in range(config.control_depth))
            self.control_out = nn.ModuleList(zero_module(nn.Linear(d, d)) for _ in range(config.control_depth))

    def _embed(self, patch: PatchEmbed, x: torch.Tensor) -> torch.Tensor:
        """``(b t c h w)`` -> tokens ``(b t n d)``."""
        tok, (t, _, _) = patch(rearrange(x, "b t c h w -> b c t h w"))
        return rearrange(tok, "b (t n) d -> b t n d", t=t)

    def _context(self, cond: Mapping[str, torch.Tensor], b: int, t: int, keep: Mapping[str, torch.Tensor]):
        """Semantic tokens ``(b t L d)`` and mask ``(b t L)``: nulls, caption, ego, boxes."""
        dev = self.null.device
        null = repeat(self.null, "g d -> b t g d", b=b, t=t)
        toks, masks = [null], [torch.ones(b, t, len(_TOKEN_GROUPS), dtype=torch.bool, device=dev)]
        if "caption_global" in cond:
            cap = self.caption(cond["caption_global"], cond["caption_global"][:, None])[:, 0, :1]  # b 1 d: global segment
            toks.append(repeat(cap, "b s d -> b t s d", t=t))
            m = cond.get("caption_global_mask", torch.ones(b, dtype=torch.bool, device=dev)).bool() & keep["caption"]
            masks.append(repeat(m, "b -> b t 1", t=t))
        if "ego" in cond:
            toks.append(self.ego(cond["ego"])[:, :, None])
            masks.append(repeat(keep["ego"], "b -> b t 1", t=t))
        if "box_corners" in cond:
            toks.append(self.boxes(cond["box_corners"], cond["box_class"], cond["box_track"]))
            masks.append(cond["box_mask"].bool() & keep["boxes"][:, None, None])
        return torch.cat([x.to(null.dtype) for x in toks], dim=2), torch.cat(masks, dim=2)

    def forward(self, x: torch.Tensor, time: torch.Tensor, cond: Mapping[str, torch.Tensor],
                drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Velocity ``(b t c h w)``.

        x: noisy latents ``(b t c h w)``. time: flow time ``(b,)``. cond: ``reference (b t c h w)``,
        ``layout (b t Cl H W)``, ``camera (b t Cc h w)``, ``box_corners (b t n 8 3)`` metres /
        ``box_class`` / ``box_track`` / ``box_mask (b t n)``, ``ego (b t 4)``, ``caption_global
        (b e)`` / ``caption_global_mask (b,)``; any of them may be absent (= dropped for every
        sample). drop: group of :data:`LIDAR_DIT_GROUPS` -> ``(b,)`` bool, True = dropped.
        """
        cfg = self.config
        if x.ndim != 5 or x.shape[2] != cfg.latent_channels:
            raise ValueError(f"LidarDiT: latents must be (b t c={cfg.latent_channels} h w), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        p = cfg.patch_size
        unknown = set(drop or {}) - set(LIDAR_DIT_GROUPS)
        if unknown:
            raise ValueError(f"LidarDiT: unknown condition group(s) {sorted(unknown)}; expected names from {LIDAR_DIT_GROUPS}")
        ones = torch.ones(b, dtype=torch.bool, device=x.device)
        keep = {g: ones if drop is None or g not in drop else ~drop[g].bool() for g in LIDAR_DIT_GROUPS}
        for g in ("reference", "layout", "camera"):
            if g not in cond:
                keep[g] = ~ones
        shape_of = {"reference": (b, t, cfg.latent_channels, h, w), "camera": (b, t, cfg.camera_channels, h, w),
                    "layout": (b, t, cfg.layout_channels, h * cfg.layout_stride, w * cfg.layout_stride)}  # fmt: skip
        for g, want in shape_of.items():
            if g in cond and tuple(cond[g].shape) != want:
                raise ValueError(f"LidarDiT: cond[{g!r}] must have shape {want}, got {tuple(cond[g].shape)}")

        f5 = lambda k: k.to(x.dtype).reshape(b, 1, 1, 1, 1)  # noqa: E731
        ref = cond["reference"].to(x.dtype) * f5(keep["reference"]) if "reference" in cond else torch.zeros_like(x)
        tok = self._embed(self.patch, torch.cat([x, ref], dim=2))
        tok = tok + self.reference_flag * keep["reference"].to(tok.dtype).reshape(b, 1, 1, 1)

        temb = self.time(time.reshape(b))  # b d
        context, context_mask = self._context(cond, b, t, keep)
        rope_hw, rope_t = axis_ropes(t, h // p, w // p, self.head_dim, theta=cfg.rope_theta, device=x.device)

        ctrl = None
        use_ctrl = keep["layout"] | keep["camera"]
        if cfg.control_depth and bool(use_ctrl.any()):
            parts = []
            if "layout" in cond:
                lay = self.layout_stem(rearrange(cond["layout"].to(x.dtype), "b t c h w -> (b t) c h w"))
                parts.append(rearrange(lay, "(b t) c h w -> b t c h w", b=b) * f5(keep["layout"]))
            else:
                parts.append(x.new_zeros(b, t, cfg.width // 2, h, w))
            if cfg.camera_channels:
                cam = cond["camera"].to(x.dtype) * f5(keep["camera"]) if "camera" in cond else x.new_zeros(b, t, cfg.camera_channels, h, w)
                parts.append(cam)
            ctrl = tok + self.control_in(self._embed(self.control_patch, torch.cat(parts, dim=2)))
            gate_ctrl = use_ctrl.to(tok.dtype).reshape(b, 1, 1, 1)
        for i, blk in enumerate(self.blocks):
            tok = blk(tok, temb, context, context_mask, rope_hw, rope_t)
            if ctrl is not None and i < cfg.control_depth:
                ctrl = self.control_blocks[i](ctrl, temb, context, context_mask, rope_hw, rope_t)
                tok = tok + self.control_out[i](ctrl) * gate_ctrl

        out = self.final(rearrange(tok, "b t n d -> (b t) n d"), repeat(temb, "b d -> (b t) d", t=t))
        return rearrange(out, "(b t) (h w) (p1 p2 c) -> b t c (h p1) (w p2)", b=b, h=h // p, p1=p, p2=p)
