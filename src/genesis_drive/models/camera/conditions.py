"""Condition encoders of the camera DiT: condition tensors -> cross-attention tokens per view-frame.

Input: the batched output of :class:`genesis_drive.layout.conditions.ConditionTransform` (keys and
frames documented there; ``b`` batch, ``v`` views, ``T`` camera frames, ``n`` box slots, ``p``
pedestrian slots, ``k`` = 17 keypoints). Output: one context per latent view-frame,
``tokens (b v t L d)`` and ``mask (b v t L)`` (True = attend), ``t`` latent frames.

Encoders (each a small module):

* :class:`BoxEncoder`: Fourier features of the 8 corners + class embedding + track-id embedding
  (sinusoidal in the clip-local track index, so any number of tracks works) -> MLP -> a token.
* :class:`PoseNet`: the paper's pedestrian keypoint encoder. Per view and pedestrian, the 17
  keypoints projected into that view (normalised ``u, v`` Fourier features, depth / ``max_range``,
  visibility; invisible keypoints zeroed) flattened in COCO order -> MLP, plus the track-id
  embedding (linking a pose to its box) -> a token.
* :class:`EgoEncoder`: ``x, y`` (Fourier), ``cos yaw, sin yaw``, speed / 10 m/s -> MLP -> a token.
* :class:`CaptionProjection`: the 384-d sentence embeddings -> tokens: the global segment and the
  view's own camera segment (with a learned segment-type embedding each).

Time grouping: a causal video VAE with temporal compression ``c`` maps ``T = c (t - 1) + 1``
frames to ``t`` latent frames; latent frame 0 covers frame 0 and latent frame ``j >= 1`` covers
frames ``c (j - 1) + 1 .. c j`` (:func:`latent_frame_groups`). The box, pedestrian and ego tokens
of the frames a latent frame covers are all in its context, each with a learned embedding of its
position inside the group (latent frame 0 has one frame; its other group slots are masked).

Null tokens and dropout: every context starts with one learned null token per group
(:data:`TOKEN_GROUPS`), always attended. Dropping a group for a sample (classifier-free guidance)
masks out that group's real tokens, so the group contributes only its null token
(:func:`drop_token_groups`); a scene without boxes looks like a sample whose boxes were dropped.
The ``layout`` group (the control branch) is dropped by the DiT (its control residuals are zeroed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from ...errors import ConfigError
from ...layout.tokens import fourier_features

__all__ = [
    "TOKEN_GROUPS",
    "CONDITION_GROUPS",
    "ConditionEncoderConfig",
    "BoxEncoder",
    "PoseNet",
    "EgoEncoder",
    "CaptionProjection",
    "ConditionEncoder",
    "latent_frame_groups",
    "drop_token_groups",
    "random_drop",
    "sinusoidal_index",
]

#: Token groups of the cross-attention context, in context order.
TOKEN_GROUPS: tuple[str, ...] = ("caption", "ego", "boxes", "pedestrians")
#: Every condition group that classifier-free guidance can drop (``layout``: the control branch).
CONDITION_GROUPS: tuple[str, ...] = TOKEN_GROUPS + ("layout",)

_NUM_KEYPOINTS = 17


@dataclass(frozen=True)
class ConditionEncoderConfig:
    """dim: token width (the DiT's context width). num_classes: box classes (ids 0..num_classes-1,
    -1 = padding). num_bands / max_range: Fourier bands and metric scale R (metres) of corners,
    ego positions and keypoint depths. pose_bands: Fourier bands of normalised keypoint pixels.
    caption_dim: sentence-embedding size. temporal_compression: camera frames per latent frame.
    hidden_mult: MLP hidden width = hidden_mult * dim."""

    dim: int = 128
    num_classes: int = 10
    num_bands: int = 4
    max_range: float = 64.0
    pose_bands: int = 4
    caption_dim: int = 384
    temporal_compression: int = 4
    hidden_mult: int = 2

    def __post_init__(self) -> None:
        for name in ("dim", "num_classes", "num_bands", "pose_bands", "caption_dim", "temporal_compression", "hidden_mult"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ConditionEncoderConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.max_range > 0:
            raise ConfigError(f"ConditionEncoderConfig.max_range must be > 0 m, got {self.max_range}")


def sinusoidal_index(index: torch.Tensor, dim: int, max_period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(... dim)`` of integer indices ``(...)`` (negative = padding -> zeros)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=index.device, dtype=torch.float32) / half)
    ang = index.clamp(min=0).float()[..., None] * freqs
    emb = torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb * (index >= 0)[..., None]


def _mlp(d_in: int, dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, mult * dim), nn.SiLU(), nn.Linear(mult * dim, dim))


class BoxEncoder(nn.Module):
    """corners (... 8 3) metres, class (...) int, track (...) int -> tokens (... d)."""

    def __init__(self, config: ConditionEncoderConfig):
        super().__init__()
        self.config = config
        d_in = 24 * (1 + 2 * config.num_bands)
        self.corners = _mlp(d_in, config.dim, config.hidden_mult)
        self.classes = nn.Embedding(config.num_classes + 1, config.dim)  # the last row: padding
        self.track = nn.Linear(config.dim, config.dim)
        self.out = _mlp(config.dim, config.dim, config.hidden_mult)

    def forward(self, corners: torch.Tensor, cls: torch.Tensor, track: torch.Tensor) -> torch.Tensor:
        c = self.config
        f = fourier_features(corners.flatten(-2).float(), c.num_bands, c.max_range)
        cls_idx = torch.where(cls >= 0, cls, torch.full_like(cls, c.num_classes))
        h = self.corners(f) + self.classes(cls_idx) + self.track(sinusoidal_index(track, c.dim))
        return self.out(h)


class PoseNet(nn.Module):
    """Pedestrian keypoints in one view -> one token per pedestrian.

    keypoints_2d (... k 2) normalised image coordinates in [0, 1], depth (... k) metres,
    visible (... k) bool, track (...) int -> (... d). Invisible keypoints contribute zeros.
    """

    def __init__(self, config: ConditionEncoderConfig):
        super().__init__()
        self.config = config
        per_kp = 2 * (1 + 2 * config.pose_bands) + 2
        self.keypoints = _mlp(_NUM_KEYPOINTS * per_kp, config.dim, config.hidden_mult)
        self.track = nn.Linear(config.dim, config.dim)
        self.out = _mlp(config.dim, config.dim, config.hidden_mult)

    def forward(self, keypoints_2d: torch.Tensor, depth: torch.Tensor, visible: torch.Tensor, track: torch.Tensor) -> torch.Tensor:
        c = self.config
        vis = visible.float()
        # u, v in [0, 1] -> [-1, 1] before the Fourier features (max_range 1)
        uv = fourier_features(keypoints_2d.float() * 2.0 - 1.0, c.pose_bands, 1.0)
        f = torch.cat([uv, depth.float()[..., None] / c.max_range, vis[..., None]], dim=-1) * vis[..., None]
        h = self.keypoints(f.flatten(-2)) + self.track(sinusoidal_index(track, c.dim))
        return self.out(h)


class EgoEncoder(nn.Module):
    """ego (... 4) ``x, y`` metres, yaw radians, speed m/s (frame-0 ego frame) -> (... d)."""

    SPEED_SCALE = 10.0  # m/s

    def __init__(self, config: ConditionEncoderConfig):
        super().__init__()
        self.config = config
        self.net = _mlp(2 * (1 + 2 * config.num_bands) + 3, config.dim, config.hidden_mult)

    def forward(self, ego: torch.Tensor) -> torch.Tensor:
        c = self.config
        ego = ego.float()
        xy = fourier_features(ego[..., :2], c.num_bands, c.max_range)
        yaw = ego[..., 2:3]
        f = torch.cat([xy, torch.cos(yaw), torch.sin(yaw), ego[..., 3:4] / self.SPEED_SCALE], dim=-1)
        return self.net(f)


class CaptionProjection(nn.Module):
    """caption_global (b e), caption_views (b v e) -> tokens (b v 2 d): [global, own camera]."""

    def __init__(self, config: ConditionEncoderConfig):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(config.caption_dim), _mlp(config.caption_dim, config.dim, config.hidden_mult))
        self.segment = nn.Parameter(torch.zeros(2, config.dim))
        nn.init.normal_(self.segment, std=0.02)

    def forward(self, caption_global: torch.Tensor, caption_views: torch.Tensor) -> torch.Tensor:
        v = caption_views.shape[1]
        both = torch.stack([repeat(caption_global, "b e -> b v e", v=v), caption_views], dim=2).float()
        return self.proj(both) + self.segment


def latent_frame_groups(num_frames: int, compression: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera frames of each latent frame: ``index (t c)`` int64 and ``valid (t c)`` bool.

    ``num_frames`` must be ``compression * (t - 1) + 1``; latent 0 = [frame 0] (other slots
    invalid, index 0), latent j = frames ``c (j - 1) + 1 .. c j``.
    """
    if num_frames < 1 or (num_frames - 1) % compression:
        raise ValueError(f"{num_frames} frames is not {compression} k + 1 (k >= 0): cannot group them into latent frames")
    t = (num_frames - 1) // compression + 1
    j = torch.arange(t, device=device)[:, None]
    s = torch.arange(compression, device=device)[None, :]
    index = torch.where(j == 0, torch.zeros_like(s), compression * (j - 1) + 1 + s)
    valid = (j > 0) | (s == 0)
    return index, valid


