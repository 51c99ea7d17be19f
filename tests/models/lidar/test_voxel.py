"""BEV voxelisation: points land in the right cell and height bin, out-of-range points are dropped,
and the grid_sample coordinates agree with the voxel boundaries."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.lidar.voxel import BEVGrid, normalised_coords, sample_plane, sample_volume, voxelize

GRID = BEVGrid(x_range=(-16.0, 16.0), y_range=(-8.0, 24.0), z_range=(-3.0, 2.0), resolution=0.5, height_bins=10)


def test_shape_properties():
    assert GRID.shape == (10, 64, 64)
    assert GRID.bin_height == pytest.approx(0.5)
    assert BEVGrid(x_range=(-51.2, 51.2), y_range=(-51.2, 51.2), resolution=0.4, height_bins=32).shape == (32, 256, 256)


def test_point_lands_in_its_cell_and_bin():
    pts = torch.tensor([[1.3, -2.6, -1.7, 40.0, 7.0]])  # x, y, z, intensity, ring
    occ = voxelize(GRID, pts)
    # row floor((1.3 + 16) / 0.5) = 34, column floor((-2.6 + 8) / 0.5) = 10, bin floor((-1.7 + 3) / 0.5) = 2
    assert occ.shape == (1, 10, 64, 64)
    assert occ[0, 2, 34, 10] == 1.0
    assert occ.sum() == 1.0


def test_duplicates_bounds_and_outside_points():
    pts = torch.tensor([
        [1.3, -2.6, -1.7], [1.4, -2.7, -1.6],          # same voxel twice -> one
        [-16.0, -8.0, -3.0],                            # lower corner: inside (cell 0, 0, bin 0)
        [16.0, 0.0, 0.0], [0.0, 24.0, 0.0], [0.0, 0.0, 2.0],  # upper bounds: outside
        [0.0, 0.0, -3.5], [-20.0, 0.0, 0.0], [float("nan"), 0.0, 0.0],  # below, behind, NaN: outside
    ])
    occ = voxelize(GRID, pts)
    assert occ.sum() == 2.0
    assert occ[0, 0, 0, 0] == 1.0 and occ[0, 2, 34, 10] == 1.0


def test_batch_of_sweeps_is_independent():
    a = torch.tensor([[0.1, 0.1, 0.1]])
    b = torch.tensor([[5.2, 3.3, -2.9], [-7.0, 20.0, 1.9]])
    occ = voxelize(GRID, [a, b])
    assert occ.shape[0] == 2
    assert torch.equal(occ[0], voxelize(GRID, a)[0]) and torch.equal(occ[1], voxelize(GRID, b)[0])
    assert occ[0].sum() == 1 and occ[1].sum() == 2


def test_bad_points_raise():
    with pytest.raises(ValueError, match="x, y, z"):
        voxelize(GRID, torch.zeros(4, 2))


@pytest.mark.parametrize("kw", [{"resolution": 0.3}, {"x_range": (1.0, -1.0)}, {"height_bins": 0},
                                {"z_range": (2.0, 2.0)}, {"resolution": -1.0}])
def test_bad_grid_raises(kw):
    with pytest.raises(ConfigError):
        BEVGrid(**{"x_range": (-16.0, 16.0), "y_range": (-16.0, 16.0), **kw})


def test_lookups_agree_with_voxel_boundaries():
    occ = voxelize(GRID, torch.tensor([[1.3, -2.6, -1.7]]))  # voxel (k, i, j) = (2, 34, 10)
    centre = torch.tensor([[-16.0 + 34.5 * 0.5, -8.0 + 10.5 * 0.5, -3.0 + 2.5 * 0.5]])
    neighbour = centre + torch.tensor([[0.5, 0.0, 0.0]])
    between = centre + torch.tensor([[0.0, 0.0, 0.25]])  # half way to the next bin's centre
    vals = sample_volume(GRID, occ, torch.cat((centre, neighbour, between))[None])
    assert torch.allclose(vals, torch.tensor([[1.0, 0.0, 0.5]]), atol=1e-6)
    plane = torch.zeros(1, 2, 64, 64)
    plane[0, :, 34, 10] = torch.tensor([3.0, -1.0])
    got = sample_plane(GRID, plane, centre[None])
    assert torch.allclose(got, torch.tensor([[[3.0, -1.0]]]), atol=1e-6)
    # the grid's corners map to -1 and +1
    n = normalised_coords(GRID, torch.tensor([GRID.lower, GRID.upper]))
    assert torch.allclose(n, torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
