"""The BEV layout network: multi-view images + intrinsics + cam_to_ego -> BEV logits, by *lifting*
(training recipe: ``train/tasks/bev_layout.py``; metric: ``eval/layout_bev.py``).

1. a shared CNN (:class:`~genesis_drive.models.blocks.ImageEncoder`) gives each view feature maps
   at strides ``2, 4, ..., 2**len(widths)``; the map at ``feature_stride`` plus the deeper maps
   (1x1-projected, bilinearly upsampled and added: a top-down pyramid) is the lifted feature map;
2. every BEV cell centre is placed at each of ``heights`` metres (ego frame: x forward, y left,
   z up, origin on the ground) and projected into every view with the calibration
   (:func:`project_to_views`);
3. features are bilinearly sampled there (``grid_sample``, ``align_corners=False``, pixel ``(i, j)``
   covering ``[i, i+1) x [j, j+1)``) and averaged over the views that see the point (camera depth
   > ``near`` and inside the image) (:func:`lift_features`);
4. the heights are stacked as channels, mixed by a 1x1 convolution, and a small BEV U-Net
   (``bev_levels`` stride-2 levels, dilated residual blocks of ``bev_dilations`` at the coarsest
   one for context along the camera rays) predicts :data:`BEV_CLASSES` logits.

The BEV grid (:attr:`BevLayoutNetConfig.grid`) is the square ``[-bev_range, bev_range]`` metres
in x (forward) and y (left) around the ego, ``bev_resolution`` metres per cell, oriented as
:mod:`genesis_drive.layout.bev` (row 0 far front, column 0 far left); the metric scores on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...data.schema import CAMERA_CHANNELS
from ...errors import ConfigError
from ...layout.bev import BevGrid
from ..blocks import ConvBlock, ImageEncoder, encoder_strides, group_count

__all__ = [
    "BEV_CLASSES",
    "VEHICLE_CHANNEL",
    "BevLayoutNet",
    "BevLayoutNetConfig",
    "DilatedBlock",
    "bev_points",
    "lift_features",
    "project_to_views",
]

BEV_CLASSES: tuple[str, ...] = ("drivable_area", "ped_crossing", "divider", "vehicle", "pedestrian")
VEHICLE_CHANNEL = BEV_CLASSES.index("vehicle")


@dataclass(frozen=True)
class BevLayoutNetConfig:
    """The BEV segmentation network.

    image_size: (width, height) pixels of the input views; views: camera channels (V).
    widths: image encoder channels per stride-2 stage; feature_stride: stride (pixels) of the
    lifted map, one of the encoder strides ``2, 4, ..., 2**len(widths)``; the deeper stages are
    added top-down, so every parameter takes part in the loss (which resuming and DDP need).
    feature_dim: channels per lifted height. heights: metres above the ego ground plane.
    bev_range: half-size of the square BEV grid in metres (x forward, y left); bev_resolution:
    metres per cell. bev_width: channels of the 2D BEV network; bev_levels: its stride-2 levels
    (>= 1; each grid side must divide by ``2**bev_levels``); bev_dilations: dilation of each
    residual block added at the coarsest level (empty: none). near: metres, minimum camera depth
    of a sampled point.
    """

    image_size: tuple[int, int] = (128, 72)
    views: tuple[str, ...] = CAMERA_CHANNELS
    widths: tuple[int, ...] = (32, 64, 128)
    feature_stride: int = 8
    feature_dim: int = 64
    heights: tuple[float, ...] = (0.0, 0.8, 1.6)
    bev_range: float = 32.0
    bev_resolution: float = 0.5
    bev_width: int = 64
    bev_levels: int = 1
    bev_dilations: tuple[int, ...] = ()
    near: float = 0.1

    def __post_init__(self) -> None:
        strides = encoder_strides(self.widths)
        if self.feature_stride not in strides:
            raise ConfigError(f"model.feature_stride must be one of the encoder strides {strides} of model.widths {self.widths}, "
                              f"got {self.feature_stride}")  # fmt: skip
        if not self.heights or not self.views or min(self.feature_dim, self.bev_width) < 1:
            raise ConfigError("model.heights and model.views must be non-empty, feature_dim and bev_width >= 1")
        if not self.near > 0:
            raise ConfigError(f"model.near must be > 0 metres, got {self.near}")
        if self.bev_levels < 1 or any(d < 1 for d in self.bev_dilations):
            raise ConfigError(f"model.bev_levels must be >= 1 and model.bev_dilations >= 1, got {self.bev_levels}, {self.bev_dilations}")
        cells = self.grid.shape  # validates range and resolution
        if any(n % 2**self.bev_levels for n in cells):
            raise ConfigError(f"the BEV grid {cells[0]}x{cells[1]} cells (model.bev_range, model.bev_resolution) must divide by "
                              f"2**model.bev_levels = {2**self.bev_levels}")  # fmt: skip

    @property
    def grid(self) -> BevGrid:
        r = self.bev_range
        return BevGrid((-r, r), (-r, r), self.bev_resolution)

    @property
    def map_radius(self) -> float:
        """Metres of map a sample must carry around the ego to cover the grid (with a margin)."""
        return self.bev_range * 1.5 + 10.0


def bev_points(grid: BevGrid, heights: Sequence[float]) -> np.ndarray:
    """Ego-frame points (Z, H, W, 3) metres: every cell centre of ``grid`` at every height."""
    xy = grid.cell_centers()  # H W 2
    z = np.asarray(heights, dtype=np.float64)
    pts = np.broadcast_to(xy[None], (len(z),) + xy.shape)
    zz = np.broadcast_to(z[:, None, None, None], (len(z),) + xy.shape[:2] + (1,))
    return np.concatenate([pts, zz], axis=-1)


def project_to_views(
    points: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, image_size: tuple[int, int], near: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ego points ``(p, 3)`` metres into every view.

    intrinsics ``(b, v, 3, 3)`` pixels for images of ``image_size`` = (width, height);
    cam_to_ego ``(b, v, 4, 4)`` (camera: x right, y down, z forward). Returns continuous pixel
    coordinates ``uv (b, v, p, 2)`` and ``valid (b, v, p)``: camera depth > ``near`` metres and
    ``0 <= u < width``, ``0 <= v < height``.
    """
    e2c = torch.linalg.inv(cam_to_ego.float())
    pc = torch.einsum("bvij,pj->bvpi", e2c[..., :3, :3], points.float()) + e2c[..., None, :3, 3]
    z = pc[..., 2]
    safe = torch.where(z > near, z, torch.ones_like(z))
    pix = torch.einsum("bvij,bvpj->bvpi", intrinsics.float(), pc / safe[..., None])
    uv = pix[..., :2]
    w, h = image_size
    valid = (z > near) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    return uv, valid


