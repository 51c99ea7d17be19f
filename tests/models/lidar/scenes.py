"""Analytic LiDAR scenes for the rendering tests: a ground plane at a known height and a box on it,
with a sharp density field, exact ray depths and surface points (for an occupancy grid)."""

from __future__ import annotations

import math

import torch

from genesis_drive.models.lidar.voxel import BEVGrid

GROUND_Z = -1.8
BOX_LO = (8.3, -2.1, -1.8)
BOX_HI = (11.2, 2.6, 0.7)

#: A small grid for the tests: +-16 m at 0.5 m, z [-3, 2] in 0.5 m bins.
GRID = BEVGrid(x_range=(-16.0, 16.0), y_range=(-16.0, 16.0), z_range=(-3.0, 2.0), resolution=0.5, height_bins=10)


def box_sdf(p: torch.Tensor, lo=BOX_LO, hi=BOX_HI) -> torch.Tensor:
    lo_t, hi_t = torch.tensor(lo, dtype=p.dtype), torch.tensor(hi, dtype=p.dtype)
    c, h = (lo_t + hi_t) / 2, (hi_t - lo_t) / 2
    q = (p - c).abs() - h
    return q.clamp(min=0).norm(dim=-1) + q.amax(dim=-1).clamp(max=0)


def density(p: torch.Tensor, ground: torch.Tensor | float = GROUND_Z, sharpness: float = 0.001,
            peak: float = 5000.0) -> torch.Tensor:
    """Sharp density (1/m): ``peak`` inside the ground (z < ground) or the box, a sigmoid of width
    ``sharpness`` metres across each surface."""
    g = peak * torch.sigmoid((ground - p[..., 2]) / sharpness)
    b = peak * torch.sigmoid(-box_sdf(p) / sharpness)
    return torch.maximum(g, b)


def hard_density(p: torch.Tensor, peak: float = 1e4) -> torch.Tensor:
    """Step density (1/m): ``peak`` inside the ground or the box, 0 outside (no interface width, so
    the rendered depth converges to the analytic one as the sampling refines)."""
    solid = (p[..., 2] < GROUND_Z) | (box_sdf(p) < 0)
    return peak * solid.to(p.dtype)


def analytic_depth(origins: torch.Tensor, dirs: torch.Tensor, ground: float = GROUND_Z) -> torch.Tensor:
    """Exact depth (metres along the unit ray) to the ground or the box; inf when neither is hit."""
    dz = dirs[..., 2]
    t_ground = torch.where(dz < 0, (ground - origins[..., 2]) / dz.clamp(max=-1e-12), torch.full_like(dz, math.inf))
    lo, hi = torch.tensor(BOX_LO), torch.tensor(BOX_HI)
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    a, b = (lo - origins) * inv, (hi - origins) * inv
    t0, t1 = torch.minimum(a, b).amax(-1), torch.maximum(a, b).amin(-1)
    t_box = torch.where((t1 >= t0) & (t0 > 0), t0, torch.full_like(t0, math.inf))
    return torch.minimum(t_ground, t_box)


def beam_rays(beams: int = 16, azimuths: int = 64, elev_deg=(2.0, -25.0), height: float = 0.0):
    """Rays of a spinning sensor at (0, 0, height): origins and unit directions (1, beams*azimuths, 3)."""
    el = torch.deg2rad(torch.linspace(elev_deg[0], elev_deg[1], beams))
    az = torch.linspace(0, 2 * math.pi, azimuths + 1)[:-1] + 0.0123
    d = torch.stack((torch.cos(az)[:, None] * torch.cos(el), torch.sin(az)[:, None] * torch.cos(el),
                     torch.sin(el).expand(azimuths, beams)), -1).reshape(1, -1, 3)
    o = torch.tensor((0.0, 0.0, height)).expand_as(d).contiguous()
    return o, d


def surface_points(step: float = 0.25) -> torch.Tensor:
    """Points on the ground (inside GRID, outside the box) and on the box's faces, (n, 3) metres."""
    xs = torch.arange(GRID.x_range[0] + step / 2, GRID.x_range[1], step)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    ground = torch.stack((gx.flatten(), gy.flatten(), torch.full((gx.numel(),), GROUND_Z + 1e-3)), -1)
    lo, hi = torch.tensor(BOX_LO), torch.tensor(BOX_HI)
    u = torch.rand(20000, 3, generator=torch.Generator().manual_seed(0))
    pts = lo + u * (hi - lo)
    axis = torch.arange(20000) % 3
    side = torch.arange(20000) // 3 % 2
    pts[torch.arange(20000), axis] = torch.where(side == 0, lo[axis], hi[axis])
    return torch.cat((ground, pts), 0)