def drop_token_groups(masks: Mapping[str, torch.Tensor], drop: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Masks ``group -> (b ...)`` bool with every token of group ``g`` of sample ``i`` masked out
    where ``drop[g][i]`` is True; groups not in ``drop`` (or ``drop`` None) are unchanged.
    Unknown group names raise."""
    out = dict(masks)
    for g, d in (drop or {}).items():
        if g not in CONDITION_GROUPS:
            raise ValueError(f"unknown condition group {g!r}; expected names from {CONDITION_GROUPS}")
        if g not in out:
            continue
        keep = ~d.bool().reshape(-1, *([1] * (out[g].dim() - 1)))
        out[g] = out[g] & keep
    return out


def random_drop(batch: int, probs: Mapping[str, float], generator: torch.Generator | None = None, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Independent Bernoulli drop masks ``group -> (b)`` bool with the given probabilities."""
    out = {}
    for g in CONDITION_GROUPS:
        p = float(probs.get(g, 0.0))
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"condition dropout for {g!r} must be in [0, 1], got {p}")
        out[g] = torch.rand(batch, generator=generator, device=device) < p
    unknown = set(probs) - set(CONDITION_GROUPS)
    if unknown:
        raise ConfigError(f"unknown condition dropout group(s) {sorted(unknown)}; expected names from {CONDITION_GROUPS}")
    return out


