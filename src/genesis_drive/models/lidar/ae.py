"""The LiDAR BEV autoencoder: occupancy grid <-> KL BEV latent -> BEV feature plane -> rendered sweep.

Data layout (the codec's "data"): a BEV occupancy grid ``b z h w`` (height bins as channels,
:mod:`.voxel`, LIDAR_TOP frame), float 0/1. ``encode`` maps it to normalised latents
``b c h/f w/f`` (``f = 2 ** (len(widths) - 1)``); ``decode`` maps latents to the **BEV feature
plane** ``b p h w`` with ``p = hidden + z + drop_channels`` channels, read by :meth:`LidarAE.split`:

* ``density`` (hidden channels): the first layer of the density MLP, already applied on the plane
  (a 1x1 convolution commutes with bilinear interpolation, so sampling the projected plane equals
  projecting the sampled features). At a 3D point ``(x, y, z)``: ``h = plane(x, y) + W_z e(z)``
  with ``e(z)`` a Fourier embedding of the height, then ``density_layers`` hidden layers (SiLU)
  and ``sigma = density_scale * softplus(.)`` (1/m).
* ``occupancy`` (z channels): logits of the voxel occupancy (trained by BCE against the input
  grid); its probabilities, read by trilinear lookup, are the cheap proposal density of the
  adaptive sampler (:func:`.render.render_adaptive`).
* ``drop`` (drop_channels): features of the ray-drop head, read at the rendered hit point's
  ``(x, y)`` together with the ray's depth, opacity and direction height -> drop logit.

:meth:`LidarAE.render` renders rays (origins, unit directions in the grid frame, metres) from a
plane: expected depth (metres along the ray) and drop probability per ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..blocks import ConvBlock, group_count
from ..codec import LOGVAR_RANGE, LatentCodec, check_codec_config, draw_posterior, weights_version
from .render import RenderOutput, ray_box_interval, render_adaptive
from .voxel import BEVGrid, sample_plane, sample_plane_channels, sample_volume

__all__ = [
    "AEOutput",
    "BEVPlane",
    "DensityField",
    "LidarAE",
    "LidarAEConfig",
    "LidarRender",
    "PRESETS",
    "height_embedding",
    "paper",
    "tiny",
]



@dataclass(frozen=True)
class LidarAEConfig:
    """Sizes of a :class:`LidarAE` and its renderer.

    grid: the BEV voxel grid (extent, resolution, height bins).
    widths: encoder channels per level; each level after the first halves the BEV resolution.
    decoder_widths: decoder channels per level (level 0 = full resolution); None = widths.
    latent_channels: channels of the BEV latent.
    hidden: width of the density MLP (its first layer lives on the plane).
    density_layers: hidden layers of the density MLP after the first.
    height_freqs: Fourier frequencies of the height embedding (``2 * height_freqs + 1`` numbers).
    density_scale: density (1/m) per unit softplus output.
    drop_channels: plane channels of the ray-drop head; drop_hidden: its MLP width.
    near, far: metres along each ray where rendering starts / stops (also clipped to the grid box).
    n_proposal: proposal (occupancy lookup) intervals per ray.
    n_fine: density-MLP intervals per ray of each importance pass (each pass resamples from the
    previous one's weights; only the last carries gradients and gives the output).
    proposal_density: proposal density (1/m) per unit occupancy probability.
    dilate, floor: proposal pdf dilation (intervals) and uniform floor (:func:`.render.sample_pdf`).
    init_logvar: initial bias of the encoder's log-variance outputs.
    drop_threshold: a decoded beam is dropped when its drop probability exceeds this (0.5 until
    the calibration step chooses it on training sweeps,
    :func:`genesis_drive.train.calibration.calibrate_lidar_ae`).
    scaling_factor, shift_factor: latent normalisation ``(z - shift) * scale``.
    """

    grid: BEVGrid = BEVGrid()
    widths: tuple[int, ...] = (32, 48, 64, 64)
    decoder_widths: tuple[int, ...] | None = None
    latent_channels: int = 8
    hidden: int = 32
    density_layers: int = 1
    height_freqs: int = 4
    density_scale: float = 10.0
    drop_channels: int = 8
    drop_hidden: int = 16
    near: float = 1.0
    far: float = 70.0
    n_proposal: int = 64
    n_fine: tuple[int, ...] = (32, 32)
    proposal_density: float = 0.5
    dilate: int = 1
    floor: float = 0.02
    init_logvar: float = -6.0
    drop_threshold: float = 0.5
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    def __post_init__(self) -> None:
        dec = self.dec_widths
        if not self.widths or min(self.widths) < 1 or min(dec) < 1:
            raise ConfigError(f"model.widths must be positive channel counts, got {self.widths}")
        if len(dec) != len(self.widths):
            raise ConfigError(f"model.decoder_widths {self.decoder_widths} must have one entry per level "
                              f"(len(model.widths) = {len(self.widths)})")
        f = self.down_factor
        if self.grid.rows % f or self.grid.cols % f:
            raise ConfigError(f"model.grid of {self.grid.rows}x{self.grid.cols} cells must be divisible by the "
                              f"encoder's down factor {f} (len(model.widths) = {len(self.widths)})")
        if not self.n_fine or min(self.n_fine) < 1:
            raise ConfigError(f"model.n_fine must hold at least one positive interval count per pass, got {self.n_fine}")
        for name in ("latent_channels", "hidden", "drop_channels", "drop_hidden", "n_proposal"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("density_layers", "height_freqs", "dilate"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.near < self.far:
            raise ConfigError(f"model.near and model.far must satisfy 0 <= near < far metres, got {self.near}, {self.far}")
        if not (self.density_scale > 0 and self.proposal_density > 0):
            raise ConfigError(f"model.density_scale and model.proposal_density must be positive, got "
                              f"{self.density_scale}, {self.proposal_density}")
        if not 0.0 < self.drop_threshold < 1.0:
            raise ConfigError(f"model.drop_threshold must be a probability in (0, 1), got {self.drop_threshold}")
        if not 0.0 < self.floor <= 1.0:
            raise ConfigError(f"model.floor must be a fraction in (0, 1], got {self.floor}")
        check_codec_config(self.init_logvar, self.scaling_factor, self.shift_factor)

    @property
    def dec_widths(self) -> tuple[int, ...]:
        return self.widths if self.decoder_widths is None else self.decoder_widths

    @property
    def down_factor(self) -> int:
        """BEV cells per latent cell along each axis."""
        return 2 ** (len(self.widths) - 1)

    @property
    def plane_channels(self) -> int:
        """Channels of the decoded feature plane: density hidden + occupancy logits + drop features."""
        return self.hidden + self.grid.height_bins + self.drop_channels


def tiny() -> LidarAEConfig:
    """CPU size: +-32 m at 0.5 m (128 x 128 cells), z [-5, 3] m in 16 bins of 0.5 m; widths
    32-64-96 (4x down) to an 8 x 32 x 32 latent (one latent cell = 2 x 2 m); density MLP 32 wide;
    32 proposal intervals and two importance passes of 16 per ray. (v1 was 8x down to 8 x 16 x 16,
    4 x 4 m per latent cell: held-out Chamfer 2.30 m^2, barely below the other-moment control.)"""
    return LidarAEConfig(grid=BEVGrid(x_range=(-32.0, 32.0), y_range=(-32.0, 32.0), z_range=(-5.0, 3.0),
                                      resolution=0.5, height_bins=16),
                         widths=(32, 64, 96), latent_channels=8, hidden=32, density_layers=1,
                         n_proposal=32, n_fine=(16, 16), far=60.0)


def paper() -> LidarAEConfig:
    """GPU size (~5.6 M weights): +-51.2 m at 0.4 m (256 x 256 cells), z [-5, 3] m in 32 bins of
    0.25 m (HERMES' extent and height bins); widths 64-128-256-256 (8x down) to a 16 x 32 x 32
    latent; density MLP 64 wide with 2 hidden layers; 64 proposal intervals and two importance
    passes of 32 per ray."""
    return LidarAEConfig(grid=BEVGrid(x_range=(-51.2, 51.2), y_range=(-51.2, 51.2), z_range=(-5.0, 3.0),
                                      resolution=0.4, height_bins=32),
                         widths=(64, 128, 256, 256), latent_channels=16, hidden=64, density_layers=2,
                         drop_channels=16, drop_hidden=32, n_proposal=64, n_fine=(32, 32), far=80.0)


#: Named model presets (plain functions).
PRESETS = {"tiny": tiny, "paper": paper}


class BEVPlane(NamedTuple):
    """The decoded plane split by role: ``density`` (b hidden h w), ``occupancy`` logits (b z h w),
    ``drop`` features (b drop_channels h w)."""

    density: torch.Tensor
    occupancy: torch.Tensor
    drop: torch.Tensor


class LidarRender(NamedTuple):
    """Rendered rays (b r): ``depth`` (metres along the ray; ``t_far`` when nothing is hit),
    ``drop_logit`` (ray-drop logit; probability = sigmoid), ``opacity``, ``t_far`` (metres, the far
    bound of each ray), ``valid`` (the ray crosses the grid), and the ``fine`` render (weights and
    edges, for the distortion loss)."""

    depth: torch.Tensor
    drop_logit: torch.Tensor
    opacity: torch.Tensor
    t_far: torch.Tensor
    valid: torch.Tensor
    fine: RenderOutput


class AEOutput(NamedTuple):
    """One training pass: the rendered rays, the ``occupancy`` logits (b z h w), the posterior
    ``mean`` and ``logvar`` (b c h' w') and the latent ``z`` fed to the decoder."""

    render: LidarRender
    occupancy: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


def height_embedding(z: torch.Tensor, z_range: tuple[float, float], freqs: int) -> torch.Tensor:
    """Fourier embedding (..., 2 freqs + 1) of heights ``z`` (...) metres: ``zn`` in [-1, 1] over
    ``z_range`` and ``sin, cos(2^k pi zn)`` for ``k < freqs``."""
    zn = 2.0 * (z - z_range[0]) / (z_range[1] - z_range[0]) - 1.0
    parts = [zn[..., None]]
    if freqs:
        ang = zn[..., None] * (math.pi * 2.0 ** torch.arange(freqs, dtype=z.dtype, device=z.device))
        parts += [torch.sin(ang), torch.cos(ang)]
    return torch.cat(parts, dim=-1)


class DensityField(nn.Module):
    """Density (1/m) at 3D points from the plane's density channels (b hidden h w) and the height."""

    def __init__(self, cfg: LidarAEConfig):
        super().__init__()
        self.cfg = cfg
        self.height = nn.Linear(2 * cfg.height_freqs + 1, cfg.hidden, bias=False)  # the plane carries the bias
        self.layers = nn.ModuleList(nn.Linear(cfg.hidden, cfg.hidden) for _ in range(cfg.density_layers))
        self.out = nn.Linear(cfg.hidden, 1)
        nn.init.constant_(self.out.bias, -3.0)  # ~0.5 / m at the start: rays see through the volume

    def forward(self, plane: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
        """plane (b hidden h w), points (b, ..., 3) metres -> density (b, ...) 1/m.

        Computed channels first (``b c n``, the layout ``grid_sample`` returns), as matrix products
        with the layers' weights: the same function as applying the ``nn.Linear`` layers per point."""
        b, lead = pts.shape[0], pts.shape[1:-1]
        flat = pts.reshape(b, -1, 3)
        emb = height_embedding(flat[..., 2], self.cfg.grid.z_range, self.cfg.height_freqs).transpose(1, 2)
        h = sample_plane_channels(self.cfg.grid, plane, flat)
        inplace = not torch.is_grad_enabled()  # intermediates are fresh tensors; in place saves passes
        h = F.silu(torch.baddbmm(h, self.height.weight.expand(b, -1, -1), emb), inplace=inplace)
        for layer in self.layers:
            h = F.silu(torch.baddbmm(layer.bias[:, None], layer.weight.expand(b, -1, -1), h), inplace=inplace)
        raw = torch.baddbmm(self.out.bias[:, None], self.out.weight.expand(b, -1, -1), h)
        return self.cfg.density_scale * F.softplus(raw.reshape(b, *lead))


class DropHead(nn.Module):
    """Ray-drop logit from the drop features at the hit point's (x, y), the depth / far, the opacity
    and the ray direction's z component."""

    def __init__(self, cfg: LidarAEConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.drop_channels + 3, cfg.drop_hidden), nn.SiLU(), nn.Linear(cfg.drop_hidden, 1))

    def forward(self, plane: torch.Tensor, hit: torch.Tensor, depth: torch.Tensor, opacity: torch.Tensor,
                dirs: torch.Tensor) -> torch.Tensor:
        feats = sample_plane(self.cfg.grid, plane, hit)
        x = torch.cat((feats, (depth / self.cfg.far)[..., None], opacity[..., None], dirs[..., 2:3]), dim=-1)
        return self.net(x).squeeze(-1)


class Encoder(nn.Module):
    """Occupancy (b z h w) -> posterior moments (b 2c h/f w/f)."""

    def __init__(self, cfg: LidarAEConfig):
        super().__init__()
        w = cfg.widths
        self.stem = nn.Sequential(nn.Conv2d(cfg.grid.height_bins, w[0], 3, 1, 1, bias=False),
                                  nn.GroupNorm(group_count(w[0]), w[0]), nn.SiLU(), ConvBlock(w[0], w[0]))
        self.down = nn.Sequential(*(ConvBlock(a, b, 2) for a, b in zip(w[:-1], w[1:], strict=True)))
        self.head = nn.Conv2d(w[-1], 2 * cfg.latent_channels, 3, 1, 1)
        with torch.no_grad():
            self.head.bias[cfg.latent_channels :].fill_(cfg.init_logvar)

    def forward(self, occ: torch.Tensor) -> torch.Tensor:
        return self.head(self.down(self.stem(occ)))


class Decoder(nn.Module):
    """Latent (b c h/f w/f) -> feature plane (b p h w)."""

    def __init__(self, cfg: LidarAEConfig):
        super().__init__()
        d = cfg.dec_widths
        self.stem = nn.Sequential(nn.Conv2d(cfg.latent_channels, d[-1], 3, 1, 1), ConvBlock(d[-1], d[-1]))
        self.up = nn.Sequential(*(nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), ConvBlock(a, b))
                                  for a, b in zip(d[:0:-1], d[-2::-1], strict=True)))
        self.head = nn.Conv2d(d[0], cfg.plane_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.stem(z)))


