"""LiDAR sweep points -> BEV occupancy grid with height bins as channels.

Frame: the grid is fixed to the LIDAR_TOP sensor frame of the sweep (nuScenes: x right, y forward, z up,
metres). A :class:`BEVGrid` covers ``x_range x y_range x z_range``; BEV cell ``(i, j)`` (row ``i``,
column ``j``) covers ``x in [x0 + i r, x0 + (i + 1) r)``, ``y in [y0 + j r, y0 + (j + 1) r)`` with
``r = resolution``; height bin ``k`` covers ``z in [z0 + k dz, z0 + (k + 1) dz)``,
``dz = (z1 - z0) / height_bins``. The occupancy tensor is ``b z h w`` (z = height bins as
channels, h = rows along x, w = columns along y), 1 where at least one point falls in the voxel.

:func:`normalised_coords` maps metric points to the ``[-1, 1]`` coordinates that
``torch.nn.functional.grid_sample`` (``align_corners=False``) expects for that layout, so bilinear
(BEV plane) and trilinear (occupancy volume) lookups agree with the voxel boundaries above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...errors import ConfigError

__all__ = [
    "BEVGrid",
    "normalised_coords",
    "sample_plane",
    "sample_plane_channels",
    "sample_volume",
    "voxel_indices",
    "voxelize",
]


@dataclass(frozen=True)
class BEVGrid:
    """Extent and resolution of the BEV voxel grid (metres, LIDAR_TOP frame).

    x_range, y_range: (min, max) metres, each a whole number of ``resolution`` cells.
    z_range: (min, max) metres, split into ``height_bins`` equal bins (the channels).
    resolution: BEV cell size along x and y (metres).
    """

    x_range: tuple[float, float] = (-32.0, 32.0)
    y_range: tuple[float, float] = (-32.0, 32.0)
    z_range: tuple[float, float] = (-5.0, 3.0)
    resolution: float = 0.5
    height_bins: int = 16

    def __post_init__(self) -> None:
        if not (self.resolution > 0 and math.isfinite(self.resolution)):
            raise ConfigError(f"model.grid.resolution must be a positive number of metres, got {self.resolution}")
        for name in ("x_range", "y_range"):
            lo, hi = getattr(self, name)
            cells = (hi - lo) / self.resolution
            if not hi > lo or abs(cells - round(cells)) > 1e-6:
                raise ConfigError(f"model.grid.{name} must be (min, max) with max - min a positive multiple of "
                                  f"resolution {self.resolution}, got {(lo, hi)}")
        if not self.z_range[1] > self.z_range[0]:
            raise ConfigError(f"model.grid.z_range must be (min, max) metres with max > min, got {self.z_range}")
        if self.height_bins < 1:
            raise ConfigError(f"model.grid.height_bins must be >= 1, got {self.height_bins}")

    @property
    def rows(self) -> int:
        """Cells along x (h)."""
        return round((self.x_range[1] - self.x_range[0]) / self.resolution)

    @property
    def cols(self) -> int:
        """Cells along y (w)."""
        return round((self.y_range[1] - self.y_range[0]) / self.resolution)

    @property
    def bin_height(self) -> float:
        """Height of one bin (metres)."""
        return (self.z_range[1] - self.z_range[0]) / self.height_bins

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, h, w)``: height bins, rows (x), columns (y)."""
        return (self.height_bins, self.rows, self.cols)

    @property
    def lower(self) -> tuple[float, float, float]:
        """Lower corner ``(x, y, z)`` of the grid volume (metres)."""
        return (self.x_range[0], self.y_range[0], self.z_range[0])

    @property
    def upper(self) -> tuple[float, float, float]:
        """Upper corner ``(x, y, z)`` of the grid volume (metres)."""
        return (self.x_range[1], self.y_range[1], self.z_range[1])


