"""Compiled ray marcher: follows the analytic scene (ground + box, step density) within one lattice
spacing along the surface normal, agrees with the baked renderer on the same volume, converges as
its step shrinks and matches the converged expected depth of the exact field on a soft random
model (closer than either quadrature renderer), early termination changes depth and opacity
by less than its stated bound, renders are deterministic and independent of threads, batching and
ray subsets, bad input raises, and ``render_beams`` / ``decode_sweep`` use it when asked.
Empty-space skipping: the block maxima bound every lookup (against a brute force), skipping
leaves depths unchanged where the skipped air is exactly empty and within its stated bound where
it is not, and the sparse bake + skipping still follows the analytic scene."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.lidar.bake import (
    BakeConfig,
    BakedVolume,
    bake_density,
    bake_grid,
    render_baked,
)
from genesis_drive.models.lidar.march import MarchConfig, block_maxima, march_rays, render_marched
from genesis_drive.models.lidar.render import ray_box_interval, render_uniform
from genesis_drive.models.lidar.sweep import MARCH_BAKE, decode_sweep, reconstruct_beams, render_beams

from .scenes import GRID, analytic_depth
from .test_bake import random_model, rays, real_plane
from .test_sweep import BEAMS, analytic_model, latents

#: The analytic model's density is a step, not a softplus: interpolate the density itself.
DENSITY = MarchConfig(interpolate="density")


@pytest.fixture(scope="module")
def scene():
    """The analytic model, its plane, the default bake of it and the test beams."""
    m = analytic_model(drop_bias=-30.0)
    with torch.no_grad():
        plane = m.decode(latents())
    return m, plane, bake_density(m, plane), *rays()


@pytest.fixture(scope="module")
def soft():
    """A random-weight model (soft density ~0.5 /m), a real plane, its default bake, the beams."""
    m = random_model()
    plane = real_plane(m)
    return m, plane, bake_density(m, plane), *rays()


def test_marched_depth_follows_the_analytic_scene(scene):
    m, plane, vol, o, d = scene
    out = render_marched(m, plane, vol, o, d, DENSITY)
    baked = render_baked(m, plane, vol, o, d)
    gt = analytic_depth(o, d)[0]
    hit = gt < baked.t_far[0]
    assert torch.equal(out.valid, baked.valid) and torch.equal(out.t_far, baked.t_far) and hit.sum() > 600
    assert out.depth.dtype == torch.float32 and out.depth.shape == o.shape[:2]
    # one lattice spacing along the surface normal (the trilinear interpolant of a step starts rising
    # at the last node outside the solid), as a distance along the beam: spacing_a / |d_a|
    lat = bake_grid(GRID, BakeConfig())
    spacing = torch.tensor((lat.resolution, lat.resolution, lat.bin_height))
    bound = (spacing / d[0].abs().clamp(min=1e-3)).amin(-1) + 0.05
    err = (out.depth[0] - gt).abs()
    # recorded on 741 hitting beams: 99.6 % within the bound; the rest graze the box's grown edge and
    # hit it where the analytic box is missed (the marcher samples the baked field densely enough
    # to see that sliver, the baked renderer's 48 samples mostly do not)
    assert (err[hit] <= bound[hit]).float().mean() > 0.99
    rel = (err / gt)[hit]
    assert rel.median() < 0.006 and rel.quantile(0.9) < 0.008  # recorded 0.45 %, 0.53 %
    assert ((out.depth[0] - gt)[hit]).median() < 0  # found early (bake), never on average late
    # beams that meet nothing render the far bound (recorded 98.2 %: 5 of 283 graze the grown box)
    assert ((out.depth[0] - out.t_far[0]).abs()[~hit] < 1e-3).float().mean() > 0.97
    assert torch.all(out.opacity[0, hit] > 0.998)
    # hitting beams stop at the surface, not at the far bound
    assert torch.all(out.fine.edges[0, hit, 1] < out.t_far[0, hit])
    assert torch.all(out.fine.edges[0, hit, 1] >= out.depth[0, hit])


def test_march_agrees_with_the_baked_renderer_and_converges(scene, soft):
    m, plane, vol, o, d = scene
    a, b = render_marched(m, plane, vol, o, d, DENSITY), render_baked(m, plane, vol, o, d)
    diff = (a.depth - b.depth).abs()[b.valid]
    assert diff.median() < 0.02 and diff.quantile(0.9) < 0.07  # recorded 0.009, 0.042 m
    m, plane, vol, o, d = soft
    a, b = render_marched(m, plane, vol, o, d), render_baked(m, plane, vol, o, d)
    fine = render_marched(m, plane, vol, o, d, MarchConfig(step=0.05, min_transmittance=0.0))
    with torch.no_grad():
        exact = m.render(plane, o, d)
        # the exact field's expected depth, converged: 2000 uniform intervals on every 4th ray
        mc, dens, k = m.cfg, m.split(plane).density, slice(None, None, 4)
        t0, t1, _ = ray_box_interval(o[:, k], d[:, k], mc.grid.lower, mc.grid.upper, mc.near, mc.far)
        truth = render_uniform(lambda p: m.density(dens, p), o[:, k], d[:, k], t0, t1, 2000).depth
    valid = exact.valid
    # the march converges: ten times finer steps change the depth by millimetres (recorded p90 1.4 mm,
    # max 2.0 mm, mostly early termination), so it is the expected depth of the baked field
    conv = (a.depth - fine.depth).abs()[valid]
    assert conv.quantile(0.9) < 0.003 and conv.max() < 0.01
    # ... and on this soft field the baked field is the exact one up to interpolation: the march is
    # within millimetres of the exact field's converged depth (recorded median 0.7 mm, p90 3.1 mm,
    # max 7.9 mm) where the exact renderer's 32 + 16 + 16 samples are off by median 0.061, p90 0.129 m
    # and the baked renderer's 32 + 16 by 0.085, 0.186 m (their quadrature error)
    err = (a.depth[:, k] - truth).abs()[valid[:, k]]
    assert err.median() < 0.002 and err.quantile(0.9) < 0.006 and err.max() < 0.02
    quad = (exact.depth[:, k] - truth).abs()[valid[:, k]]
    assert quad.median() > 10 * err.median()
    diff = (a.depth - b.depth).abs()[valid]
    assert diff.median() < 0.12 and diff.quantile(0.9) < 0.25  # recorded 0.085, 0.187 m
    torch.testing.assert_close(a.opacity, b.opacity, atol=0.015, rtol=0)  # recorded 0.0061
    assert (torch.sigmoid(a.drop_logit) - torch.sigmoid(exact.drop_logit)).abs().max() < 0.01  # recorded 0.0053
    # interpolating the pre-activation or the density is the same on a soft field (recorded 0.1 mm)
    dens_interp = render_marched(m, plane, vol, o, d, DENSITY)
    assert (dens_interp.depth - a.depth).abs()[valid].quantile(0.9) < 0.003


def test_early_termination_changes_depth_within_its_bound(scene, soft):
    for (m, plane, vol, o, d), interp in ((scene, "density"), (soft, "pre_softplus")):
        cfg = MarchConfig(min_transmittance=1e-3, interpolate=interp)
        early = render_marched(m, plane, vol, o, d, cfg)
        full = render_marched(m, plane, vol, o, d, MarchConfig(min_transmittance=0.0, interpolate=interp))
        t0, t1, _ = ray_box_interval(o, d, m.cfg.grid.lower, m.cfg.grid.upper, m.cfg.near, m.cfg.far)
        bound = cfg.min_transmittance * (t1 - t0) + 1e-4
        assert torch.all((early.depth - full.depth).abs() <= bound)
        gap = full.opacity - early.opacity
        assert torch.all(gap >= -1e-6) and torch.all(gap <= cfg.min_transmittance + 1e-6)
        assert torch.all(full.fine.edges[..., 1] == full.t_far)  # without it every ray runs to the far bound
    # on the sharp scene early termination stops hitting beams at the surface
    m, plane, vol, o, d = scene
    early = render_marched(m, plane, vol, o, d, DENSITY)
    stopped = early.fine.edges[0, :, 1] < early.t_far[0] - 1.0
    assert stopped.float().mean() > 0.5


def test_marching_is_deterministic_and_independent_of_threads_batches_and_subsets(soft):
    m, plane, vol, o, d = soft
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = render_marched(m, plane, vol, o, d)
        torch.set_num_threads(2)
        two = render_marched(m, plane, vol, o, d)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.depth, two.depth) and torch.equal(one.opacity, two.opacity)
    assert torch.equal(one.drop_logit, render_marched(m, plane, vol, o, d).drop_logit)
    # a subset of the rays (a chunk) renders exactly as inside the full set
    sub = render_marched(m, plane, vol, o[:, 100:357], d[:, 100:357])
    assert torch.equal(sub.depth, one.depth[:, 100:357]) and torch.equal(sub.opacity, one.opacity[:, 100:357])
    # a batch of two planes renders each as on its own, the second from its own volume
    p2 = torch.cat((plane, plane.flip(-1)), 0)
    v2 = bake_density(m, p2)
    o2, d2 = rays(2)
    both = render_marched(m, p2, v2, o2, d2)
    alone = render_marched(m, p2[1:], BakedVolume(v2.grid, v2.sigma[1:], v2.pre[1:], v2.pre_scale), o2[1:], d2[1:])
    assert torch.equal(both.depth[:1], one.depth) and torch.equal(both.depth[1:], alone.depth)
    assert not torch.equal(both.depth[0], both.depth[1])
    # the low-level marcher returns the same depth and opacity
    t0, t1, _ = ray_box_interval(o, d, m.cfg.grid.lower, m.cfg.grid.upper, m.cfg.near, m.cfg.far)
    depth, opacity, _ = march_rays(vol, o, d, t0, t1, softplus_scale=m.cfg.density_scale)
    assert torch.equal(depth, one.depth) and torch.equal(opacity, one.opacity)


def test_the_marcher_reads_the_kept_pre_activation(soft):
    m, plane, vol, o, d = soft
    assert vol.pre is not None and vol.pre_scale == m.cfg.density_scale
    kept = render_marched(m, plane, vol, o, d)
    # without it the marcher inverts the density: the same field up to rounding
    inverted = render_marched(m, plane, BakedVolume(vol.grid, vol.sigma), o, d)
    torch.testing.assert_close(kept.depth, inverted.depth, rtol=0, atol=1e-4)
    torch.testing.assert_close(kept.opacity, inverted.opacity, rtol=0, atol=1e-5)
    # it is what the lookups read (a denser pre-activation stops rays earlier) ...
    denser = render_marched(m, plane, BakedVolume(vol.grid, vol.sigma, vol.pre + 3.0, vol.pre_scale), o, d)
    assert (denser.depth < kept.depth - 1e-3)[denser.valid].float().mean() > 0.9
    # ... unless it was made for another density scale
    other = render_marched(m, plane, BakedVolume(vol.grid, vol.sigma, vol.pre + 3.0, 2.0 * vol.pre_scale), o, d)
    assert torch.equal(other.depth, inverted.depth)


def test_render_beams_and_decode_sweep_use_the_marcher_when_asked(soft):
    m, plane, _, o, d = soft
    bake, march = BakeConfig(z_samples=32), MarchConfig()
    want = render_marched(m, plane, bake_density(m, plane, bake), o, d, march)
    got = render_beams(m, plane, BEAMS, baked=bake, marched=march)
    assert torch.equal(got.depth, want.depth) and torch.equal(got.drop, torch.sigmoid(want.drop_logit))
    default_bake = render_beams(m, plane, BEAMS, marched=march)
    assert torch.equal(default_bake.depth, render_marched(m, plane, bake_density(m, plane, MARCH_BAKE), o, d, march).depth)
    z = latents()
    pts = decode_sweep(m, z, BEAMS, drop_threshold=0.6, marched=march)[0]
    ref = render_beams(m, m.decode(z), BEAMS, marched=march).points(0.6)[0]
    assert len(pts) > 0 and torch.equal(pts, ref)
    # reconstruction (encode -> decode -> render) passes the renderer choice through
    occ = (torch.rand((1, *m.cfg.grid.shape), generator=torch.Generator().manual_seed(0)) < 0.05).float()
    rec, _ = reconstruct_beams(m, occ, BEAMS, baked=bake, marched=march)
    with torch.no_grad():
        want = render_beams(m, m.decode_raw(m.encode_raw(occ)), BEAMS, baked=bake, marched=march)
    exact, _ = reconstruct_beams(m, occ, BEAMS)
    assert torch.equal(rec.depth, want.depth) and not torch.equal(rec.depth, exact.depth)


def test_block_maxima_bound_every_lookup_in_their_block():
    g = torch.Generator().manual_seed(3)
    vol = torch.randn(2, 7, 10, 9, generator=g)
    for block in (1, 3, 4):
        got = block_maxima(vol, block)
        assert got.shape == (2, -(-7 // block), -(-10 // block), -(-9 // block))
        want = torch.empty_like(got)
        for bz in range(got.shape[1]):
            for bx in range(got.shape[2]):
                for by in range(got.shape[3]):
                    # cells bz*B .. (bz+1)*B - 1 span nodes bz*B .. (bz+1)*B (the last cell: its border node)
                    sl = [slice(c * block, min((c + 1) * block, n - 1) + 1) for c, n in ((bz, 7), (bx, 10), (by, 9))]
                    want[:, bz, bx, by] = vol[:, sl[0], sl[1], sl[2]].amax(dim=(1, 2, 3))
        assert torch.equal(got, want)
    # a trilinear lookup anywhere (nodes at integer positions, clamped) is at most its block's maximum
    pos = torch.rand(5000, 3, generator=g) * torch.tensor([6.0, 9.0, 8.0])
    lo = pos.floor().long()
    f = pos - lo
    val = torch.zeros(2, 5000)
    for corner in range(8):
        c = [(corner >> a) & 1 for a in range(3)]
        w = torch.ones(5000)
        for a in range(3):
            w = w * (f[:, a] if c[a] else 1 - f[:, a])
        val += w * vol[:, (lo[:, 0] + c[0]).clamp(max=6), (lo[:, 1] + c[1]).clamp(max=9), (lo[:, 2] + c[2]).clamp(max=8)]
    bm = block_maxima(vol, 3)
    assert torch.all(val <= bm[:, lo[:, 0] // 3, lo[:, 1] // 3, lo[:, 2] // 3] + 1e-6)


def test_skipping_empty_space_keeps_depths_within_its_bound(scene):
    m, plane, _, o, d = scene
    vol = bake_density(m, plane, BakeConfig(z_samples=32, occupancy_threshold=0.01))  # air is exactly 0
    assert (block_maxima(vol.sigma, 4) == 0).float().mean() > 0.3
    off = MarchConfig(interpolate="density", skip_block=0)
    on = render_marched(m, plane, vol, o, d, MarchConfig(interpolate="density", skip_block=4))
    ref = render_marched(m, plane, vol, o, d, off)
    assert torch.equal(on.depth, ref.depth) and torch.equal(on.opacity, ref.opacity)
    # a faint haze below skip_density: skipped air loses its optical depth, at most skip_density per metre
    haze = BakedVolume(vol.grid, vol.sigma + 5e-5)
    t0, t1, _ = ray_box_interval(o, d, m.cfg.grid.lower, m.cfg.grid.upper, m.cfg.near, m.cfg.far)
    for block in (2, 4, 8):
        cfg = MarchConfig(interpolate="density", skip_block=block, skip_density=1e-4, min_transmittance=0.0)
        on = render_marched(m, plane, haze, o, d, cfg)
        ref = render_marched(m, plane, haze, o, d, MarchConfig(interpolate="density", skip_block=0, min_transmittance=0.0))
        gap, tau_s = ref.opacity - on.opacity, cfg.skip_density * (t1 - t0)
        assert torch.all(gap >= -1e-6) and torch.all(gap <= tau_s + 1e-6)
        assert gap.max() > 1e-4  # something was skipped
        # the weight moved is at most tau_s, moved at most t_far - t_near (recorded max 7.6 mm)
        assert torch.all((on.depth - ref.depth).abs() <= tau_s * (t1 - t0) + 1e-5)
        # a haze above skip_density is never skipped
        above = render_marched(m, plane, haze, o, d, MarchConfig(interpolate="density", skip_block=block, skip_density=1e-5,
                                                                  min_transmittance=0.0))  # fmt: skip
        assert torch.equal(above.depth, ref.depth) and torch.equal(above.opacity, ref.opacity)


def test_sparse_bake_and_skipping_still_follow_the_analytic_scene(scene):
    m, plane, _, o, d = scene
    vol = bake_density(m, plane, BakeConfig(occupancy_threshold=0.01))
    out = render_marched(m, plane, vol, o, d, DENSITY)
    gt = analytic_depth(o, d)[0]
    hit = gt < out.t_far[0]
    rel = ((out.depth[0] - gt).abs() / gt)[hit]
    assert rel.median() < 0.006 and rel.quantile(0.9) < 0.008 and (rel < 0.01).float().mean() > 0.97
    assert torch.all(out.opacity[0, hit] > 0.998)


def test_bad_configs_and_shapes_raise(scene, soft):
    for kw, field in (({"skip_block": -1}, "march.skip_block"), ({"skip_density": 0.0}, "march.skip_density"),
                      ({"step": 0.0}, "march.step"), ({"refine": 0}, "march.refine"),
                      ({"refine_tau": 0.0}, "march.refine_tau"), ({"min_transmittance": 1.0}, "march.min_transmittance"),
                      ({"interpolate": "cubic"}, "march.interpolate")):
        with pytest.raises(ConfigError, match=field):
            MarchConfig(**kw)
    m, plane, vol, o, d = soft
    with pytest.raises(ValueError, match="rays are origins"):
        render_marched(m, plane, vol, o[0], d[0])
    with pytest.raises(ValueError, match="rays are origins"):
        render_marched(m, plane, vol, o, d[:, :5])
    with pytest.raises(ValueError, match="baked volume"):
        render_marched(m, plane, BakedVolume(vol.grid, vol.sigma[:, :4]), o, d)
    # the pre-activation needs the model's softplus density field
    m, plane, vol, o, d = scene
    with pytest.raises(ConfigError, match="march.interpolate"):
        render_marched(m, plane, vol, o, d)
    t0, t1, _ = ray_box_interval(o, d, m.cfg.grid.lower, m.cfg.grid.upper, m.cfg.near, m.cfg.far)
    with pytest.raises(ValueError, match="softplus_scale"):
        march_rays(vol, o, d, t0, t1, softplus_scale=0.0)


def test_marching_keeps_torchs_thread_count_in_a_fresh_process():
    """numba's first thread call starts its OpenMP pool, which resets the OpenMP thread count torch
    shares (numba/numba#9387): without care a "one thread" run then bakes and marches on every core.
    In a fresh process (where that first call happens) torch keeps its count."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "torch.randn(100000).exp()\n"  # a parallel torch op: torch's OpenMP region runs first, as in a sweep
        "from genesis_drive.models.lidar.bake import BakedVolume\n"
        "from genesis_drive.models.lidar.march import march_rays\n"
        "from genesis_drive.models.lidar.voxel import BEVGrid\n"
        "g = BEVGrid(x_range=(-4.0, 4.0), y_range=(-4.0, 4.0), z_range=(-2.0, 2.0), resolution=0.5, height_bins=8)\n"
        "o, d = torch.zeros(1, 4, 3), torch.nn.functional.normalize(torch.randn(1, 4, 3), dim=-1)\n"
        "march_rays(BakedVolume(g, torch.rand(1, *g.shape)), o, d, torch.zeros(1, 4), torch.full((1, 4), 3.0))\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1"
