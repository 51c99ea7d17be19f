"""Volume rendering against analytic answers: constant media, a ground plane and a box with a sharp
density (depth within 1 %), gradients to the field, inverse-CDF resampling, adaptive sampling
reaching the error of 4x as many uniform samples, the distortion loss."""

from __future__ import annotations

import math

import pytest
import torch

from genesis_drive.models.lidar.render import (
    composite,
    distortion_loss,
    midpoints,
    ray_box_interval,
    render_adaptive,
    render_uniform,
    sample_pdf,
    uniform_edges,
)
from genesis_drive.models.lidar.voxel import sample_volume, voxelize

from .scenes import GRID, GROUND_Z, analytic_depth, beam_rays, density, hard_density, surface_points


@pytest.fixture(scope="module")
def scene():
    o, d = beam_rays(32, 256)
    t0, t1, valid = ray_box_interval(o, d, GRID.lower, GRID.upper, 1.0, 100.0)
    gt = analytic_depth(o, d)
    hit = gt < t1
    assert valid.all() and 0.5 < hit.float().mean() < 0.95  # some rays leave the grid without a hit
    return o, d, t0, t1, gt, hit


def test_constant_medium_matches_closed_form():
    sigma, length = 0.3, 10.0
    g = torch.Generator().manual_seed(0)
    cuts = torch.sort(torch.rand(1, 300, generator=g) * length).values
    edges = torch.cat((torch.zeros(1, 1), cuts, torch.full((1, 1), length)), dim=1)
    w, depth, opacity = composite(torch.full((1, 301), sigma), edges)
    # opacity telescopes exactly for any partition; the depth is E[min(t, L)] of an exponential
    assert opacity.item() == pytest.approx(1 - math.exp(-sigma * length), rel=1e-5)
    assert depth.item() == pytest.approx((1 - math.exp(-sigma * length)) / sigma, rel=2e-3)
    assert torch.all(w >= 0)


def test_empty_medium_returns_far_bound():
    edges = uniform_edges(torch.tensor([1.0]), torch.tensor([30.0]), 8)
    w, depth, opacity = composite(torch.zeros(1, 8), edges)
    assert opacity.item() == 0.0 and depth.item() == pytest.approx(30.0)


def test_ray_box_interval():
    o = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 40.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    t0, t1, valid = ray_box_interval(o, d, GRID.lower, GRID.upper, 1.0, 100.0)
    assert valid.tolist() == [True, True, False]
    assert t0[:2].tolist() == [1.0, 1.0]
    assert t1[:2].tolist() == pytest.approx([16.0, 3.0])
    _, t1_far, _ = ray_box_interval(o, d, GRID.lower, GRID.upper, 1.0, 10.0)
    assert t1_far[0].item() == pytest.approx(10.0)


def test_uniform_rendering_of_ground_and_box_within_one_percent(scene):
    o, d, t0, t1, gt, hit = scene
    r = render_uniform(density, o, d, t0, t1, 1024)
    rel = ((r.depth - gt).abs() / gt)[hit]
    assert rel.max() < 0.01
    assert torch.all(r.opacity[hit] > 0.99)
    # rays that leave the grid unobstructed see (nearly) nothing and return the far bound
    miss = ~hit & (d[..., 2] > 0.01)
    assert miss.any() and torch.allclose(r.depth[miss], t1[miss], rtol=1e-3)


def proposal_of_scene():
    occ = voxelize(GRID, surface_points())  # the occupancy a sweep of this scene would give
    return lambda p: 0.5 * sample_volume(GRID, occ, p)


@pytest.mark.parametrize("field", [density, hard_density])
def test_adaptive_rendering_within_one_percent(scene, field):
    o, d, t0, t1, gt, hit = scene
    fine, proposal = render_adaptive(field, proposal_of_scene(), o, d, t0, t1, 32, (32, 32))
    assert fine.weights.shape[-1] == 32 and proposal.weights.shape[-1] == 32
    assert ((fine.depth - gt).abs() / gt)[hit].max() < 0.01


