"""The FD_synth feature network: a residual CNN over single camera frames plus an order-aware
temporal head over a clip of one view (training recipe: ``train/tasks/synth_features.py``; metric:
``eval/synth_features.py``).

Its *frame embedding* (``num_features``) feeds FD_synth, its *clip embedding*
(``num_video_features``) feeds FD_synth-video. Heads: ``channel`` (which camera), ``presence`` /
``count`` per :data:`OBJECT_GROUPS` group, ``layout`` (:data:`SEG_CLASSES` map at ``seg_stride``),
``time`` / ``weather`` (:data:`TIMES_OF_DAY` / :data:`WEATHERS`) per frame; ``motion`` (signed ego
velocity) and ``order`` (:data:`FRAME_ORDERS`) per clip. The vocabularies live here because they
fix the head sizes.

The temporal head sees order by construction: it works on *consecutive pairs* of frames in the
order given: a small motion CNN (:class:`PairMotion`) over each pair's optical-flow evidence, two
1D convolutions over the ``t - 1`` pair tokens, mean + max pooling, joined by the token of the
long-baseline pair (first frame, last frame; ``t - 1`` times the motion) and by the frames'
appearance pooled over time (order-blind), and, with ``view_gate``, by the motion summary gated
by the camera the frames show (the direction of time is the motion read per view). Reversing a
clip turns every pair around and shuffling it pairs non-neighbouring frames, so neither leaves the
clip embedding unchanged (a permutation-invariant pooling of frame embeddings would).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...data.schema import CAMERA_CHANNELS
from ...errors import ConfigError
from ...world.lighting import LIGHTING_PRESETS
from ...world.lighting import WEATHERS as _WEATHERS
from ..blocks import ImageEncoder, encoder_strides, group_count

__all__ = ["FRAME_ORDERS", "OBJECT_GROUPS", "SEG_CLASSES", "TIMES_OF_DAY", "WEATHERS", "PairMotion", "SynthFeatureNet",
           "SynthFeatureNetConfig", "affine_flow_moments", "block_flow"]

#: Classes of the coarse layout map (index 0 = nothing drawn: sky, buildings, unmapped ground).
SEG_CLASSES: tuple[str, ...] = (
    "background", "drivable_area", "walkway", "ped_crossing", "lane_line", "vehicle", "pedestrian", "cycle", "obstacle",
)  # fmt: skip
#: Object groups (detection classes per group) for presence/count targets and the layout map.
OBJECT_GROUPS: dict[str, tuple[str, ...]] = {
    "vehicle": ("car", "truck", "bus", "trailer", "construction_vehicle"),
    "pedestrian": ("pedestrian",),
    "cycle": ("motorcycle", "bicycle"),
    "obstacle": ("traffic_cone", "barrier"),
}
#: Time-of-day and weather vocabularies (SynthTown's lighting presets and weathers).
TIMES_OF_DAY: tuple[str, ...] = tuple(LIGHTING_PRESETS)
WEATHERS: tuple[str, ...] = tuple(_WEATHERS)
#: Classes of the clip ``order`` head: frames in recorded order, reversed, or otherwise permuted.
FRAME_ORDERS: tuple[str, ...] = ("in_order", "reversed", "shuffled")


@dataclass(frozen=True)
class SynthFeatureNetConfig:
    """The FD_synth network.

    image_size: (width, height) pixels the network sees (clips are resized to it; extractors resize
    any input to it). widths: encoder channels per stride-2 stage. seg_stride: stride of the layout
    map head (one of the encoder strides, dividing the image size). num_features / num_video_features:
    frame / clip embedding sizes. temporal_width: channels of the temporal 1D convolutions.
    motion_widths: channels of the pair motion CNN's stride-2 convolutions over pixel pairs.
    views: camera channels, in the order of the ``channel`` target.
    view_gate: channels of the view-gated motion summary (0: none). Which way the pixels move when
    the ego drives forwards depends on the camera (the front view expands, the back view
    contracts, the side views flow in opposite directions), so the sign of time is the motion
    read *per view*; the gate multiplies a ``view_gate``-channel projection of the clip's motion
    by the frame encoder's own (order-blind, detached) ``channel`` probabilities, giving every
    view its own linear read-out of the motion.
    flow_scales: scales (image pixels per cell) at which the pair motion CNN also sees a
    block-matching flow (none: ``()``). The brightness-constancy evidence holds for motion below a
    pixel, and driving moves the side views' pixels several pixels between the clip's frames, so at
    each scale :func:`block_flow` matches every cell of the first image against the second within
    ``flow_radius`` cells and hands the CNN the matched displacement and its confidence.
    flow_radius: search radius of that matching, in cells of its scale.
    flow_maps: hand the flow to the CNN as maps (3 channels per scale), or else (False) as the six
    :func:`affine_flow_moments` per scale beside the CNN's pair vector.
    joint_order: channels per view of the *multi-view order head* (0: none): the motion summaries of
    all views of one multi-view clip (in ``views`` order), each projected to ``joint_order``
    channels, concatenated and read by a two-layer MLP into one :data:`FRAME_ORDERS` answer for the
    clip. It sees the front view's expansion beside the back view's contraction at once, which a
    sum of per-view votes cannot weigh against each other.
    """

    image_size: tuple[int, int] = (128, 72)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    seg_stride: int = 8
    num_features: int = 256
    num_video_features: int = 256
    temporal_width: int = 256
    motion_widths: tuple[int, ...] = (32, 64, 64)
    views: tuple[str, ...] = CAMERA_CHANNELS
    view_gate: int = 0
    flow_scales: tuple[int, ...] = ()
    flow_radius: int = 2
    flow_maps: bool = True
    joint_order: int = 0

    def __post_init__(self) -> None:
        w, h = self.image_size
        strides = encoder_strides(self.widths)
        if self.seg_stride not in strides:
            raise ConfigError(f"model.seg_stride must be one of the encoder strides {strides}, got {self.seg_stride}")
        if not self.motion_widths or min(self.motion_widths) < 2:
            raise ConfigError(f"model.motion_widths must be channel counts >= 2, got {self.motion_widths}")
        if w % self.seg_stride or h % self.seg_stride:
            raise ConfigError(f"model.image_size {self.image_size} must be divisible by model.seg_stride={self.seg_stride}")
        if min(self.num_features, self.num_video_features, self.temporal_width) < 2 or not self.views:
            raise ConfigError("model.num_features, num_video_features, temporal_width must be >= 2 and views non-empty")
        if self.view_gate < 0:
            raise ConfigError(f"model.view_gate must be >= 0 (0: no view gate), got {self.view_gate}")
        if any(k < 1 or w % k or h % k for k in self.flow_scales) or self.flow_radius < 1:
            raise ConfigError(f"model.flow_scales must divide the image size {self.image_size} and model.flow_radius be >= 1, "
                              f"got {self.flow_scales} and {self.flow_radius}")  # fmt: skip
        if self.joint_order < 0:
            raise ConfigError(f"model.joint_order must be >= 0 (0: no multi-view order head), got {self.joint_order}")


def _local_norm(x: torch.Tensor) -> torch.Tensor:
    """Each pixel of ``(n, 1, h, w)`` minus the mean of its 3x3 neighbourhood, over that neighbourhood's std."""
    mu = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    var = F.avg_pool2d(x * x, 3, 1, 1, count_include_pad=False) - mu * mu
    return (x - mu) / (var.clamp_min(0) + 1e-4).sqrt()


