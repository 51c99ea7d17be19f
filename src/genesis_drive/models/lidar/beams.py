"""The beam pattern of a spinning LiDAR: rings x azimuth bins, estimated from sweeps, and the
returned / dropped label of every beam of a sweep.

Frame: the LIDAR_TOP sensor frame (nuScenes: x right, y forward, z up, metres), sensor at the
origin. A beam of ring ``k`` at azimuth bin ``a`` points along

    d = (cos(el_k) cos(az_a), cos(el_k) sin(az_a), sin(el_k)),   az_a = offset + a * 2 pi / A

(azimuth ``atan2(y, x)`` in radians, counter-clockwise from +x; elevation ``asin(z / range)``).
A point of ring ``k`` falls in bin ``a`` when its azimuth lies within half a bin of ``az_a``; the
beam is *returned* when at least one point falls in its cell (its depth is the nearest such
point's range, metres) and *dropped* otherwise.

:func:`estimate_beams` recovers the pattern from sweeps with a ring column: per ring the elevation
is the median elevation of its points; the azimuth step comes from the gaps between consecutive
azimuths of a ring (over every ring of every sweep): each gap counts ``round(gap / median gap)``
steps (a gap over dropped beams spans several), step = total gap / total steps; unless the
number of bins is given; the
offset is the circular mean of the points' azimuth phases within a bin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = ["BeamCells", "BeamModel", "beam_cells", "estimate_beams", "point_azimuth_elevation"]


@dataclass(frozen=True)
class BeamModel:
    """A spinning LiDAR's beams: ``elevations`` (radians, one per ring, ring 0 first),
    ``azimuth_bins`` (A, bins per turn) and ``azimuth_offset`` (radians, the centre of bin 0, in
    ``[0, 2 pi / A)``)."""

    elevations: tuple[float, ...]
    azimuth_bins: int
    azimuth_offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.elevations or not all(math.isfinite(e) and abs(e) <= math.pi / 2 for e in self.elevations):
            raise ValueError(f"BeamModel.elevations must be one finite angle in [-pi/2, pi/2] radians per ring, got {self.elevations}")
        if self.azimuth_bins < 1:
            raise ValueError(f"BeamModel.azimuth_bins must be >= 1, got {self.azimuth_bins}")
        if not math.isfinite(self.azimuth_offset):
            raise ValueError(f"BeamModel.azimuth_offset must be finite radians, got {self.azimuth_offset}")

    @property
    def rings(self) -> int:
        return len(self.elevations)

    @property
    def azimuth_step(self) -> float:
        """Radians per azimuth bin."""
        return 2.0 * math.pi / self.azimuth_bins

    @property
    def num_beams(self) -> int:
        """Beams per sweep: rings x azimuth bins (the ray grid, ring-major)."""
        return self.rings * self.azimuth_bins

    def azimuths(self) -> torch.Tensor:
        """Bin-centre azimuths (A,) radians (float64)."""
        return self.azimuth_offset + self.azimuth_step * torch.arange(self.azimuth_bins, dtype=torch.float64)

    def directions(self) -> torch.Tensor:
        """Unit directions ``(rings * A, 3)`` float32 of the beam grid, ring-major (cell ``k * A + a``)."""
        el = torch.tensor(self.elevations, dtype=torch.float64)[:, None]
        az = self.azimuths()[None, :]
        shape = (len(self.elevations), self.azimuth_bins)
        d = torch.stack((torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el).expand(shape)), dim=-1)
        return d.reshape(-1, 3).float()

    def azimuth_bin(self, azimuth: torch.Tensor) -> torch.Tensor:
        """Bin (long, in [0, A)) of azimuths (radians, any range): the nearest bin centre."""
        a = torch.floor((azimuth.double() - self.azimuth_offset) / self.azimuth_step + 0.5).long()
        return torch.remainder(a, self.azimuth_bins)


def point_azimuth_elevation(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(azimuth, elevation, range)`` (radians, radians, metres) of points ``xyz`` (n, 3), float64."""
    p = xyz.double()
    rng = p.norm(dim=-1)
    az = torch.atan2(p[:, 1], p[:, 0])
    el = torch.asin((p[:, 2] / rng.clamp(min=1e-12)).clamp(-1.0, 1.0))
    return az, el, rng