class LidarAE(LatentCodec):
    """BEV occupancy ``b z h w`` <-> latents ``b c h/f w/f``; latents -> feature plane -> rendered rays."""

    def __init__(self, cfg: LidarAEConfig):
        super().__init__()
        self.cfg = cfg
        self.latent_channels = cfg.latent_channels
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(cfg.shift_factor)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.density = DensityField(cfg)
        self.drop = DropHead(cfg)

    # -- shapes -----------------------------------------------------------------------------
    def latent_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(z, h, w)`` = the grid's shape -> ``(c, h / f, w / f)``; ValueError for any other shape."""
        if tuple(int(s) for s in input_shape) != self.cfg.grid.shape:
            raise ValueError(f"LidarAE input is one BEV occupancy grid of shape (z, h, w) = {self.cfg.grid.shape}, "
                             f"got {tuple(input_shape)}")
        z, h, w = self.cfg.grid.shape
        f = self.cfg.down_factor
        return (self.latent_channels, h // f, w // f)

    # -- encoder / decoder ------------------------------------------------------------------
    def moments(self, occ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, logvar)`` (b c h' w') of occupancy grids ``occ`` (b z h w)."""
        if occ.ndim != 4:
            raise ValueError(f"LidarAE input is (b, z, h, w) occupancy, got {tuple(occ.shape)}")
        self.latent_shape(tuple(occ.shape[1:]))
        mean, logvar = self.encoder(occ.float()).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode_raw(self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Occupancy (b z h w) -> un-normalised latents (b c h' w'): the posterior mean, or a draw."""
        mean, logvar = self.moments(x)
        return draw_posterior(mean, logvar, generator) if sample else mean

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Un-normalised latents (b c h' w') -> feature plane (b p h w) (see :meth:`split`)."""
        f = self.cfg.down_factor
        _, h, w = self.cfg.grid.shape
        if z.ndim != 4 or tuple(z.shape[1:]) != (self.latent_channels, h // f, w // f):
            raise ValueError(f"LidarAE latents are (b, {self.latent_channels}, {h // f}, {w // f}), got {tuple(z.shape)}")
        return self.decoder(z)

    def split(self, plane: torch.Tensor) -> BEVPlane:
        """Feature plane (b p h w) -> its density, occupancy-logit and drop channels."""
        if plane.ndim != 4 or plane.shape[1] != self.cfg.plane_channels:
            raise ValueError(f"LidarAE feature planes are (b, {self.cfg.plane_channels}, h, w), got {tuple(plane.shape)}")
        hid, z = self.cfg.hidden, self.cfg.grid.height_bins
        return BEVPlane(plane[:, :hid], plane[:, hid : hid + z], plane[:, hid + z :])

    # -- rendering --------------------------------------------------------------------------
    def render(self, plane: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, *, chunk: int | None = None,
               generator: torch.Generator | None = None, jitter: bool = False) -> LidarRender:
        """Render rays from a feature plane (b p h w): ``origins`` (b r 3) metres and unit ``dirs``
        (b r 3) in the grid (LIDAR_TOP) frame. ``chunk`` rays at a time (None = all)."""
        if (origins.ndim != 3 or origins.shape[-1] != 3 or dirs.shape != origins.shape or origins.shape[0] != plane.shape[0]
                or origins.shape[1] < 1):
            raise ValueError(f"rays are origins and dirs of shape (b, r >= 1, 3) with b = {plane.shape[0]}, "
                             f"got {tuple(origins.shape)} and {tuple(dirs.shape)}")
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be a positive number of rays or None, got {chunk}")
        parts = self.split(plane)
        occ = torch.sigmoid(parts.occupancy.detach())  # proposal: occupancy probabilities (no gradient)
        step = origins.shape[1] if chunk is None else chunk
        outs = [self._render(parts, occ, origins[:, s : s + step], dirs[:, s : s + step], generator, jitter)
                for s in range(0, origins.shape[1], step)]
        if len(outs) == 1:
            return outs[0]
        fine = RenderOutput(*(torch.cat([o.fine[i] for o in outs], dim=1) for i in range(4)))
        return LidarRender(*(torch.cat([o[i] for o in outs], dim=1) for i in range(5)), fine)

    def _render(self, parts: BEVPlane, occ: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                generator: torch.Generator | None, jitter: bool) -> LidarRender:
        cfg = self.cfg
        t0, t1, valid = ray_box_interval(origins, dirs, cfg.grid.lower, cfg.grid.upper, cfg.near, cfg.far)

        def proposal(p: torch.Tensor) -> torch.Tensor:
            return cfg.proposal_density * sample_volume(cfg.grid, occ, p)

        def density(p: torch.Tensor) -> torch.Tensor:
            return self.density(parts.density, p)

        fine, _ = render_adaptive(density, proposal, origins, dirs, t0, t1, cfg.n_proposal, cfg.n_fine,
                                  dilate=cfg.dilate, floor=cfg.floor, generator=generator, jitter=jitter)
        hit = origins + fine.depth[..., None] * dirs
        drop = self.drop(parts.drop, hit, fine.depth, fine.opacity, dirs)
        return LidarRender(fine.depth, drop, fine.opacity, t1, valid, fine)

    def render_latent(self, z: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, *,
                      chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latents (b c h' w') -> ``(depth (b r) metres, drop probability (b r))`` of
        the rays ``origins, dirs`` (b r 3, grid frame)."""
        out = self.render(self.decode(z), origins, dirs, chunk=chunk)
        return out.depth, torch.sigmoid(out.drop_logit)

    # -- training pass ------------------------------------------------------------------------
    def forward(self, occ: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor, *, sample: bool = True,
                generator: torch.Generator | None = None, jitter: bool = False) -> AEOutput:
        """Encode ``occ`` (b z h w), draw a latent (``sample``) or take the mean, decode, render rays."""
        mean, logvar = self.moments(occ)
        z = draw_posterior(mean, logvar, generator) if sample else mean
        plane = self.decode_raw(z)
        out = self.render(plane, origins, dirs, generator=generator, jitter=jitter)
        return AEOutput(out, self.split(plane).occupancy, mean, logvar, z)

    @property
    def version(self) -> str:
        """``LidarAE:`` + a SHA-256 prefix of the config and every weight's bytes."""
        return weights_version("LidarAE", self.cfg, self)
