"""The FD_synth feature network: a residual CNN over single camera frames plus a temporal head over
a clip of one view (training recipe: ``train/tasks/synth_features.py``; metric:
``eval/synth_features.py``).

Its *frame embedding* (``num_features``) feeds FD_synth, its *clip embedding*
(``num_video_features``) feeds FD_synth-video. Heads: ``channel`` (which camera), ``presence`` /
``count`` per :data:`OBJECT_GROUPS` group, ``layout`` (:data:`SEG_CLASSES` map at ``seg_stride``),
``time`` / ``weather`` (:data:`TIMES_OF_DAY` / :data:`WEATHERS`) per frame; ``motion`` and
``shuffled`` per clip. The vocabularies live here because they fix the head sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from ...data.schema import CAMERA_CHANNELS
from ...errors import ConfigError
from ...world.lighting import LIGHTING_PRESETS
from ...world.lighting import WEATHERS as _WEATHERS
from ..blocks import ImageEncoder, encoder_strides

__all__ = ["OBJECT_GROUPS", "SEG_CLASSES", "TIMES_OF_DAY", "WEATHERS", "SynthFeatureNet", "SynthFeatureNetConfig"]

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


@dataclass(frozen=True)
class SynthFeatureNetConfig:
    """The FD_synth network.

    image_size: (width, height) pixels the network sees (clips are resized to it; extractors resize
    any input to it). widths: encoder channels per stride-2 stage. seg_stride: stride of the layout
    map head (one of the encoder strides, dividing the image size). num_features / num_video_features:
    frame / clip embedding sizes. temporal_width: channels of the temporal 1D convolutions.
    views: camera channels, in the order of the ``channel`` target.
    """

    image_size: tuple[int, int] = (128, 72)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    seg_stride: int = 8
    num_features: int = 256
    num_video_features: int = 256
    temporal_width: int = 256
    views: tuple[str, ...] = CAMERA_CHANNELS

    def __post_init__(self) -> None:
        w, h = self.image_size
        strides = encoder_strides(self.widths)
        if self.seg_stride not in strides:
            raise ConfigError(f"model.seg_stride must be one of the encoder strides {strides}, got {self.seg_stride}")
        if w % self.seg_stride or h % self.seg_stride:
            raise ConfigError(f"model.image_size {self.image_size} must be divisible by model.seg_stride={self.seg_stride}")
        if min(self.num_features, self.num_video_features, self.temporal_width) < 2 or not self.views:
            raise ConfigError("model.num_features, num_video_features, temporal_width must be >= 2 and views non-empty")


class SynthFeatureNet(nn.Module):
    """Frame encoder + linear target heads, and a temporal head over one view's frames.

    Inputs are float images in [-1, 1] at ``cfg.image_size``. :meth:`embed_frames` gives
    ``(n, num_features)``, :meth:`embed_clips` ``(n, num_video_features)``; :meth:`forward` gives
    every head's output for training.
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
        self.temporal = nn.Sequential(
            nn.Conv1d(cfg.num_features, tw, 3, padding=1), nn.SiLU(), nn.Conv1d(tw, tw, 3, padding=1), nn.SiLU()
        )
        self.video_embed = nn.Linear(2 * tw, cfg.num_video_features)
        self.video_heads = nn.ModuleDict({"motion": nn.Linear(cfg.num_video_features, 2), "shuffled": nn.Linear(cfg.num_video_features, 1)})

    def _check(self, x: torch.Tensor) -> None:
        w, h = self.cfg.image_size
        if x.shape[-3:] != (3, h, w):
            raise ValueError(f"SynthFeatureNet expects images (..., 3, {h}, {w}), got {tuple(x.shape)}")

    def _frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3, h, w) -> embedding (n, d), layout-level feature map (n, c, h/s, w/s)."""
        feats = self.encoder(x)
        top = feats[-1]
        pooled = torch.cat([top.mean(dim=(2, 3)), top.amax(dim=(2, 3))], dim=1)
        return self.embed(pooled), feats[self.seg_level]

    def _clips(self, emb: torch.Tensor) -> torch.Tensor:
        """Frame embeddings (n, t, d) -> clip embedding (n, dv)."""
        h = self.temporal(rearrange(emb, "n t d -> n d t"))
        return self.video_embed(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))

    def embed_frames(self, x: torch.Tensor) -> torch.Tensor:
        """FD_synth features ``(n, num_features)`` of images ``(n, 3, h, w)`` in [-1, 1]."""
        self._check(x)
        return self._frames(x)[0]

    def embed_clips(self, x: torch.Tensor) -> torch.Tensor:
        """FD_synth-video features ``(n, num_video_features)`` of clips ``(n, t, 3, h, w)`` in [-1, 1]."""
        self._check(x)
        n = x.shape[0]
        emb = self._frames(rearrange(x, "n t c h w -> (n t) c h w"))[0]
        return self._clips(rearrange(emb, "(n t) d -> n t d", n=n))

    def forward(self, x: torch.Tensor, order: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Clips ``(n, t, 3, h, w)`` in [-1, 1] -> head outputs.

        order: optional ``(n, t)`` frame order fed to the temporal head (frame heads always see the
        frames as given). Frame outputs are ``(n, t, ...)``; ``layout`` is ``(n, t, K, h/s, w/s)``.
        """
        self._check(x)
        n = x.shape[0]
        emb, fmap = self._frames(rearrange(x, "n t c h w -> (n t) c h w"))
        out = {k: rearrange(head(emb), "(n t) k -> n t k", n=n) for k, head in self.heads.items()}
        out["layout"] = rearrange(self.seg_head(fmap), "(n t) k h w -> n t k h w", n=n)
        seq = rearrange(emb, "(n t) d -> n t d", n=n)
        if order is not None:
            seq = torch.gather(seq, 1, order[..., None].expand_as(seq))
        vid = self._clips(seq)
        out["motion"] = self.video_heads["motion"](vid)
        out["shuffled"] = self.video_heads["shuffled"](vid)[:, 0]
        out["frame_features"], out["clip_features"] = rearrange(emb, "(n t) d -> n t d", n=n), vid
        return out
