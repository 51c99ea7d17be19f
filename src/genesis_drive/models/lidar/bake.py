"""Baked LiDAR rendering (inference only): the density field of one decoded plane evaluated once on
a dense 3D lattice, rays rendered by trilinear lookups into it.

The exact renderer (:meth:`.ae.LidarAE.render`) runs the density MLP at every fine sample of every
ray (32 samples per ray for the tiny preset). A LiDAR sweep of 35 k beams therefore evaluates
the MLP ~1.1 M times, more than a lattice over the whole grid: baking (a standard NeRF inference
trick) evaluates it once per lattice node and makes each sample a single-channel trilinear lookup.

Lattice (:func:`bake_density`): nodes at the centres of the cells of a grid ``f`` times finer than
the BEV grid in x and y (``f = BakeConfig.xy_factor``; f = 1: the BEV cell centres, where the
plane's bilinear lookup is the plane itself) and of ``BakeConfig.z_samples`` equal height bins
over ``z_range``, i.e. the :mod:`.voxel` conventions (``align_corners=False``) of a
``BEVGrid(resolution = r / f, height_bins = z_samples)``. The volume is ``b z h w`` density (1/m),
read by trilinear lookup (``grid_sample`` with border padding: the outer half cell holds the
border nodes' values; rays are clipped to the grid box).

Rendering (:func:`render_baked`): the same coarse-to-fine scheme as :func:`.render.render_adaptive`
with the baked density in every pass: ``n_proposal`` uniform intervals, then importance passes of
``n_fine`` intervals resampled (:func:`.render.sample_pdf`) from the previous pass's weights, and
the compositing of :func:`.render.composite`. The proposal is the baked density itself (not the
occupancy channels): it is as cheap and it is the field being rendered. The ray-drop head is the
model's own, one lookup at the rendered hit point. fp32, no gradients.

Error against the exact field: the baked field is the trilinear interpolant of the true density on
the lattice, exact at the nodes. For a step (solid) density the interpolant rises from 0 at the
last node outside the solid, so a surface is found up to one lattice spacing early along each axis
(``r / f`` horizontally, ``(z1 - z0) / z_samples`` vertically) plus the quadrature error of the
passes, and the solid grows by up to one spacing (rays grazing an edge may hit it). Measured
(tests/models/lidar/test_bake.py): on the analytic ground + box scene median 0.20 % / p90 0.52 % of
the depth, 99.9 % of hitting beams within 1 %, max 9.6 % (a grazing beam); on a random-weight
model |baked - exact| depth median 0.025 m, p90 0.061 m.

Speed (benchmarks/bench_lidar_render.py, one thread, tiny preset, 34 688 beams): baked render
~0.10 s (~340 k rays/s, exact ~0.35 s), bake 0.08 s (z_samples 32) to 0.15 s (64). For the paper
preset the bake (256 x 256 x 64 nodes through a 64-wide 2-layer MLP, ~2.8 s) costs more than one
exact sweep (~1.4 s): baking pays off only when several sweeps are rendered from one plane.

Sparse bake (``BakeConfig.occupancy_threshold > 0``, :func:`occupied_nodes`): only the nodes near
predicted occupancy are evaluated (16 % of them on a held-out sweep at 0.01, half the bake time);
the ray marcher's default (:data:`.sweep.MARCH_BAKE`; measured in docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .ae import DensityField, LidarAE, LidarRender, height_embedding
from .render import (
    RenderOutput,
    composite,
    midpoints,
    ray_box_interval,
    sample_pdf,
    uniform_edges,
)
from .voxel import BEVGrid, normalised_coords, sample_plane_channels

__all__ = ["AIR_PRE", "BakeConfig", "BakedVolume", "bake_density", "bake_grid", "occupied_nodes", "render_baked"]


#: Pre-activation of air in :attr:`BakedVolume.pre`: ``log(1e-30)``, where ``softplus^-1`` of a
#: density below 1e-30 scale units is clamped (:func:`.march.pre_softplus` of 0).
AIR_PRE = math.log(1e-30)


@dataclass(frozen=True)
class BakeConfig:
    """Lattice and sampling of the baked renderer.

    z_samples: lattice heights over the grid's z_range (cell-centred, like the height bins).
    xy_factor: lattice nodes per BEV cell along x and along y (1 = the BEV cell centres).
    n_proposal: uniform intervals per ray of the first pass (baked density lookups).
    n_fine: intervals of each importance pass (each resampled from the previous pass's weights).
    dilate, floor: pdf dilation (intervals) and uniform floor of the resampling (:func:`.render.sample_pdf`).
    z_chunk: lattice heights evaluated per MLP batch while baking (bounds the baking memory).
    sparse_chunk: nodes per MLP batch of a sparse bake (small enough for the activations to stay in
    the CPU's cache: 4096 nodes x 32 channels is 0.5 MB).
    chunk: rays per rendering batch (kept small enough to stay in cache).
    occupancy_threshold: 0 evaluates the field at every node. Above 0 (a probability) the bake is
    sparse: a node is evaluated only when the occupancy voxel holding it (the plane's occupancy
    head, the proposal of the exact renderer, on the model's BEV cells and height bins) or one of
    its 26 neighbours has an occupancy probability above the threshold; every other node is air
    (density 0). This is the occupancy-grid acceleration of NeRF renderers (Instant-NGP,
    nerfacc): the field is only asked where the occupancy says a surface may be. The inside of a
    solid becomes air too, which a ray reaches only through the evaluated band around its
    surface, at least one voxel (0.5 m for the tiny preset) thick.
    """

    z_samples: int = 64
    xy_factor: int = 1
    n_proposal: int = 32
    n_fine: tuple[int, ...] = (16,)
    dilate: int = 1
    floor: float = 0.02
    z_chunk: int = 8
    sparse_chunk: int = 4096
    chunk: int = 2048
    occupancy_threshold: float = 0.0

    def __post_init__(self) -> None:
        for name in ("z_samples", "xy_factor", "n_proposal", "z_chunk", "sparse_chunk", "chunk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"bake.{name} must be >= 1, got {getattr(self, name)}")
        if not self.n_fine or min(self.n_fine) < 1:
            raise ConfigError(f"bake.n_fine must hold at least one positive interval count per pass, got {self.n_fine}")
        if self.dilate < 0:
            raise ConfigError(f"bake.dilate must be >= 0, got {self.dilate}")
        if not 0.0 < self.floor <= 1.0:
            raise ConfigError(f"bake.floor must be a fraction in (0, 1], got {self.floor}")
        if not 0.0 <= self.occupancy_threshold < 1.0:
            raise ConfigError(f"bake.occupancy_threshold must be a probability in [0, 1) (0: every node), "
                              f"got {self.occupancy_threshold}")


@dataclass(frozen=True)
class BakedVolume:
    """A baked density: ``sigma`` (b z h w, 1/m) on the nodes of ``grid`` (:func:`bake_grid`).

    ``pre`` (b z h w, or None): the pre-activation ``x`` of a softplus density field, ``sigma =
    pre_scale * softplus(x)`` at the evaluated nodes, clamped below at :data:`AIR_PRE` (the value
    of air, ``sigma = 0``, and of every node a sparse bake did not evaluate): what
    :func:`.march.pre_softplus` recovers from ``sigma`` up to rounding, kept by the bake so that the
    ray marcher need not invert the softplus (None for other density modules)."""

    grid: BEVGrid
    sigma: torch.Tensor
    pre: torch.Tensor | None = None
    pre_scale: float | None = None


def bake_grid(grid: BEVGrid, cfg: BakeConfig) -> BEVGrid:
    """The lattice of ``cfg`` over ``grid``: same extent, ``resolution / xy_factor`` cells and
    ``z_samples`` height bins (nodes at the cell centres)."""
    return BEVGrid(x_range=grid.x_range, y_range=grid.y_range, z_range=grid.z_range,
                   resolution=grid.resolution / cfg.xy_factor, height_bins=cfg.z_samples)


def _nodes(lat: BEVGrid, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Node coordinates (metres): x (h,), y (w,), z (z,) at the lattice's cell centres."""
    def centres(lo: float, step: float, n: int) -> torch.Tensor:
        return lo + (torch.arange(n, dtype=torch.float32, device=device) + 0.5) * step
    r = lat.resolution
    return (centres(lat.x_range[0], r, lat.rows), centres(lat.y_range[0], r, lat.cols),
            centres(lat.z_range[0], lat.bin_height, lat.height_bins))


def occupied_nodes(model: LidarAE, plane: torch.Tensor, lat: BEVGrid, threshold: float) -> torch.Tensor:
    """Nodes of lattice ``lat`` (:func:`bake_grid`) to evaluate in a sparse bake: ``(b z h w)``
    bool, True where the occupancy voxel holding the node or one of its 26 neighbours has an
    occupancy probability (``sigmoid`` of ``plane``'s occupancy logits) above ``threshold``."""
    grid = model.cfg.grid
    near = model.split(plane).occupancy.float() > math.log(threshold / (1.0 - threshold))  # b z h w voxels
    for dim in (1, 2, 3):  # dilate by one voxel along each axis in turn: the 3 x 3 x 3 neighbourhood
        n = near.shape[dim]
        grown = near.clone()
        if n > 1:
            grown.narrow(dim, 1, n - 1).logical_or_(near.narrow(dim, 0, n - 1))
            grown.narrow(dim, 0, n - 1).logical_or_(near.narrow(dim, 1, n - 1))
        near = grown
    xs, ys, zs = _nodes(lat, plane.device)

    def cell(v: torch.Tensor, lo: float, step: float, n: int) -> torch.Tensor:
        return ((v - lo) / step).floor().long().clamp(0, n - 1)

    near = near.index_select(1, cell(zs, grid.z_range[0], grid.bin_height, grid.height_bins))
    if (lat.rows, lat.cols) == (grid.rows, grid.cols):  # the lattice's (x, y) nodes are the voxels' centres
        return near
    ix = cell(xs, grid.x_range[0], grid.resolution, grid.rows)
    iy = cell(ys, grid.y_range[0], grid.resolution, grid.cols)
    return near.index_select(2, ix).index_select(3, iy)


@torch.no_grad()
def bake_density(model: LidarAE, plane: torch.Tensor, cfg: BakeConfig = BakeConfig()) -> BakedVolume:
    """Density (1/m) of the feature plane ``plane`` (b p h w, :meth:`LidarAE.decode`) on the
    lattice of ``cfg`` -> :class:`BakedVolume` (sigma ``b z h' w'``), fp32.

    With the model's :class:`~.ae.DensityField` the first layer is split as the field defines it
    (plane lookup per (x, y) node, height term per z node) and the remaining layers run as batched
    matrix products over ``z_chunk`` heights at a time (or, in a sparse bake, over the chosen
    nodes, ``sparse_chunk`` at a time); any other density module is called on the
    lattice points (the same values). ``cfg.occupancy_threshold > 0``: a sparse bake
    (:class:`BakeConfig`, :func:`occupied_nodes`), air (0) at the nodes not evaluated. With a
    DensityField the volume keeps the field's pre-activation too (:attr:`BakedVolume.pre`)."""
    with torch.autocast(plane.device.type, enabled=False):
        plane = plane.float()
        dens = model.split(plane).density
        b, dev = plane.shape[0], plane.device
        lat = bake_grid(model.cfg.grid, cfg)
        xs, ys, zs = _nodes(lat, dev)
        h, w, nz = len(xs), len(ys), len(zs)
        gx, gy = torch.meshgrid(xs, ys, indexing="ij")
        field = model.density
        sparse = cfg.occupancy_threshold > 0
        out = (torch.zeros if sparse else torch.empty)(b, nz, h * w, device=dev)
        pre = None
        if sparse:
            chosen = occupied_nodes(model, plane, lat, cfg.occupancy_threshold)
        if isinstance(field, DensityField):
            fc = field.cfg
            if dens.shape[-2:] == (h, w) and (lat.x_range, lat.y_range) == (fc.grid.x_range, fc.grid.y_range):
                h_xy = dens.reshape(b, -1, h * w)  # the nodes are the plane's cell centres: its bilinear lookup is itself
            else:
                xy = torch.stack((gx.flatten(), gy.flatten(), torch.zeros_like(gx.flatten())), -1)
                h_xy = sample_plane_channels(fc.grid, dens, xy.expand(b, -1, -1))  # b hidden (h w)
            h_z = height_embedding(zs, fc.grid.z_range, fc.height_freqs) @ field.height.weight.T  # z hidden
            if sparse:
                # the chosen nodes (batch, height, (x, y) column); their first layer gathered from the
                # per-(x, y) rows and the per-height rows, the MLP run over cache-sized chunks of them
                ib, iz, ixy = chosen.view(b, nz, h * w).nonzero().unbind(1)
                row = ixy.add_(ib, alpha=h * w)  # (b h w) row of each node
                node = row + iz * (h * w) + ib * ((nz - 1) * h * w)  # flat (b z (h w)) index
                h_xy = h_xy.transpose(1, 2).reshape(b * h * w, -1).contiguous()  # (b h w) hidden: rows contiguous
                layers = [(layer.weight.T.contiguous(), layer.bias) for layer in field.layers]
                raw = torch.empty(len(node), device=dev)
                for s in range(0, len(node), cfg.sparse_chunk):
                    x = h_xy.index_select(0, row[s : s + cfg.sparse_chunk]).add_(h_z.index_select(0, iz[s : s + cfg.sparse_chunk]))
                    x = F.silu(x, inplace=True)  # n hidden
                    for weight, bias in layers:
                        x = F.silu(torch.addmm(bias, x, weight), inplace=True)
                    torch.mv(x, field.out.weight[0], out=raw[s : s + cfg.sparse_chunk])
                raw.add_(field.out.bias)
                out.view(-1)[node] = fc.density_scale * F.softplus(raw)
                pre = torch.full_like(out, AIR_PRE)
                pre.view(-1)[node] = raw.clamp_(min=AIR_PRE)
            else:
                pre = torch.empty_like(out)
                for s in range(0, nz, cfg.z_chunk):
                    hz = h_z[s : s + cfg.z_chunk]
                    k = hz.shape[0]
                    x = F.silu((h_xy[:, None] + hz[None, :, :, None]).reshape(b * k, -1, h * w), inplace=True)
                    for layer in field.layers:
                        x = F.silu(torch.baddbmm(layer.bias[:, None], layer.weight.expand(b * k, -1, -1), x), inplace=True)
                    raw = torch.baddbmm(field.out.bias[:, None], field.out.weight.expand(b * k, -1, -1), x).reshape(b, k, h * w)
                    out[:, s : s + k] = fc.density_scale * F.softplus(raw)
                    pre[:, s : s + k] = raw.clamp_(min=AIR_PRE)
            pre = pre.reshape(b, nz, h, w)
        elif sparse:
            idx = chosen.reshape(b, nz, h * w).nonzero()
            for i in range(b):
                _, iz, ixy = idx[idx[:, 0] == i].unbind(1)
                pts = torch.stack((gx.flatten()[ixy], gy.flatten()[ixy], zs[iz]), -1)
                out[i].view(-1)[iz * (h * w) + ixy] = field(dens[i : i + 1], pts[None])[0]
        else:
            for s in range(0, nz, cfg.z_chunk):
                z = zs[s : s + cfg.z_chunk]
                pts = torch.stack((gx[None].expand(len(z), -1, -1), gy[None].expand(len(z), -1, -1),
                                   z[:, None, None].expand(-1, h, w)), -1).reshape(1, -1, 3).expand(b, -1, -1)
                out[:, s : s + len(z)] = field(dens, pts).reshape(b, len(z), h * w)
        return BakedVolume(lat, out.reshape(b, nz, h, w), pre, None if pre is None else float(fc.density_scale))


def _lookup(vol: torch.Tensor, on: torch.Tensor, dn: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of ``vol`` (b 1 z h w) at ``on + t dn`` (grid_sample coordinates; on, dn
    (b r 3), t (b r s)) -> (b r s)."""
    b, r, s = t.shape
    uvw = torch.addcmul(on[:, :, None], t[..., None], dn[:, :, None])
    out = F.grid_sample(vol, uvw.reshape(b, 1, r, s, 3), mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(b, r, s)


def _march(vol: torch.Tensor, on: torch.Tensor, dn: torch.Tensor, edges: torch.Tensor) -> RenderOutput:
    w, depth, opacity = composite(_lookup(vol, on, dn, midpoints(edges)), edges)
    return RenderOutput(depth, opacity, w, edges)


@torch.no_grad()
def render_baked(model: LidarAE, plane: torch.Tensor, volume: BakedVolume, origins: torch.Tensor, dirs: torch.Tensor,
                 cfg: BakeConfig = BakeConfig()) -> LidarRender:
    """Render rays from a baked volume (:func:`bake_density` of ``plane``): ``origins`` (b r 3)
    metres and unit ``dirs`` (b r 3) in the grid (LIDAR_TOP) frame -> the fields of
    :meth:`LidarAE.render` (depth metres, drop logit, opacity, t_far, valid, last pass), fp32,
    ``cfg.chunk`` rays at a time. The drop head reads ``plane``'s drop channels at the hit point."""
    b = plane.shape[0]
    if (origins.ndim != 3 or origins.shape[-1] != 3 or dirs.shape != origins.shape or origins.shape[0] != b
            or origins.shape[1] < 1):
        raise ValueError(f"rays are origins and dirs of shape (b, r >= 1, 3) with b = {b}, "
                         f"got {tuple(origins.shape)} and {tuple(dirs.shape)}")
    if volume.sigma.shape[0] != b or volume.sigma.shape[1:] != volume.grid.shape:
        raise ValueError(f"the baked volume is (b = {b}, {volume.grid.shape}) density, got {tuple(volume.sigma.shape)}")
    mc = model.cfg
    with torch.autocast(plane.device.type, enabled=False):
        plane, origins, dirs = plane.float(), origins.float(), dirs.float()
        drop_plane = model.split(plane).drop
        vol = volume.sigma.float()[:, None]
        outs = []
        for s in range(0, origins.shape[1], cfg.chunk):
            o, d = origins[:, s : s + cfg.chunk], dirs[:, s : s + cfg.chunk]
            t0, t1, valid = ray_box_interval(o, d, mc.grid.lower, mc.grid.upper, mc.near, mc.far)
            on = normalised_coords(mc.grid, o)
            dn = normalised_coords(mc.grid, o + d) - on
            prev = _march(vol, on, dn, uniform_edges(t0, t1, cfg.n_proposal))
            for n in cfg.n_fine:
                prev = _march(vol, on, dn, sample_pdf(prev.edges, prev.weights, n, dilate=cfg.dilate, floor=cfg.floor))
            hit = o + prev.depth[..., None] * d
            drop = model.drop(drop_plane, hit, prev.depth, prev.opacity, d)
            outs.append(LidarRender(prev.depth, drop, prev.opacity, t1, valid, prev))
    if len(outs) == 1:
        return outs[0]
    fine = RenderOutput(*(torch.cat([o.fine[i] for o in outs], dim=1) for i in range(4)))
    return LidarRender(*(torch.cat([o[i] for o in outs], dim=1) for i in range(5)), fine)