def test_adaptive_matches_four_times_as_many_uniform_samples(scene):
    """32 occupancy lookups + two importance passes of 32 field samples = 96 <= 512 / 4 samples. A
    step density, so that the error is the sampling's alone (it falls as 1 / N for uniform)."""
    o, d, t0, t1, gt, hit = scene
    fine, _ = render_adaptive(hard_density, proposal_of_scene(), o, d, t0, t1, 32, (32, 32))
    err_adaptive = (fine.depth - gt).abs()[hit].mean()
    err = {n: (render_uniform(hard_density, o, d, t0, t1, n).depth - gt).abs()[hit].mean() for n in (128, 512)}
    assert err[512] < 0.5 * err[128]  # the uniform error is the sampling's (halves per doubling)
    assert err_adaptive <= err[512]
    assert err_adaptive < 0.25 * err[128]  # and far better than uniform at a similar budget
    # one importance pass of 64 already localises the surface better than 128 uniform samples
    single, _ = render_adaptive(hard_density, proposal_of_scene(), o, d, t0, t1, 32, 64)
    assert (single.depth - gt).abs()[hit].mean() < err[128]


def test_gradient_reaches_field_with_analytic_value():
    """d depth / d ground height = 1 / d_z for a ray that hits the plane (the depth is g / d_z)."""
    o, d = beam_rays(4, 8, elev_deg=(-10.0, -30.0))
    ground = torch.tensor(GROUND_Z, requires_grad=True)
    t0, t1, _ = ray_box_interval(o, d, GRID.lower, GRID.upper, 1.0, 100.0)
    r = render_uniform(lambda p: 50.0 * torch.sigmoid((ground - p[..., 2]) / 0.05), o, d, t0, t1, 2048)
    # with a soft interface the rendered surface sits above the plane (by an offset that depends on
    # the ray's slope only); the depth still moves rigidly with the plane
    height = (o[..., 2] + r.depth * d[..., 2]).detach()
    assert torch.all(height > GROUND_Z) and torch.all(height < GROUND_Z + 0.3)
    (grad,) = torch.autograd.grad(r.depth.sum(), ground)
    expected = (1.0 / d[..., 2]).sum()
    assert grad.item() == pytest.approx(expected.item(), rel=0.02)


def test_sample_pdf_concentrates_on_the_mass():
    edges = uniform_edges(torch.tensor([[0.0]]), torch.tensor([[32.0]]), 32)
    w = torch.zeros(1, 1, 32)
    w[..., 10] = 1.0  # all mass in [10, 11)
    new = sample_pdf(edges, w, 64, dilate=0, floor=0.02)
    assert new.shape == (1, 1, 65)
    assert torch.all(new[..., 1:] >= new[..., :-1])
    assert new[..., 0].item() == 0.0 and new[..., -1].item() == pytest.approx(32.0)
    inside = ((new >= 10.0) & (new <= 11.0)).float().mean()
    assert inside > 0.95
    dilated = sample_pdf(edges, w, 64, dilate=1, floor=0.02)
    assert ((dilated >= 9.0) & (dilated <= 12.0)).float().mean() > 0.95
    assert ((dilated >= 9.0) & (dilated < 10.0)).sum() >= 15  # the neighbours get a third each
    # uniform mass reproduces the uniform partition
    same = sample_pdf(edges, torch.ones(1, 1, 32), 32)
    assert torch.allclose(same, edges, atol=1e-5)


def test_sample_pdf_jitter_is_seeded():
    edges = uniform_edges(torch.zeros(2, 3), torch.full((2, 3), 10.0), 16)
    w = torch.rand(2, 3, 16, generator=torch.Generator().manual_seed(1))
    a = sample_pdf(edges, w, 8, jitter=True, generator=torch.Generator().manual_seed(5))
    b = sample_pdf(edges, w, 8, jitter=True, generator=torch.Generator().manual_seed(5))
    c = sample_pdf(edges, w, 8, jitter=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all(a[..., 1:] >= a[..., :-1])


def test_distortion_loss_values():
    g = torch.Generator().manual_seed(0)
    edges = torch.sort(torch.rand(3, 20, generator=g) * 10, dim=-1).values
    w = torch.rand(3, 19, generator=g) / 19
    m, delta = midpoints(edges), edges[..., 1:] - edges[..., :-1]
    brute = (w[..., :, None] * w[..., None, :] * (m[..., :, None] - m[..., None, :]).abs()).sum((-1, -2))
    brute = brute + (w.square() * delta).sum(-1) / 3
    assert torch.allclose(distortion_loss(w, edges), brute, rtol=1e-5)
    assert torch.allclose(distortion_loss(w, edges, scale=10.0), brute / 10.0, rtol=1e-5)
    # one full-weight interval of length 0.3: 0.3 / 3; spread weight costs more
    e = torch.tensor([[0.0, 5.0, 5.3, 10.0]])
    assert distortion_loss(torch.tensor([[0.0, 1.0, 0.0]]), e).item() == pytest.approx(0.1)
    assert distortion_loss(torch.tensor([[0.5, 0.0, 0.5]]), e).item() > 1.0
