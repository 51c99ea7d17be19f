"""BEV-histogram MMD and JSD: histogram geometry, identical vs shifted sets, the two kernel norms."""

import numpy as np
import pytest
import torch

from genesis_drive.eval.lidar_gen import (
    BEVHistogramMetrics,
    bev_histogram,
    js_distance,
    kernel_matrix,
)


def sweep(rng, shift=(0.0, 0.0), n=400):
    """A ring of returns at 10-30 m around the sensor, optionally shifted (metres)."""
    r = rng.uniform(10, 30, n)
    a = rng.uniform(-np.pi, np.pi, n)
    pts = np.stack([r * np.cos(a) + shift[0], r * np.sin(a) + shift[1], rng.normal(0, 1, n)], 1)
    return pts


def test_histogram_cells():
    pts = np.array([[0.1, 0.1, 5.0], [-79.9, -79.9, 0], [79.9, 0.5, 0], [100.0, 0, 0], [0, -80.5, 0]])
    h = bev_histogram(pts)  # 160 m field, 100 x 100 cells of 1.6 m
    assert h.shape == (100, 100) and h.sum() == 3  # two points outside the field are dropped
    assert h[50, 50] == 1 and h[0, 0] == 1 and h[99, 50] == 1


def test_identical_sets_score_zero_shifted_sets_do_not():
    rng = np.random.default_rng(0)
    ref = [sweep(rng) for _ in range(6)]
    same = BEVHistogramMetrics()
    for p in ref:
        same.update(p, real=True)
        same.update(p)
    v = same.compute()
    assert float(v["MMD"]) == pytest.approx(0.0, abs=1e-15) and float(v["JSD_distance"]) == pytest.approx(0.0, abs=1e-7)

    def score(shift):
        m = BEVHistogramMetrics()
        r = np.random.default_rng(1)
        for p in ref:
            m.update(p, real=True)
        for _ in range(6):
            m.update(sweep(r, shift))
        return {k: float(x) for k, x in m.compute().items()}

    fresh, moved = score((0.0, 0.0)), score((25.0, 0.0))
    assert 0 < fresh["MMD"] < moved["MMD"]
    assert 0 < fresh["JSD_distance"] < moved["JSD_distance"]
    assert moved["JS_divergence"] == pytest.approx(moved["JSD_distance"] ** 2)


def test_js_distance_of_disjoint_histograms_is_sqrt_ln2():
    p, q = np.array([[3.0, 0.0]]), np.array([[0.0, 5.0]])
    assert js_distance(p, q) == pytest.approx(np.sqrt(np.log(2)))  # natural log, distance (not divergence)


def test_kernel_norms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 4, 5, generator=g, dtype=torch.float64), torch.rand(2, 4, 5, generator=g, dtype=torch.float64)
    spec = kernel_matrix(a, b, sigma=0.5, norm="spectral")
    frob = kernel_matrix(a, b, sigma=0.5, norm="frobenius")
    for i in range(3):
        for j in range(2):
            d = (a[i] - b[j]).numpy()
            assert spec[i, j] == pytest.approx(np.exp(-np.linalg.norm(d, 2) ** 2 / 0.5), rel=1e-5)  # LiDARGen: largest singular value (float32)
            assert frob[i, j] == pytest.approx(np.exp(-np.sum(d * d) / 0.5))
    # with itself: symmetric, ones on the diagonal, the same values as the two-argument form
    self_k = kernel_matrix(a, None, sigma=0.5, norm="spectral")
    torch.testing.assert_close(self_k, kernel_matrix(a, a.clone(), sigma=0.5, norm="spectral"), rtol=1e-6, atol=1e-9)
    assert torch.equal(self_k, self_k.T) and torch.all(self_k.diagonal() == 1)
    with pytest.raises(ValueError, match="norm"):
        kernel_matrix(a, b, norm="l1")


def test_bootstrap_and_empty_sweeps():
    rng = np.random.default_rng(3)
    m = BEVHistogramMetrics(norm="frobenius")
    for _ in range(8):
        m.update(sweep(rng), real=True)
        m.update(sweep(rng, (5.0, 0.0)))
    cis = m.bootstrap(num_resamples=100, seed=0)
    v = m.compute()
    for k in ("MMD", "JSD_distance", "JS_divergence"):
        assert cis[k].value == pytest.approx(float(v[k]))
        assert cis[k].low <= cis[k].value <= cis[k].high
    assert cis == m.bootstrap(num_resamples=100, seed=0)
    bad = BEVHistogramMetrics()
    bad.update(np.array([[500.0, 0, 0]]))
    bad.update(sweep(rng), real=True)
    with pytest.raises(ValueError, match="no points inside the BEV field"):
        bad.compute()