def block_flow(first: torch.Tensor, second: torch.Tensor, scale: int, radius: int, temperature: float = 0.03) -> torch.Tensor:
    """Block-matching flow of two grey images ``(n, 1, h, w)`` (h, w divisible by ``scale``):
    ``(n, 3, h / scale, w / scale)`` = displacement (x, y) from ``first`` to ``second`` in units of
    ``radius`` cells of ``scale`` pixels (in [-1, 1]), and the best match's correlation.

    Both images are averaged over ``scale x scale`` cells and normalised by their 3x3 neighbourhood
    (so brightness and contrast do not count); every cell's neighbourhood in ``first`` is
    correlated with the neighbourhoods in ``second`` shifted by up to ``radius`` cells, and the
    displacement is the soft-argmax of those correlations (``temperature``). A texture moved by
    ``(dx, dy)`` pixels reads ``(dx, dy) / (scale radius)``; swapping the images negates it.
    Textureless cells match everywhere alike and read about zero at low confidence; cells within
    ``radius`` of the border read 0 (all three channels), since part of their search window lies
    outside the image.
    """
    a = _local_norm(F.avg_pool2d(first, scale))
    b = F.pad(_local_norm(F.avg_pool2d(second, scale)), (radius,) * 4)
    h, w = a.shape[-2:]
    shifts = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    corr = torch.cat([F.avg_pool2d(a * b[..., radius + dy : radius + dy + h, radius + dx : radius + dx + w], 3, 1, 1,
                                   count_include_pad=False) for dy, dx in shifts], dim=1)  # fmt: skip
    p = (corr / temperature).softmax(dim=1)
    grid = torch.tensor(shifts, dtype=a.dtype, device=a.device) / radius  # (S, 2) as (dy, dx)
    flow = torch.cat([torch.einsum("nshw,sk->nkhw", p, grid.flip(1)), corr.amax(dim=1, keepdim=True)], dim=1)  # (x, y, conf)
    # cells within `radius` of the border: part of their search window lies outside the image, where
    # nothing matches, which would pull their displacement inwards (an apparent contraction); they read 0
    inner = torch.zeros(h, w, dtype=a.dtype, device=a.device)
    inner[radius : h - radius, radius : w - radius] = 1
    return flow * inner


