"""Seeded percentile bootstrap: coverage, width, determinism, grouped resampling."""

import numpy as np
import pytest

from genesis_drive.eval.bootstrap import bootstrap_ci


def test_mean_interval_width_and_coverage():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=400)
    ci = bootstrap_ci(lambda idx: x[idx].mean(), len(x), num_resamples=2000, seed=1)
    assert ci.value == pytest.approx(x.mean())
    assert ci.low < 3.0 < ci.high
    # normal-theory 95 % half width: 1.96 * sd / sqrt(n)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert (ci.high - ci.low) / 2 == pytest.approx(half, rel=0.1)
    assert ci.std == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)), rel=0.1)


def test_seeded_determinism():
    x = np.random.default_rng(1).exponential(size=100)
    stat = lambda idx: float(np.median(x[idx]))
    a = bootstrap_ci(stat, 100, num_resamples=200, seed=7)
    b = bootstrap_ci(stat, 100, num_resamples=200, seed=7)
    c = bootstrap_ci(stat, 100, num_resamples=200, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)


def test_groups_are_drawn_whole():
    # 40 groups of 5 identical values: resampling groups is a bootstrap over 40 values (not 200),
    # so its spread is sqrt(5) times that of the item-level bootstrap.
    rng = np.random.default_rng(2)
    vals = np.repeat(rng.normal(size=40), 5)
    groups = np.repeat(np.arange(40), 5)
    stat = lambda idx: float(vals[idx].mean())
    flat = bootstrap_ci(stat, len(vals), num_resamples=1500, seed=0)
    grouped = bootstrap_ci(stat, len(vals), groups=groups, num_resamples=1500, seed=0)
    assert grouped.std / flat.std == pytest.approx(np.sqrt(5), rel=0.15)
    # each drawn index set consists of whole groups
    seen = []
    bootstrap_ci(lambda idx: seen.append(idx) or 0.0, len(vals), groups=groups, num_resamples=3, seed=0)
    for idx in seen[1:]:
        counts = np.bincount(groups[idx], minlength=40)
        assert np.all(counts % 5 == 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(lambda i: 0.0, 3, level=1.5)
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci(lambda i: 0.0, 3, groups=np.zeros(2))
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci(lambda i: 0.0, 0)


def test_interval_methods_and_bias():
    x = np.random.default_rng(4).normal(size=200)
    mean = lambda idx: float(x[idx].mean())
    p = bootstrap_ci(mean, 200, num_resamples=1000, seed=0)
    n = bootstrap_ci(mean, 200, num_resamples=1000, seed=0, method="normal")
    b = bootstrap_ci(mean, 200, num_resamples=1000, seed=0, method="basic")
    assert (b.low, b.high) == pytest.approx((2 * p.value - p.high, 2 * p.value - p.low))
    assert (n.low, n.high) == pytest.approx((p.value - 1.959964 * p.std, p.value + 1.959964 * p.std))
    assert n.high - n.low == pytest.approx(p.high - p.low, rel=0.1)  # symmetric statistic: methods agree
    assert abs(p.bias) < 0.2 * p.std
    # number of distinct samples: every redraw has fewer (about 63 %), a strongly biased statistic
    distinct = lambda idx: float(len(np.unique(idx)))
    d = bootstrap_ci(distinct, 200, num_resamples=300, seed=0)
    assert d.high < d.value  # the percentile interval misses the estimate ...
    dn = bootstrap_ci(distinct, 200, num_resamples=300, seed=0, method="normal")
    assert dn.low < dn.value < dn.high and dn.bias == pytest.approx(-0.37 * 200, rel=0.05)  # ... normal keeps it
    clipped = bootstrap_ci(lambda idx: float(x[idx].mean()) - 10, 200, num_resamples=50, lower_bound=0.0)
    assert clipped.low == 0.0 and clipped.high == 0.0
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(mean, 200, method="bca")