class ConditionEncoder(nn.Module):
    """All condition encoders: batched transform output -> ``(tokens (b v t L d), mask (b v t L))``.

    Context order per latent view-frame: the null tokens of :data:`TOKEN_GROUPS` (always valid),
    then caption (2), ego (c), boxes (c n), pedestrians of that view (c p), ``c`` =
    ``temporal_compression``. ``L = 4 + 2 + c (1 + n + p)``.
    """

    def __init__(self, config: ConditionEncoderConfig):
        super().__init__()
        self.config = config
        self.boxes = BoxEncoder(config)
        self.poses = PoseNet(config)
        self.ego = EgoEncoder(config)
        self.caption = CaptionProjection(config)
        self.null = nn.Parameter(torch.zeros(len(TOKEN_GROUPS), config.dim))
        self.sub_frame = nn.Parameter(torch.zeros(config.temporal_compression, config.dim))
        nn.init.normal_(self.null, std=0.02)
        nn.init.normal_(self.sub_frame, std=0.02)

    def group_tokens(self, cond: Mapping[str, torch.Tensor], num_latent_frames: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per group: tokens ``(b v t l d)`` and masks ``(b v t l)`` (before dropout and nulls)."""
        c = self.config.temporal_compression
        b, v = cond["caption_views"].shape[:2]
        num_frames = cond["ego"].shape[1]
        index, valid = latent_frame_groups(num_frames, c, cond["ego"].device)
        if index.shape[0] != num_latent_frames:
            raise ValueError(f"conditions have {num_frames} frames = {index.shape[0]} latent frames, the latents {num_latent_frames}")
        flat = index.reshape(-1)
        sub = self.sub_frame  # (c d)

        def group(x: torch.Tensor, axis: int) -> torch.Tensor:  # frames -> (t c) at `axis`
            g = x.index_select(axis, flat)
            return g.unflatten(axis, index.shape)

        tokens, masks = {}, {}
        cap = self.caption(cond["caption_global"], cond["caption_views"])  # b v 2 d
        tokens["caption"] = rearrange(cap, "b v s d -> b v 1 s d").expand(-1, -1, num_latent_frames, -1, -1)
        cap_mask = torch.stack([cond["caption_global_mask"][:, None].expand(-1, v), cond["caption_views_mask"]], dim=-1).bool()
        masks["caption"] = rearrange(cap_mask, "b v s -> b v 1 s").expand(-1, -1, num_latent_frames, -1)

        ego = group(self.ego(cond["ego"]), 1) + sub  # b t c d
        tokens["ego"] = repeat(ego, "b t c d -> b v t c d", v=v)
        masks["ego"] = repeat(valid, "t c -> b v t c", b=b, v=v)

        box = self.boxes(cond["box_corners"], cond["box_class"], cond["box_track"])  # b T n d
        box = group(box, 1) + sub[:, None]  # b t c n d
        tokens["boxes"] = repeat(box, "b t c n d -> b v t (c n) d", v=v)
        box_mask = group(cond["box_mask"].bool(), 1) & valid[None, :, :, None]
        masks["boxes"] = repeat(box_mask, "b t c n -> b v t (c n)", v=v)

        track = repeat(cond["ped_track"], "b T p -> b v T p", v=v)
        ped = self.poses(cond["ped_keypoints_2d"], cond["ped_depth"], cond["ped_visible_2d"], track)  # b v T p d
        ped = group(ped, 2) + sub[:, None]  # b v t c p d
        tokens["pedestrians"] = rearrange(ped, "b v t c p d -> b v t (c p) d")
        ped_mask = group(cond["ped_view_mask"].bool() & cond["ped_mask"].bool()[:, None], 2) & valid[None, None, :, :, None]
        masks["pedestrians"] = rearrange(ped_mask, "b v t c p -> b v t (c p)")
        return tokens, masks

    def forward(
        self, cond: Mapping[str, torch.Tensor], num_latent_frames: int, drop: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, masks = self.group_tokens(cond, num_latent_frames)
        masks = drop_token_groups(masks, drop)
        b, v = masks["caption"].shape[:2]
        null = repeat(self.null, "g d -> b v t g d", b=b, v=v, t=num_latent_frames)
        null_mask = torch.ones(null.shape[:-1], dtype=torch.bool, device=null.device)
        ctx = torch.cat([null] + [tokens[g].to(null.dtype) for g in TOKEN_GROUPS], dim=3)
        mask = torch.cat([null_mask] + [masks[g] for g in TOKEN_GROUPS], dim=3)
        return ctx, mask
