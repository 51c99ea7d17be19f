"""The LiDAR BEV autoencoder: codec shapes and normalisation, KL, determinism under a seed, chunked
rendering, gradients to every part, presets, and the loss falling when overfitting one synthetic sweep."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.codec import LatentCodec
from genesis_drive.models.codec import kl_divergence
from genesis_drive.models.lidar.ae import PRESETS, LidarAE, LidarAEConfig, height_embedding
from genesis_drive.models.lidar.loss import LidarAELossWeights, lidar_ae_loss
from genesis_drive.models.lidar.render import ray_box_interval
from genesis_drive.models.lidar.voxel import BEVGrid, sample_plane, voxelize

from .scenes import GRID, analytic_depth, beam_rays, surface_points

#: 64 x 64 x 10 grid, 4x down to a 4 x 16 x 16 latent, ~60 k weights.
SMALL = LidarAEConfig(grid=GRID, widths=(16, 16, 32), latent_channels=4, hidden=16, drop_channels=4, drop_hidden=8,
                      n_proposal=32, n_fine=(16, 16), far=40.0)


def make(cfg: LidarAEConfig = SMALL, seed: int = 0) -> LidarAE:
    torch.manual_seed(seed)
    return LidarAE(cfg)


@pytest.fixture(scope="module")
def sweep():
    """One synthetic sweep of the analytic scene: occupancy, rays, target depth, returned mask."""
    occ = voxelize(GRID, surface_points())
    o, d = beam_rays(16, 64)
    gt = analytic_depth(o, d)
    _, t1, _ = ray_box_interval(o, d, GRID.lower, GRID.upper, SMALL.near, SMALL.far)
    returned = gt < t1
    return occ, o, d, torch.where(returned, gt, torch.zeros_like(gt)), returned


def test_is_a_codec_with_the_documented_shapes(sweep):
    occ = sweep[0]
    m = make()
    assert isinstance(m, LatentCodec)
    assert m.latent_shape((10, 64, 64)) == (4, 16, 16)
    z = m.encode(occ)
    assert z.shape == (1, 4, 16, 16)
    plane = m.decode(z)
    assert plane.shape == (1, SMALL.plane_channels, 64, 64) and SMALL.plane_channels == 16 + 10 + 4
    parts = m.split(plane)
    assert parts.density.shape[1] == 16 and parts.occupancy.shape[1] == 10 and parts.drop.shape[1] == 4
    with pytest.raises(ValueError, match="occupancy grid"):
        m.latent_shape((10, 32, 64))
    with pytest.raises(ValueError, match="latents"):
        m.decode(torch.zeros(1, 4, 8, 8))


def test_normalisation_round_trip(sweep):
    occ = sweep[0]
    m = make(dataclasses.replace(SMALL, scaling_factor=2.5, shift_factor=0.3))
    raw = m.encode_raw(occ)
    assert torch.allclose(m.encode(occ), (raw - 0.3) * 2.5)
    assert torch.allclose(m.decode(m.encode(occ)), m.decode_raw(raw), atol=1e-5)


def test_kl_values(sweep):
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0
    assert kl_divergence(torch.full((2,), 2.0), torch.zeros(2)).item() == pytest.approx(2.0)  # mean^2 / 2
    mean, logvar = make().moments(sweep[0])
    assert (logvar - SMALL.init_logvar).abs().mean() < 0.5  # small std at the start
    assert kl_divergence(mean, logvar).item() > 0


def test_determinism_under_a_seed(sweep):
    occ, o, d = sweep[:3]
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    assert a.version == b.version != c.version
    za = a.encode(occ, sample=True, generator=torch.Generator().manual_seed(3))
    zb = b.encode(occ, sample=True, generator=torch.Generator().manual_seed(3))
    zc = a.encode(occ, sample=True, generator=torch.Generator().manual_seed(4))
    assert torch.equal(za, zb) and not torch.equal(za, zc)
    assert torch.equal(a.encode(occ), a.encode(occ))  # the posterior mean draws nothing
    da, pa = a.render_latent(za, o, d)
    db, pb = b.render_latent(zb, o, d)
    assert torch.equal(da, db) and torch.equal(pa, pb)


def test_render_outputs_and_chunks(sweep):
    occ, o, d = sweep[:3]
    m = make().eval()
    with torch.no_grad():
        plane = m.decode(m.encode(occ))
        whole = m.render(plane, o, d)
        parts = m.render(plane, o, d, chunk=100)
        depth, p_drop = m.render_latent(m.encode(occ), o, d)
    assert whole.depth.shape == (1, 1024) and whole.fine.weights.shape == (1, 1024, 16)
    assert torch.allclose(whole.depth, parts.depth, atol=1e-5)
    assert torch.allclose(whole.drop_logit, parts.drop_logit, atol=1e-5)
    assert torch.allclose(depth, whole.depth, atol=1e-5)
    assert torch.all((p_drop > 0) & (p_drop < 1))
    assert torch.all(depth >= SMALL.near - 1e-4) and torch.all(depth <= whole.t_far + 1e-4)
    with pytest.raises(ValueError, match="rays"):
        m.render(plane, o[0], d[0])


def test_density_field_is_the_per_point_mlp():
    """The channels-first batched products equal the nn.Linear layers applied to each sampled point
    (with and without gradients), and the height embedding makes the density depend on z."""
    m = make(dataclasses.replace(SMALL, density_layers=2))
    field = m.density
    g = torch.Generator().manual_seed(0)
    plane = torch.randn(2, SMALL.hidden, 64, 64, generator=g)
    pts = (torch.rand(2, 5, 7, 3, generator=g) - 0.5) * torch.tensor([30.0, 30.0, 4.5])
    f = sample_plane(GRID, plane, pts)
    h = torch.nn.functional.silu(f + field.height(height_embedding(pts[..., 2], GRID.z_range, SMALL.height_freqs)))
    for layer in field.layers:
        h = torch.nn.functional.silu(layer(h))
    ref = SMALL.density_scale * torch.nn.functional.softplus(field.out(h).squeeze(-1))
    got = field(plane, pts)
    with torch.no_grad():
        got_ng = field(plane, pts)
    assert got.shape == (2, 5, 7)
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-6) and torch.allclose(got_ng, ref, rtol=1e-5, atol=1e-6)
    lifted = pts + torch.tensor([0.0, 0.0, 0.4])
    assert not torch.allclose(field(plane, lifted), got)


def test_batched_render_equals_one_by_one(sweep):
    occ, o, d = sweep[:3]
    m = make().eval()
    shifted = torch.roll(occ, shifts=7, dims=-1)  # another scene: the box moved along y
    o2 = o + torch.tensor([1.5, -0.5, 0.2])  # rays from another sensor position
    with torch.no_grad():
        z = m.encode(torch.cat((occ, shifted)))
        both = m.render(m.decode(z), torch.cat((o, o2)), torch.cat((d, d)))
        first = m.render(m.decode(z[:1]), o, d)
        second = m.render(m.decode(z[1:]), o2, d)
    assert torch.allclose(both.depth[0], first.depth[0], atol=1e-4)
    assert torch.allclose(both.depth[1], second.depth[0], atol=1e-4)
    assert torch.allclose(both.drop_logit[1], second.drop_logit[0], atol=1e-4)
    assert not torch.allclose(both.depth[0], both.depth[1], atol=1e-3)


def test_gradients_reach_every_part(sweep):
    occ, o, d, depth, returned = sweep
    m = make()
    out = m(occ, o, d, generator=torch.Generator().manual_seed(0))
    loss, _ = lidar_ae_loss(out, occ, depth, returned, LidarAELossWeights(), SMALL.far)
    loss.backward()
    for name in ("encoder", "decoder", "density", "drop"):
        grads = [p.grad for p in getattr(m, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name


def test_loss_falls_when_overfitting_one_sweep(sweep):
    occ, o, d, depth, returned = sweep
    m = make()
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    weights = LidarAELossWeights()
    history = []
    for step in range(40):
        out = m(occ, o, d, generator=torch.Generator().manual_seed(step))
        loss, terms = lidar_ae_loss(out, occ, depth, returned, weights, SMALL.far)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"loss": loss.item(), **{k: v.item() for k, v in terms.items()}})
    first, last = history[0], history[-1]
    assert last["loss"] < 0.3 * first["loss"]
    assert last["depth_l1"] < 0.4 * first["depth_l1"]
    assert last["occupancy_bce"] < 0.3 * first["occupancy_bce"]
    assert last["drop_bce"] < first["drop_bce"]


def test_presets():
    t, p = PRESETS["tiny"](), PRESETS["paper"]()
    assert t.grid.shape == (16, 128, 128) and t.grid.x_range == (-32.0, 32.0) and t.grid.resolution == 0.5
    assert p.grid.x_range == (-51.2, 51.2) and p.grid.y_range == (-51.2, 51.2)
    n_tiny = sum(x.numel() for x in LidarAE(t).parameters())
    assert 1e5 < n_tiny < 3e6
    assert LidarAE(t).latent_shape(t.grid.shape) == (8, 32, 32)  # 4x down: 2 x 2 m per latent cell


@pytest.mark.parametrize("kw", [{"widths": (16, 16, 16, 16, 16, 16, 16, 16)}, {"near": 50.0, "far": 40.0},
                                {"n_fine": (16, 0)}, {"n_fine": ()}, {"floor": 0.0}, {"decoder_widths": (16, 16)}])
def test_bad_config_raises(kw):
    with pytest.raises(ConfigError):
        dataclasses.replace(SMALL, **kw)


def test_grid_must_divide_by_down_factor():
    with pytest.raises(ConfigError, match="divisible"):
        LidarAEConfig(grid=BEVGrid(x_range=(-5.0, 5.0), y_range=(-5.0, 5.0), resolution=0.5), widths=(8, 8, 8, 8))