def voxel_indices(grid: BEVGrid, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel ``(k, i, j)`` (height bin, row, column) of each point ``xyz`` (..., 3) metres, and a
    mask of the points inside the grid volume (bounds: lower inclusive, upper exclusive)."""
    lo = torch.tensor(grid.lower, dtype=xyz.dtype, device=xyz.device)
    hi = torch.tensor(grid.upper, dtype=xyz.dtype, device=xyz.device)
    size = torch.tensor((grid.resolution, grid.resolution, grid.bin_height), dtype=xyz.dtype, device=xyz.device)
    inside = ((xyz >= lo) & (xyz < hi)).all(dim=-1) & torch.isfinite(xyz).all(dim=-1)
    cell = torch.floor((xyz - lo) / size).long()
    limit = torch.tensor((grid.rows - 1, grid.cols - 1, grid.height_bins - 1), device=xyz.device)
    cell = torch.minimum(cell.clamp(min=0), limit)  # float rounding at the upper bound
    return torch.stack((cell[..., 2], cell[..., 0], cell[..., 1]), dim=-1), inside


def voxelize(grid: BEVGrid, sweeps: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Occupancy ``b z h w`` float32 (0 or 1) of a batch of sweeps.

    sweeps: a sequence of ``(n_i, c)`` point tensors (c >= 3: x, y, z metres in the LIDAR_TOP frame,
    further columns such as intensity and ring ignored), or one ``(n, c)`` tensor (batch of one).
    Points outside the grid volume are dropped.
    """
    if isinstance(sweeps, torch.Tensor):
        sweeps = [sweeps]
    if len(sweeps) == 0:
        raise ValueError("voxelize needs at least one sweep")
    z, h, w = grid.shape
    device = sweeps[0].device
    flat = torch.zeros(len(sweeps), z * h * w, dtype=torch.float32, device=device)
    for b, pts in enumerate(sweeps):
        if pts.ndim != 2 or pts.shape[1] < 3:
            raise ValueError(f"sweep {b}: points must be (n, c >= 3) with x, y, z first, got {tuple(pts.shape)}")
        idx, inside = voxel_indices(grid, pts[:, :3].float())
        idx = idx[inside]
        lin = (idx[:, 0] * h + idx[:, 1]) * w + idx[:, 2]
        flat[b, lin] = 1.0
    return flat.view(len(sweeps), z, h, w)


def normalised_coords(grid: BEVGrid, xyz: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` coordinates ``(..., 3)`` = (column, row, height) in [-1, 1] of metric points
    ``xyz`` (..., 3): index ``[..., :2]`` for a BEV plane ``b c h w``, all three for a volume
    ``b c z h w`` (``align_corners=False``: -1 and 1 are the outer faces of the grid)."""
    lo = torch.tensor(grid.lower, dtype=xyz.dtype, device=xyz.device)
    hi = torch.tensor(grid.upper, dtype=xyz.dtype, device=xyz.device)
    n = 2.0 * (xyz - lo) / (hi - lo) - 1.0
    return torch.stack((n[..., 1], n[..., 0], n[..., 2]), dim=-1)


def sample_plane(grid: BEVGrid, plane: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a BEV plane ``b c h w`` (over the grid's x, y extent) at points
    ``xyz`` (b, ..., 3) metres -> ``(b, ..., c)``; zero outside the grid."""
    b, c = plane.shape[:2]
    lead = xyz.shape[1:-1]
    out = sample_plane_channels(grid, plane, xyz.reshape(b, -1, 3))
    return out.transpose(1, 2).reshape(b, *lead, c)


def sample_plane_channels(grid: BEVGrid, plane: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """As :func:`sample_plane` for points ``xyz`` (b, n, 3), channels first: ``(b, c, n)``
    contiguous (no transpose; the layout the density MLP works in)."""
    b, c = plane.shape[:2]
    uv = normalised_coords(grid, xyz[:, None])[..., :2].to(plane.dtype)
    out = torch.nn.functional.grid_sample(plane, uv, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, c, -1)


def sample_volume(grid: BEVGrid, volume: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of a volume ``b z h w`` (one value per voxel, height bins as channels) at
    points ``xyz`` (b, ..., 3) metres -> ``(b, ...)``; zero outside the grid."""
    b = volume.shape[0]
    lead = xyz.shape[1:-1]
    uvw = normalised_coords(grid, xyz.reshape(b, 1, 1, -1, 3)).to(volume.dtype)
    out = torch.nn.functional.grid_sample(volume[:, None], uvw, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, *lead)