def _ring_ids(points: torch.Tensor) -> torch.Tensor:
    if points.ndim != 2 or points.shape[1] < 5:
        raise ValueError(f"sweep points must be (n, 5) x, y, z, intensity, ring; got {tuple(points.shape)}")
    ring = points[:, 4].double()
    if not torch.all((ring >= 0) & (ring == torch.round(ring))):
        raise ValueError("the ring column (points[:, 4]) must hold whole numbers >= 0")
    return ring.long()


def estimate_beams(sweeps: Sequence[torch.Tensor], azimuth_bins: int | None = None) -> BeamModel:
    """The :class:`BeamModel` of sweeps ``(n, 5)`` (x, y, z, intensity, ring; sensor frame).

    Rings are ``0 .. max ring``; each must have points (ValueError otherwise). ``azimuth_bins``
    None estimates the bins per turn from the median azimuth gap within rings (see the module doc).
    """
    if not sweeps:
        raise ValueError("estimate_beams needs at least one sweep")
    els, rings, gaps, azs = [], [], [], []
    for pts in sweeps:
        ring = _ring_ids(pts)
        az, el, rng = point_azimuth_elevation(pts[:, :3])
        keep = rng > 1e-6
        ring, az, el = ring[keep], az[keep], el[keep]
        els.append(el)
        rings.append(ring)
        azs.append(az)
        for k in torch.unique(ring).tolist():
            a = torch.sort(az[ring == k]).values
            gaps.append(torch.diff(a))
    ring, el, az = torch.cat(rings), torch.cat(els), torch.cat(azs)
    if len(ring) == 0:
        raise ValueError("estimate_beams: the sweeps hold no point away from the sensor")
    n_rings = int(ring.max()) + 1
    elevations = []
    for k in range(n_rings):
        e = el[ring == k]
        if len(e) == 0:
            raise ValueError(f"estimate_beams: ring {k} of 0..{n_rings - 1} has no point in the sweeps")
        elevations.append(float(torch.quantile(e, 0.5)))
    if azimuth_bins is None:
        gaps_t = torch.cat(gaps)
        gaps_t = gaps_t[gaps_t > 0]
        if len(gaps_t) == 0:
            raise ValueError("estimate_beams: no two points of a ring to measure the azimuth step; give azimuth_bins")
        coarse = float(torch.median(gaps_t))
        steps = torch.round(gaps_t / coarse).clamp(min=1.0)  # a gap over dropped beams spans several steps
        azimuth_bins = max(1, round(2.0 * math.pi * float(steps.sum()) / float(gaps_t.sum())))
    step = 2.0 * math.pi / azimuth_bins
    phase = 2.0 * math.pi * torch.remainder(az / step, 1.0)
    offset = math.atan2(float(torch.sin(phase).mean()), float(torch.cos(phase).mean())) / (2.0 * math.pi) * step
    return BeamModel(tuple(elevations), int(azimuth_bins), offset % step)


class BeamCells(NamedTuple):
    """Per beam of a sweep (``rings * A``, ring-major): ``returned`` (bool), ``depth`` (metres:
    the nearest point's range; 0 where dropped) and ``point_dirs`` (unit direction of that point;
    the beam's own direction where dropped)."""

    returned: torch.Tensor
    depth: torch.Tensor
    point_dirs: torch.Tensor


def beam_cells(beams: BeamModel, points: torch.Tensor) -> BeamCells:
    """Which beams of ``beams`` a sweep ``points`` (n, 5; sensor frame) returned. Points of rings
    beyond the model's and points at the sensor (range 0) are ignored."""
    ring = _ring_ids(points)
    az, _, rng = point_azimuth_elevation(points[:, :3])
    keep = (ring < beams.rings) & (rng > 1e-6)
    ring, az, rng, xyz = ring[keep], az[keep], rng[keep], points[keep, :3].double()
    cell = ring * beams.azimuth_bins + beams.azimuth_bin(az)
    n = beams.num_beams
    depth = torch.full((n,), math.inf, dtype=torch.float64).scatter_reduce(0, cell, rng, reduce="amin")
    returned = torch.isfinite(depth)
    dirs = beams.directions().double()
    win = rng == depth[cell]  # the nearest point of its cell (ties: equal ranges, any one of them)
    dirs[cell[win]] = xyz[win] / rng[win, None]
    return BeamCells(returned, torch.where(returned, depth, 0.0).float(), dirs.float())