def affine_flow_moments(flow: torch.Tensor) -> torch.Tensor:
    """The first-order moments of a flow field ``(n, 2, h, w)`` (x, y components) over cell
    coordinates ``x, y`` in [-1, 1] (image centre 0, y down): ``(n, 6)`` = 4 x the means of ``u``,
    ``v`` (translation), ``x u``, ``y v`` (their sum: expansion), ``y u``, ``x v`` (their difference:
    rotation). Parameter-free, so what they say about the direction of the motion does not depend
    on the scenes a network was trained on; time reversed negates all six."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=flow.device, dtype=flow.dtype),
                            torch.linspace(-1, 1, w, device=flow.device, dtype=flow.dtype), indexing="ij")  # fmt: skip
    u, v = flow[:, 0], flow[:, 1]
    return 4 * torch.stack([u, v, xs * u, ys * v, ys * u, xs * v], dim=1).mean(dim=(2, 3))


class PairMotion(nn.Module):
    """Two images ``(n, c, h, w)`` in [-1, 1] -> a pair vector ``(n, out_dim)``: stride-2
    3x3 convolutions (GroupNorm, SiLU), then mean + max pool, over the local motion evidence of
    the brightness-constancy (optical-flow) constraint: the temporal difference ``d = second -
    first``, the spatial gradients ``gx, gy`` of the pair's mean image, the products ``d * gx``,
    ``d * gy`` (their sign is the sign of the normal flow) and the pixel coordinates ``x, y`` in
    [-1, 1] (so that expansion, driving forwards, differs from contraction, which a
    translation-invariant convolution with global pooling cannot tell apart); with ``flow_scales``
    also the :func:`block_flow` of the pair's grey images at each scale, which reads motion of
    several pixels that the constraint cannot: as 3 more input channels per scale (``flow_maps``,
    cells repeated to pixels), or else as its six :func:`affine_flow_moments` per scale appended
    to the pooled vector (``out_dim = 2 widths[-1]``, plus 6 per scale without maps). The
    images themselves are left out, so the vector carries motion rather than appearance; swapping
    the two images negates ``d``, the products and the flow."""

    def __init__(self, channels: int, widths: tuple[int, ...], flow_scales: tuple[int, ...] = (), flow_radius: int = 2,
                 flow_maps: bool = True):
        super().__init__()
        self.flow_scales, self.flow_radius, self.flow_maps = tuple(flow_scales), flow_radius, flow_maps
        #: size of the pair vector
        self.out_dim = 2 * widths[-1] + (0 if flow_maps else 6 * len(self.flow_scales))
        layers: list[nn.Module] = []
        for a, b in zip((5 * channels + 2 + (3 * len(self.flow_scales) if flow_maps else 0), *widths[:-1]), widths):
            layers += [nn.Conv2d(a, b, 3, 2, 1), nn.GroupNorm(group_count(b), b), nn.SiLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        n, _, h, w = first.shape
        d, m = second - first, (first + second) / 2
        gx = F.pad(m[..., 2:] - m[..., :-2], (1, 1)) / 2
        gy = F.pad(m[..., 2:, :] - m[..., :-2, :], (0, 0, 1, 1)) / 2
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=first.device, dtype=first.dtype),
                                torch.linspace(-1, 1, w, device=first.device, dtype=first.dtype), indexing="ij")  # fmt: skip
        coords = torch.stack([xs, ys]).expand(n, 2, h, w)
        parts = [d, gx, gy, 4 * d * gx, 4 * d * gy, coords]
        moments = []
        if self.flow_scales:
            grey_a, grey_b = first.mean(dim=1, keepdim=True), second.mean(dim=1, keepdim=True)
        for k in self.flow_scales:
            flow = block_flow(grey_a, grey_b, k, self.flow_radius)
            if self.flow_maps:
                parts.append(flow.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3))
            else:
                moments.append(affine_flow_moments(flow[:, :2]))
        feats = self.net(torch.cat(parts, dim=1))
        return torch.cat([feats.mean(dim=(2, 3)), feats.amax(dim=(2, 3)), *moments], dim=1)


class SynthFeatureNet(nn.Module):
    """Frame encoder + linear target heads, and an order-aware temporal head over one view's frames.

    Inputs are float images in [-1, 1] at ``cfg.image_size``. :meth:`embed_frames` gives
    ``(n, num_features)``, :meth:`embed_clips` ``(n, num_video_features)`` (clips of at least two
    frames), :meth:`order_logits` ``(n, len(FRAME_ORDERS))``; :meth:`forward` gives every head's
    output for training.
    """

    def __init__(self, cfg: SynthFeatureNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.widths)
        self.seg_level = self.encoder.strides.index(cfg.seg_stride)
        top = cfg.widths[-1]
        self.embed = nn.Linear(2 * top, cfg.num_features)
        g = len(OBJECT_GROUPS)
        self.heads = nn.ModuleDict({
            "channel": nn.Linear(cfg.num_features, len(cfg.views)),
            "presence": nn.Linear(cfg.num_features, g),
            "count": nn.Linear(cfg.num_features, g),
            "time": nn.Linear(cfg.num_features, len(TIMES_OF_DAY)),
            "weather": nn.Linear(cfg.num_features, len(WEATHERS)),
        })  # fmt: skip
        self.seg_head = nn.Conv2d(cfg.widths[self.seg_level], len(SEG_CLASSES), 1)
        tw = cfg.temporal_width
        self.pair_motion = PairMotion(3, cfg.motion_widths, cfg.flow_scales, cfg.flow_radius, cfg.flow_maps)
        self.pair_token = nn.Linear(self.pair_motion.out_dim, tw)
        self.appearance = nn.Linear(2 * cfg.num_features, tw)
        self.temporal = nn.Sequential(
            nn.SiLU(), nn.Conv1d(tw, tw, 3, padding=1), nn.SiLU(), nn.Conv1d(tw, tw, 3, padding=1), nn.SiLU()
        )
        # view-gated motion (see SynthFeatureNetConfig.view_gate): absent when 0, so older checkpoints load
        self.view_gate = nn.Linear(3 * tw, cfg.view_gate) if cfg.view_gate else None
        self.video_embed = nn.Linear(4 * tw + cfg.view_gate * len(cfg.views), cfg.num_video_features)
        self.video_heads = nn.ModuleDict({"motion": nn.Linear(cfg.num_video_features, 2),
                                          "order": nn.Linear(cfg.num_video_features, len(FRAME_ORDERS))})  # fmt: skip
        # multi-view order head (see SynthFeatureNetConfig.joint_order): absent when 0, so older checkpoints load
        g, nv = cfg.joint_order, len(cfg.views)
        self.joint_view = nn.Linear(3 * tw, g) if g else None
        self.joint_head = (nn.Sequential(nn.SiLU(), nn.Linear(nv * g, 4 * g), nn.SiLU(), nn.Linear(4 * g, len(FRAME_ORDERS)))
                           if g else None)  # fmt: skip

    def _check(self, x: torch.Tensor) -> None:
        w, h = self.cfg.image_size
        if x.shape[-3:] != (3, h, w):
            raise ValueError(f"SynthFeatureNet expects images (..., 3, {h}, {w}), got {tuple(x.shape)}")

    def _frames(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(n, 3, h, w) -> embedding (n, d), the encoder's feature maps (one per stride)."""
        feats = self.encoder(x)
        top = feats[-1]
        pooled = torch.cat([top.mean(dim=(2, 3)), top.amax(dim=(2, 3))], dim=1)
        return self.embed(pooled), feats

    def _clips(self, emb: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame embeddings (n, t, d) and the images (n, t, 3, h, w), in the order to be judged ->
        clip embedding (n, dv) and the appearance-blind motion summary (n, 3 temporal_width)."""
        n, t = emb.shape[:2]
        if t < 2:
            raise ValueError(f"the temporal head needs clips of at least 2 frames, got {t}")
        # consecutive pairs (t - 1 motion tokens), then the long-baseline pair (first frame, last frame)
        first = rearrange(torch.cat([x[:, :-1], x[:, :1]], dim=1), "n p c h w -> (n p) c h w")
        second = rearrange(torch.cat([x[:, 1:], x[:, -1:]], dim=1), "n p c h w -> (n p) c h w")
        tokens = self.pair_token(rearrange(self.pair_motion(first, second), "(n p) k -> n p k", n=n))
        h = self.temporal(rearrange(tokens[:, :-1], "n p k -> n k p"))
        # appearance enters order-blind (pooled over frames): the order evidence is the pixel motion alone,
        # so the order head cannot learn the frame order of training clips by their looks
        look = F.silu(self.appearance(torch.cat([emb.mean(dim=1), emb.amax(dim=1)], dim=1)))
        motion = torch.cat([h.mean(dim=2), h.amax(dim=2), F.silu(tokens[:, -1])], dim=1)
        parts = [motion, look]
        if self.view_gate is not None:
            # which camera this is, from the frames' looks (order-blind, and not trained by the order loss)
            view = self.heads["channel"](emb).softmax(dim=-1).mean(dim=1).detach()  # n v
            gated = view[:, :, None] * self.view_gate(motion)[:, None, :]  # n v g
            parts.append(rearrange(gated, "n v g -> n (v g)"))
        return self.video_embed(torch.cat(parts, dim=1)), motion

    def _joint(self, motion: torch.Tensor) -> torch.Tensor:
        """Motion summaries ((b v), 3 temporal_width) of multi-view clips, views in ``cfg.views``
        order -> multi-view order logits (b, len(FRAME_ORDERS))."""
        assert self.joint_view is not None and self.joint_head is not None
        per_view = rearrange(self.joint_view(motion), "(b v) g -> b (v g)", v=len(self.cfg.views))
        return self.joint_head(per_view)

    def _clip_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Clips (n, t, 3, h, w) -> frame embeddings (n, t, d) and all feature maps ((n t) c h w)."""
        self._check(x)
        emb, feats = self._frames(rearrange(x, "n t c h w -> (n t) c h w"))
        return rearrange(emb, "(n t) d -> n t d", n=x.shape[0]), feats

    def _clip_embedding(self, emb: torch.Tensor, x: torch.Tensor, order: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if order is not None:
            if order.shape != emb.shape[:2]:
                raise ValueError(f"order must be (n, t) = {tuple(emb.shape[:2])}, got {tuple(order.shape)}")
            emb = torch.gather(emb, 1, order[..., None].expand_as(emb))
            x = x[torch.arange(x.shape[0], device=x.device)[:, None], order]
        return self._clips(emb, x)

    def embed_frames(self, x: torch.Tensor) -> torch.Tensor:
        """FD_synth features ``(n, num_features)`` of images ``(n, 3, h, w)`` in [-1, 1]."""
        self._check(x)
        return self._frames(x)[0]

    def embed_clips(self, x: torch.Tensor) -> torch.Tensor:
        """FD_synth-video features ``(n, num_video_features)`` of clips ``(n, t, 3, h, w)`` in [-1, 1], t >= 2."""
        emb, _ = self._clip_inputs(x)
        return self._clip_embedding(emb, x, None)[0]

    def order_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, len(FRAME_ORDERS))`` of the ``order`` head for clips ``(n, t, 3, h, w)`` in [-1, 1]."""
        return self.video_heads["order"](self.embed_clips(x))

    def multiview_order_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The order of whole multi-view clips ``(b, v, t, 3, h, w)`` in [-1, 1] (views in
        ``cfg.views`` order, all in the same frame order) -> ``(b, len(FRAME_ORDERS))``: the
        multi-view order head's logits (``cfg.joint_order > 0``), or else the sum over the views of
        the per-view ``order`` head's log-probabilities (the views share the direction of time)."""
        if x.ndim != 6 or x.shape[1] != len(self.cfg.views):
            raise ValueError(f"multi-view clips must be (b, v={len(self.cfg.views)}, t, 3, h, w), got {tuple(x.shape)}")
        flat = rearrange(x, "b v t c h w -> (b v) t c h w")
        emb, _ = self._clip_inputs(flat)
        vid, motion = self._clip_embedding(emb, flat, None)
        if self.joint_head is not None:
            return self._joint(motion)
        logp = self.video_heads["order"](vid).float().log_softmax(dim=-1)
        return rearrange(logp, "(b v) k -> b v k", b=x.shape[0]).sum(dim=1)

    def forward(self, x: torch.Tensor, order: torch.Tensor | None = None, *,
                multiview_order: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Clips ``(n, t, 3, h, w)`` in [-1, 1], t >= 2 -> head outputs.

        order: optional ``(n, t)`` frame order fed to the temporal head (frame heads always see the
        frames as given). Frame outputs are ``(n, t, ...)``; ``layout`` is ``(n, t, K, h/s, w/s)``;
        ``motion`` ``(n, 2)``, ``order`` ``(n, len(FRAME_ORDERS))`` logits. multiview_order: with a
        multi-view order head, an ``(n, t)`` frame order for it: the ``n`` clips are ``n / v``
        multi-view clips of ``v = len(cfg.views)`` consecutive views (in ``cfg.views`` order), the
        views of each in one order (which may differ from ``order``: the temporal head runs once
        more on the same frame embeddings); the output then holds ``order_joint`` ``(n / v,
        len(FRAME_ORDERS))`` logits.
        """
        emb, feats = self._clip_inputs(x)
        n = x.shape[0]
        flat = rearrange(emb, "n t d -> (n t) d")
        out = {k: rearrange(head(flat), "(n t) k -> n t k", n=n) for k, head in self.heads.items()}
        out["layout"] = rearrange(self.seg_head(feats[self.seg_level]), "(n t) k h w -> n t k h w", n=n)
        vid, _ = self._clip_embedding(emb, x, order)
        if multiview_order is not None and self.joint_head is not None:
            out["order_joint"] = self._joint(self._clip_embedding(emb, x, multiview_order)[1])
        out["motion"] = self.video_heads["motion"](vid)
        out["order"] = self.video_heads["order"](vid)
        out["frame_features"], out["clip_features"] = emb, vid
        return out
