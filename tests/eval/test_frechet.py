"""Fréchet distance: closed forms, the two implementations against each other, FD(x, x) = 0."""

import numpy as np
import pytest
import scipy.linalg
import torch

from genesis_drive.eval.frechet import (
    GaussianStats,
    frechet_distance,
    frechet_distance_eigh,
    frechet_distance_sqrtm,
    psd_factor,
    trace_sqrt_product,
    trace_sqrt_product_features,
)

METHODS = (frechet_distance_eigh, frechet_distance_sqrtm)


def random_spd(d, rng, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d + (0 if rank else 1e-3 * np.eye(d))


@pytest.mark.parametrize("fd", METHODS)
def test_closed_form_diagonal(fd):
    # W2^2 between diagonal Gaussians: |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fd(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(7.25 + 4 + 1)


@pytest.mark.parametrize("fd", METHODS)
def test_closed_form_commuting(fd):
    # same eigenbasis, different spectra: sum (sqrt(l1) - sqrt(l2))^2 in the trace term
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    l1, l2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    c1, c2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
    mu = rng.normal(size=6)
    assert fd(mu, c1, mu, c2) == pytest.approx(np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2), rel=1e-9)


def test_eigh_matches_scipy_sqrtm_on_random_spd():
    rng = np.random.default_rng(0)
    for d in (5, 64):
        c1, c2 = random_spd(d, rng), random_spd(d, rng)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        ref = np.trace(c1) + np.trace(c2) - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real) + np.sum((m1 - m2) ** 2)
        assert frechet_distance_eigh(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-8)
        assert frechet_distance_sqrtm(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-8)


def test_rank_deficient_covariances_agree():
    rng = np.random.default_rng(3)
    c1, c2 = random_spd(20, rng, rank=5), random_spd(20, rng, rank=7)
    m = np.zeros(20)
    assert frechet_distance_eigh(m, c1, m, c2) == pytest.approx(frechet_distance_sqrtm(m, c1, m, c2), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fd_of_a_set_with_itself_is_zero(method):
    x = torch.randn(300, 32, generator=torch.Generator().manual_seed(0))
    s = GaussianStats.from_features(x)
    assert abs(frechet_distance(s, s, method)) < 1e-8


def test_sample_estimate_approaches_population_value():
    rng = np.random.default_rng(5)
    d = 4
    c1, c2 = random_spd(d, rng), random_spd(d, rng)
    m1, m2 = np.zeros(d), np.full(d, 0.5)
    truth = frechet_distance_eigh(m1, c1, m2, c2)
    x = rng.multivariate_normal(m1, c1, size=200_000)
    y = rng.multivariate_normal(m2, c2, size=200_000)
    est = frechet_distance(GaussianStats.from_features(x), GaussianStats.from_features(y))
    assert est == pytest.approx(truth, rel=0.02, abs=2e-3)


def test_stats_from_sums_equal_numpy_cov():
    x = np.random.default_rng(2).normal(size=(50, 7)) * 3 + 1
    t = torch.from_numpy(x)
    s = GaussianStats.from_sums(t.sum(0), t.T @ t, 50)
    np.testing.assert_allclose(s.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.cov.numpy(), np.cov(x, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(GaussianStats.from_features(x).cov.numpy(), np.cov(x, rowvar=False), rtol=1e-10)


@pytest.mark.parametrize("n", [10, 80])
def test_feature_form_of_the_trace_equals_the_covariance_form(n):
    g = torch.Generator().manual_seed(n)
    d = 40
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    c1 = a @ a.T / d
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    xc = x - x.mean(0)
    c2 = xc.T @ xc / (n - 1)
    expected = np.trace(scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real)
    assert float(trace_sqrt_product_features(c1, xc)) == pytest.approx(expected, rel=1e-7)  # (n, n) form for n < d
    assert float(trace_sqrt_product(c1, c2)) == pytest.approx(expected, rel=1e-7)
    # singular first argument (n < d): factor from the eigendecomposition
    assert float(trace_sqrt_product(c2, c1)) == pytest.approx(expected, rel=1e-6)


def test_psd_factor_for_definite_and_singular_matrices():
    rng = np.random.default_rng(4)
    for c in (random_spd(12, rng), random_spd(12, rng, rank=4)):
        c = torch.from_numpy(c)
        f = psd_factor(c)
        torch.testing.assert_close(f @ f.T, c, rtol=1e-9, atol=1e-10)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="d, d"):
        frechet_distance_eigh(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="at least 2"):
        GaussianStats.from_features(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(GaussianStats.from_features(np.random.rand(5, 3)), GaussianStats.from_features(np.random.rand(5, 2)))
    with pytest.raises(ValueError, match="method"):
        s = GaussianStats.from_features(np.random.rand(5, 3))
        frechet_distance(s, s, "svd")
    # a matrix with large negative eigenvalues makes sqrtm complex: refused, not silently truncated
    bad = -np.eye(3) * 4
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance_sqrtm(np.zeros(3), np.eye(3), np.zeros(3), bad)
