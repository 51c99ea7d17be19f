"""Flow-matching functions: path, target, time sampling, masked loss, noisy-latent helper."""

import pytest
import torch

from genesis_drive.diffusion import flow
from genesis_drive.errors import ConfigError


def test_path_endpoints_and_target_is_derivative():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 2, 4, generator=g), torch.randn(3, 2, 4, generator=g)
    assert torch.equal(flow.add_noise(x0, noise, 0.0), x0)
    assert torch.equal(flow.add_noise(x0, noise, 1.0), noise)
    t = torch.tensor([0.1, 0.5, 0.9])
    h = 1e-3
    fd = (flow.add_noise(x0, noise, t + h) - flow.add_noise(x0, noise, t - h)) / (2 * h)
    torch.testing.assert_close(fd, flow.velocity_target(x0, noise), atol=1e-3, rtol=1e-3)
    # per-sample times broadcast over the other axes
    xt = flow.add_noise(x0, noise, t)
    torch.testing.assert_close(xt[1], 0.5 * x0[1] + 0.5 * noise[1])


def test_time_sampling_distributions():
    g = torch.Generator().manual_seed(1)
    u = flow.sample_time_uniform(20000, generator=g)
    assert 0 <= u.min() and u.max() <= 1 and abs(u.mean() - 0.5) < 0.01
    ln = flow.sample_time_logit_normal(20000, mean=0.5, std=1.0, generator=g)
    logit = torch.log(ln / (1 - ln))
    assert abs(logit.mean() - 0.5) < 0.03 and abs(logit.std() - 1.0) < 0.03
    # shift: identity at 1, endpoints fixed, monotone, s=3 at t=0.5 -> 0.75
    t = torch.linspace(0, 1, 11)
    torch.testing.assert_close(flow.shift_time(t, 1.0), t)
    st = flow.shift_time(t, 3.0)
    assert st[0] == 0 and st[-1] == 1 and (st.diff() > 0).all()
    assert abs(float(flow.shift_time(torch.tensor(0.5), 3.0)) - 0.75) < 1e-6
    assert flow.resolution_shift(1024, 256) == 2.0
    # same seed, same times; shifted sampling moves mass towards noise
    a = flow.sample_time(100, shift=3.0, generator=torch.Generator().manual_seed(5))
    b = flow.sample_time(100, shift=3.0, generator=torch.Generator().manual_seed(5))
    c = flow.sample_time(100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.mean() > c.mean()
    with pytest.raises(ConfigError):
        flow.sample_time(4, kind="cosine")


def test_masked_loss_is_mean_over_unmasked():
    pred = torch.zeros(2, 1, 3, 2, 2)
    target = torch.ones(2, 1, 3, 2, 2)
    target[:, :, 0] = 5.0  # the clean conditioning frame: huge error, masked out
    mask = torch.ones(2, 1, 3, 1, 1, dtype=torch.bool)
    mask[:, :, 0] = False
    assert flow.flow_loss(pred, target, mask).item() == pytest.approx(1.0)
    assert flow.flow_loss(pred, target).item() == pytest.approx((25 + 1 + 1) / 3)
    elem = torch.zeros_like(target, dtype=torch.bool)
    elem[0, 0, 1, 0, 0] = True
    assert flow.flow_loss(pred, target, elem).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        flow.flow_loss(pred, target, torch.zeros_like(mask))


def test_noise_to_strength():
    x0 = torch.full((2, 3), 4.0)
    x, t = flow.noise_to_strength(x0, 0.0, generator=torch.Generator().manual_seed(0))
    assert t == 0.0 and torch.equal(x, x0)
    x, t = flow.noise_to_strength(torch.zeros(20000), 0.6, generator=torch.Generator().manual_seed(0))
    assert t == 0.6 and abs(x.std() - 0.6) < 0.02
    x, _ = flow.noise_to_strength(x0, 0.25, generator=torch.Generator().manual_seed(3))
    y, _ = flow.noise_to_strength(x0, 0.25, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, y)
    with pytest.raises(ConfigError):
        flow.noise_to_strength(x0, 1.5)
