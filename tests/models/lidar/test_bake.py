"""Baked rendering: the lattice holds the density field's values at its nodes (structured and
point-wise baking agree), the baked renderer follows the analytic scene (ground + box, step
density) and agrees with the exact renderer on a random-weight model (depth and drop decisions,
recorded bounds), is chunk-independent and deterministic, and is what ``render_beams`` /
``decode_sweep`` use when asked. A sparse bake evaluates exactly the nodes near occupied voxels
(against a max-pool formulation), equals the dense bake there and is air elsewhere, and still
follows the analytic scene. The bake keeps the density field's pre-activation (softplus of it is
the density; air is :data:`AIR_PRE`, what inverting the density gives)."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.lidar.ae import LidarAE
from genesis_drive.models.lidar.bake import (
    AIR_PRE,
    BakeConfig,
    BakedVolume,
    bake_density,
    bake_grid,
    occupied_nodes,
    render_baked,
)
from genesis_drive.models.lidar.march import pre_softplus
from genesis_drive.models.lidar.sweep import beam_rays, decode_sweep, render_beams
from genesis_drive.models.lidar.voxel import voxelize

from .scenes import GRID, analytic_depth, hard_density, surface_points
from .test_sweep import BEAMS, SMALL, analytic_model, latents


def rays(b: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    dirs, _ = beam_rays(BEAMS)
    d = dirs[None].expand(b, -1, -1).contiguous()
    return torch.zeros_like(d), d


def random_model(seed: int = 1) -> LidarAE:
    torch.manual_seed(seed)
    return LidarAE(SMALL).eval()


def real_plane(m: LidarAE) -> torch.Tensor:
    with torch.no_grad():
        return m.decode_raw(m.encode_raw(voxelize(GRID, surface_points())))


def test_lattice_holds_the_field_at_its_nodes():
    m = random_model()
    plane = real_plane(m)
    cfg = BakeConfig(z_samples=12, xy_factor=2, z_chunk=5)
    vol = bake_density(m, plane, cfg)
    lat = bake_grid(GRID, cfg)
    assert vol.grid == lat and vol.sigma.shape == (1, 12, 128, 128) and lat.resolution == 0.25
    # node (k, i, j) sits at the centre of lattice voxel (k, i, j)
    k, i, j = torch.tensor([0, 5, 11, 7]), torch.tensor([0, 40, 127, 64]), torch.tensor([3, 99, 0, 127])
    lo = torch.tensor(lat.lower)
    pts = lo + (torch.stack((i, j, k), -1).float() + 0.5) * torch.tensor((0.25, 0.25, lat.bin_height))
    with torch.no_grad():
        want = m.density(m.split(plane).density, pts[None])[0]
    torch.testing.assert_close(vol.sigma[0, k, i, j], want, rtol=1e-5, atol=1e-6)
    # the structured bake (plane term per (x, y), height term per z) equals the point-wise one
    generic = analytic_model()
    generic.density = torch.nn.Module()
    generic.density.forward = lambda dens, p: m.density(dens, p)
    torch.testing.assert_close(bake_density(generic, plane, cfg).sigma, vol.sigma, rtol=1e-5, atol=1e-5)


def test_baked_depth_follows_the_analytic_scene():
    m = analytic_model(drop_bias=-30.0)
    o, d = rays()
    with torch.no_grad():
        plane = m.decode(latents())
        exact = m.render(plane, o, d)
    cfg = BakeConfig()
    vol = bake_density(m, plane, cfg)
    # the step density is baked exactly: nodes inside the solid hold its peak, outside 0
    lat = bake_grid(GRID, cfg)
    torch.testing.assert_close(vol.sigma[0, :, 20, 40], hard_density(torch.stack(
        (torch.full((64,), -16 + 20.25 * lat.resolution), torch.full((64,), -16 + 40.25 * lat.resolution),
         torch.linspace(-3 + 5 / 128, 2 - 5 / 128, 64)), -1)))
    out = render_baked(m, plane, vol, o, d, cfg)
    gt = analytic_depth(o, d)[0]
    hit = gt < exact.t_far[0]
    assert torch.equal(out.valid, exact.valid) and torch.equal(out.t_far, exact.t_far) and hit.sum() > 600
    rel = ((out.depth[0] - gt).abs() / gt)[hit]
    # the trilinear interpolant of a step starts rising at the last node outside the solid: a surface
    # is found up to one lattice spacing early along its normal (0.5 m in x, y; 5/64 m in z), and the
    # solid grows by up to that spacing, so rays grazing the box's edges may hit it (recorded on 741
    # hitting beams: median 0.20 %, p90 0.52 %, 99.9 % within 1 %, max 9.6 %; exact renderer: max 0.8 %)
    assert rel.median() < 0.003 and rel.quantile(0.9) < 0.007 and (rel < 0.01).float().mean() > 0.99
    spacing = torch.tensor((lat.resolution, lat.resolution, lat.bin_height))
    assert ((out.depth[0] - gt).abs()[hit] <= (spacing / d[0, hit].abs().clamp(min=1e-3)).amin(-1) + 0.05).float().mean() > 0.99
    # beams that meet nothing render the grid's far bound (recorded: all of them here)
    assert ((out.depth[0] - exact.t_far[0]).abs()[~hit] < 1e-3).float().mean() > 0.99
    assert torch.all(out.opacity[0, hit] > 0.999)


def test_baked_render_agrees_with_the_exact_renderer_on_a_random_model():
    m = random_model()
    plane = real_plane(m)
    o, d = rays()
    with torch.no_grad():
        exact = m.render(plane, o, d)
    out = render_baked(m, plane, bake_density(m, plane), o, d)
    diff = (out.depth - exact.depth).abs()[exact.valid]
    # the random field is soft (~0.5 /m): the depth is an integral over the ray, both renderers are
    # quadratures of it (recorded: median 0.025 m, p90 0.061 m, max 0.18 m on depths of 3.1-3.5 m)
    assert diff.median() < 0.04 and diff.quantile(0.9) < 0.09 and diff.max() < 0.3
    p_exact, p_baked = torch.sigmoid(exact.drop_logit), torch.sigmoid(out.drop_logit)
    assert (p_exact - p_baked).abs().max() < 0.008  # recorded 0.0041
    # drop decisions at thresholds inside the narrow spread of the random head's probabilities
    # (0.554-0.579): at the exact render's quartiles and median (the hardest: half the beams within
    # 0.01 of it); recorded 99.4 %, 99.8 %, 98.8 % of the beams agree
    for q, least in ((0.25, 0.99), (0.75, 0.99), (0.5, 0.98)):
        thr = p_exact.quantile(q)
        assert ((p_baked > thr) == (p_exact > thr)).float().mean() >= least
    torch.testing.assert_close(out.opacity, exact.opacity, atol=0.015, rtol=0)  # recorded 0.0067


def test_chunking_batches_and_repeats_give_the_same_render():
    m = random_model()
    plane = real_plane(m).expand(2, -1, -1, -1).contiguous()
    o, d = rays(2)
    vol = bake_density(m, plane)
    a = render_baked(m, plane, vol, o, d, BakeConfig(chunk=4096))
    b = render_baked(m, plane, vol, o, d, BakeConfig(chunk=100))
    assert torch.allclose(a.depth, b.depth, atol=1e-5) and torch.allclose(a.drop_logit, b.drop_logit, atol=1e-5)
    assert torch.equal(a.depth[0], a.depth[1]) and a.depth.dtype == torch.float32
    c = render_baked(m, plane, bake_density(m, plane), o, d, BakeConfig(chunk=4096))
    assert torch.equal(a.depth, c.depth) and torch.equal(a.drop_logit, c.drop_logit)


def test_render_beams_and_decode_sweep_use_the_baked_renderer_when_asked():
    m = random_model()
    plane = real_plane(m)
    cfg = BakeConfig(z_samples=32)
    o, d = rays()
    want = render_baked(m, plane, bake_density(m, plane, cfg), o, d, cfg)
    got = render_beams(m, plane, BEAMS, baked=cfg)
    assert torch.equal(got.depth, want.depth) and torch.equal(got.drop, torch.sigmoid(want.drop_logit))
    exact = render_beams(m, plane, BEAMS)
    assert not torch.equal(exact.depth, got.depth)
    with torch.no_grad():
        assert torch.equal(exact.depth, m.render(plane, o, d, chunk=4096).depth)  # the default is unchanged
    z = latents()
    pts = decode_sweep(m, z, BEAMS, drop_threshold=0.6, baked=cfg)[0]
    ref = render_beams(m, m.decode(z), BEAMS, baked=cfg).points(0.6)[0]
    assert len(pts) > 0 and torch.equal(pts, ref)


def occupied_by_pooling(m: LidarAE, plane: torch.Tensor, cfg: BakeConfig, threshold: float) -> torch.Tensor:
    """:func:`occupied_nodes` formulated independently: a 3 x 3 x 3 max-pool of the thresholded
    occupancy probabilities, read at the voxel holding each node's centre point."""
    prob = torch.sigmoid(m.split(plane).occupancy)
    near = torch.nn.functional.max_pool3d((prob > threshold).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0
    lat = bake_grid(m.cfg.grid, cfg)
    g = m.cfg.grid
    k, i, j = torch.meshgrid(*(torch.arange(n) for n in (lat.height_bins, lat.rows, lat.cols)), indexing="ij")
    x = lat.lower[0] + (i + 0.5) * lat.resolution
    y = lat.lower[1] + (j + 0.5) * lat.resolution
    z = lat.lower[2] + (k + 0.5) * lat.bin_height
    vi = ((x - g.lower[0]) / g.resolution).floor().long()
    vj = ((y - g.lower[1]) / g.resolution).floor().long()
    vk = ((z - g.lower[2]) / g.bin_height).floor().long()
    return near[:, vk, vi, vj]


@pytest.mark.parametrize("xy_factor,z_samples", [(1, 32), (2, 12)])
def test_sparse_bake_evaluates_the_nodes_near_occupancy_and_is_air_elsewhere(xy_factor, z_samples):
    m = random_model()
    plane = real_plane(m).clone()
    # occupancy logits of the analytic scene's surfaces (the random head's are ~0: everything)
    occ = voxelize(GRID, surface_points())
    n_occ = m.cfg.grid.height_bins
    p = plane.shape[1]
    plane[:, p - m.cfg.drop_channels - n_occ : p - m.cfg.drop_channels] = 20.0 * (2.0 * occ - 1.0)
    assert torch.equal(m.split(plane).occupancy, 20.0 * (2.0 * occ - 1.0))
    dense_cfg = BakeConfig(z_samples=z_samples, xy_factor=xy_factor, z_chunk=5)
    sparse_cfg = BakeConfig(z_samples=z_samples, xy_factor=xy_factor, z_chunk=5, occupancy_threshold=0.01)
    mask = occupied_nodes(m, plane, bake_grid(GRID, sparse_cfg), 0.01)
    assert torch.equal(mask, occupied_by_pooling(m, plane, sparse_cfg, 0.01))
    assert 0.05 < mask.float().mean() < 0.6  # a band around the ground and the box, not everything
    dense, sparse = bake_density(m, plane, dense_cfg), bake_density(m, plane, sparse_cfg)
    assert sparse.grid == dense.grid and sparse.sigma.shape == dense.sigma.shape
    torch.testing.assert_close(sparse.sigma[mask], dense.sigma[mask], rtol=1e-5, atol=1e-5)
    assert torch.all(sparse.sigma[~mask] == 0) and torch.all(dense.sigma[~mask] > 0)
    # a batch of two planes: each is sparse-baked as on its own (its own nodes)
    two = torch.cat((plane, plane.flip(-1)), 0)
    both = bake_density(m, two, sparse_cfg)
    torch.testing.assert_close(both.sigma[1:], bake_density(m, two[1:], sparse_cfg).sigma, rtol=1e-5, atol=1e-6)
    assert not torch.equal(both.sigma[0], both.sigma[1])
    # the point-wise branch (any density module) evaluates the same nodes
    generic = analytic_model()
    generic.density = torch.nn.Module()
    generic.density.forward = lambda dens, pts: m.density(dens, pts)
    torch.testing.assert_close(bake_density(generic, two, sparse_cfg).sigma, both.sigma, rtol=1e-5, atol=1e-5)
    # threshold 0 is the dense bake
    assert torch.equal(bake_density(m, plane, BakeConfig(z_samples=z_samples, xy_factor=xy_factor, z_chunk=5,
                                                         occupancy_threshold=0.0)).sigma, dense.sigma)


@pytest.mark.parametrize("xy_factor,threshold", [(1, 0.0), (1, 0.01), (2, 0.01)])
def test_the_bake_keeps_the_pre_activation_of_the_density(xy_factor, threshold):
    m = random_model()
    plane = real_plane(m).clone()
    p, n_occ = plane.shape[1], m.cfg.grid.height_bins
    occ = voxelize(GRID, surface_points())
    plane[:, p - m.cfg.drop_channels - n_occ : p - m.cfg.drop_channels] = 20.0 * (2.0 * occ - 1.0)
    cfg = BakeConfig(z_samples=12, xy_factor=xy_factor, z_chunk=5, occupancy_threshold=threshold)
    vol = bake_density(m, plane, cfg)
    scale = m.cfg.density_scale
    assert vol.pre is not None and vol.pre.shape == vol.sigma.shape and vol.pre_scale == scale
    assert AIR_PRE == pytest.approx(float(pre_softplus(torch.zeros(()), scale)), abs=1e-5)
    air = vol.sigma == 0
    assert torch.all(vol.pre[air] == AIR_PRE) and (air.any() if threshold > 0 else not air.any())
    # the density is scale * softplus of it, and inverting the density gives it back
    torch.testing.assert_close(scale * torch.nn.functional.softplus(vol.pre[~air]), vol.sigma[~air], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(vol.pre, pre_softplus(vol.sigma, scale), rtol=1e-4, atol=1e-4)
    # a density module without a softplus pre-activation keeps none
    generic = analytic_model()
    generic.density = torch.nn.Module()
    generic.density.forward = lambda dens, pts: m.density(dens, pts)
    other = bake_density(generic, plane, cfg)
    assert other.pre is None and other.pre_scale is None
    torch.testing.assert_close(other.sigma, vol.sigma, rtol=1e-5, atol=1e-5)


def test_sparse_baked_depth_still_follows_the_analytic_scene():
    m = analytic_model(drop_bias=-30.0)
    o, d = rays()
    with torch.no_grad():
        plane = m.decode(latents())
    cfg = BakeConfig(occupancy_threshold=0.01)
    vol = bake_density(m, plane, cfg)
    # deep inside the ground (more than one voxel under its surface) the sparse bake holds air
    assert vol.sigma[0, :6].abs().max() == 0 and vol.sigma[0, 7:14].min() > 0
    dense = bake_density(m, plane, BakeConfig())
    assert int((vol.sigma > 0).sum()) < 0.7 * int((dense.sigma > 0).sum())  # recorded 0.61
    out = render_baked(m, plane, vol, o, d, cfg)
    ref = render_baked(m, plane, dense, o, d, BakeConfig())
    gt = analytic_depth(o, d)[0]
    hit = gt < out.t_far[0]
    rel = ((out.depth[0] - gt).abs() / gt)[hit]
    assert rel.median() < 0.003 and rel.quantile(0.9) < 0.007 and (rel < 0.01).float().mean() > 0.99
    assert (out.depth - ref.depth).abs().max() < 1e-3  # the air the sparse bake leaves is never reached


def test_bad_configs_and_shapes_raise():
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="bake.occupancy_threshold"):
            BakeConfig(occupancy_threshold=bad)
    with pytest.raises(ConfigError, match="bake.z_samples"):
        BakeConfig(z_samples=0)
    with pytest.raises(ConfigError, match="bake.n_fine"):
        BakeConfig(n_fine=())
    with pytest.raises(ConfigError, match="bake.floor"):
        BakeConfig(floor=0.0)
    m = random_model()
    plane = real_plane(m)
    vol = bake_density(m, plane, BakeConfig(z_samples=8))
    o, d = rays()
    with pytest.raises(ValueError, match="rays are origins"):
        render_baked(m, plane, vol, o[0], d[0])
    with pytest.raises(ValueError, match="baked volume"):
        render_baked(m, plane, BakedVolume(vol.grid, vol.sigma[:, :4]), o, d)