def lift_features(feats: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly sample view features at projected points and average over the views that see them.

    feats ``(b, v, c, h', w')`` covering an image of ``image_size`` (width, height) pixels at any
    stride; uv ``(b, v, p, 2)`` pixels; valid ``(b, v, p)``. Returns ``(b, c, p)`` (zeros where no
    view sees the point).
    """
    b = feats.shape[0]
    w, h = image_size
    scale = torch.tensor([2.0 / w, 2.0 / h], device=uv.device, dtype=uv.dtype)
    grid = rearrange(uv * scale - 1.0, "b v p two -> (b v) 1 p two")
    sampled = F.grid_sample(rearrange(feats, "b v c h w -> (b v) c h w"), grid.to(feats.dtype), mode="bilinear",
                            padding_mode="zeros", align_corners=False)  # fmt: skip
    sampled = rearrange(sampled, "(b v) c 1 p -> b v c p", b=b)
    m = valid[:, :, None].to(sampled.dtype)
    return (sampled * m).sum(1) / m.sum(1).clamp_min(1.0)


class DilatedBlock(nn.Module):
    """Residual block of two dilated conv3x3 (same size out): conv - GroupNorm - SiLU - conv - GroupNorm, + input, SiLU."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False)
        self.norm1 = nn.GroupNorm(group_count(channels), channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, dilation, dilation, bias=False)
        self.norm2 = nn.GroupNorm(group_count(channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(h)) + x)


class BevLayoutNet(nn.Module):
    """Views ``(b, v, 3, h, w)`` in [-1, 1] + intrinsics ``(b, v, 3, 3)`` + cam_to_ego ``(b, v, 4, 4)``
    -> BEV logits ``(b, K, H, W)`` (:data:`BEV_CLASSES`, grid orientation of
    :mod:`genesis_drive.layout.bev`: row 0 far front, column 0 far left)."""

    def __init__(self, cfg: BevLayoutNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.widths)
        self.level = self.encoder.strides.index(cfg.feature_stride)
        self.reduce = nn.Conv2d(cfg.widths[self.level], cfg.feature_dim, 1)
        self.top_down = nn.ModuleList(nn.Conv2d(w, cfg.feature_dim, 1) for w in cfg.widths[self.level + 1 :])
        pts = torch.from_numpy(bev_points(cfg.grid, cfg.heights).reshape(-1, 3)).float()
        self.register_buffer("points", pts, persistent=False)
        c, bw = cfg.feature_dim * len(cfg.heights), cfg.bev_width
        self.bev_in = nn.Sequential(nn.Conv2d(c, bw, 1, bias=False), nn.GroupNorm(group_count(bw), bw), nn.SiLU(), ConvBlock(bw, bw))
        self.bev_down = nn.ModuleList(nn.Sequential(ConvBlock(bw, bw, 2), ConvBlock(bw, bw)) for _ in range(cfg.bev_levels))
        self.bev_context = nn.Sequential(*(DilatedBlock(bw, d) for d in cfg.bev_dilations))
        self.bev_up = nn.ModuleList(ConvBlock(bw, bw) for _ in range(cfg.bev_levels - 1))
        self.bev_out = nn.Sequential(ConvBlock(bw, bw), nn.Conv2d(bw, len(BEV_CLASSES), 1))

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Views ``(n, 3, h, w)`` -> lifted feature maps ``(n, feature_dim, h / s, w / s)``, s = feature_stride."""
        maps = self.encoder(images)
        feats = self.reduce(maps[self.level])
        for proj, deeper in zip(self.top_down, maps[self.level + 1 :]):
            feats = feats + F.interpolate(proj(deeper), size=feats.shape[-2:], mode="bilinear", align_corners=False)
        return feats

    def lift(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> torch.Tensor:
        """Lifted features ``(b, Z * feature_dim, H, W)``."""
        cfg = self.cfg
        b, v = images.shape[:2]
        w, h = cfg.image_size
        if images.shape[2:] != (3, h, w) or intrinsics.shape != (b, v, 3, 3) or cam_to_ego.shape != (b, v, 4, 4):
            raise ValueError(f"BevLayoutNet expects images (b, v, 3, {h}, {w}), intrinsics (b, v, 3, 3), cam_to_ego (b, v, 4, 4); "
                             f"got {tuple(images.shape)}, {tuple(intrinsics.shape)}, {tuple(cam_to_ego.shape)}")  # fmt: skip
        feats = self.image_features(rearrange(images, "b v c h w -> (b v) c h w"))
        uv, valid = project_to_views(self.points, intrinsics, cam_to_ego, cfg.image_size, cfg.near)
        lifted = lift_features(rearrange(feats, "(b v) c h w -> b v c h w", b=b), uv, valid, cfg.image_size)
        gh, gw = cfg.grid.shape
        return rearrange(lifted, "b c (z h w) -> b (z c) h w", z=len(cfg.heights), h=gh, w=gw)

    def decode(self, lifted: torch.Tensor) -> torch.Tensor:
        """Lifted features ``(b, Z * feature_dim, H, W)`` -> BEV logits ``(b, K, H, W)`` (the BEV U-Net)."""
        skips = [self.bev_in(lifted)]
        for down in self.bev_down:
            skips.append(down(skips[-1]))
        x = self.bev_context(skips.pop())
        for i in range(len(skips) - 1, -1, -1):  # coarse to fine
            x = skips[i] + F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            if i > 0:
                x = self.bev_up[i - 1](x)
        return self.bev_out(x)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> torch.Tensor:
        return self.decode(self.lift(images, intrinsics, cam_to_ego))
