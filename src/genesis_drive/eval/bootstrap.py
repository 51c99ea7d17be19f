"""Seeded bootstrap confidence intervals over samples.

A metric is a function of a set of samples; the bootstrap redraws that set with replacement
(``num_resamples`` times, seeded) and recomputes the metric. ``statistic`` receives the drawn
sample *indices*, so a metric can precompute whatever does not depend on the draw (reference
statistics, kernel matrices) once. With ``groups`` the draw is over groups (e.g. all frames of
one clip together) and every member of a drawn group is included.

Interval methods:

- ``"percentile"``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the redraws; right
  for statistics whose redraws centre on the estimate (means: Chamfer).
- ``"normal"``: ``value +- z * std`` of the redraws. Fréchet distance, the V-statistic MMD and JSD
  are plug-in estimates biased upward at finite n, and a redraw with repeated samples has fewer
  distinct ones, so their redraws sit *above* the estimate and a percentile interval can exclude
  it. The normal interval keeps the spread (what decides whether two models' numbers at the same
  n differ beyond sampling noise) around the reported value; the shift is reported as ``bias``.
- ``"basic"``: ``2 value - quantiles``, the bias-corrected interval for the population value.

``value`` is always the statistic on the full sample (the number papers report); ``bias`` is the
mean of the redraws minus it. ``lower_bound`` clips intervals of non-negative statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats
from tqdm import tqdm

__all__ = ["BootstrapCI", "bootstrap_ci"]


@dataclass(frozen=True)
class BootstrapCI:
    """A metric value with its percentile bootstrap interval."""

    value: float
    low: float
    high: float
    std: float
    level: float
    num_resamples: int
    seed: int
    method: str = "percentile"
    bias: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    num_items: int,
    *,
    groups: np.ndarray | None = None,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    method: str = "percentile",
    lower_bound: float | None = None,
    progress: str | None = None,
) -> BootstrapCI:
    """Bootstrap interval of ``statistic(indices)`` over ``num_items`` samples.

    groups: optional (num_items,) labels; resampling draws whole groups with replacement.
    method: ``"percentile"``, ``"normal"`` or ``"basic"`` (module docstring).
    lower_bound: clip the interval below (e.g. 0 for distances).
    progress: a tqdm description to show a progress bar (``None`` for none).
    """
    if method not in ("percentile", "normal", "basic"):
        raise ValueError(f"method must be 'percentile', 'normal' or 'basic', got {method!r}")
    if num_items < 1:
        raise ValueError("bootstrap needs at least one sample")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if num_resamples < 2:
        raise ValueError(f"num_resamples must be >= 2, got {num_resamples}")
    full = np.arange(num_items)
    value = float(statistic(full))
    rng = np.random.default_rng(seed)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (num_items,):
            raise ValueError(f"groups must have shape ({num_items},), got {groups.shape}")
        _, inverse = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    draws = np.empty(num_resamples, dtype=np.float64)
    for r in tqdm(range(num_resamples), desc=progress, disable=progress is None, leave=False):
        if groups is None:
            idx = rng.integers(0, num_items, size=num_items)
        else:
            picked = rng.integers(0, len(members), size=len(members))
            idx = np.concatenate([members[g] for g in picked])
        draws[r] = statistic(idx)
    alpha = (1 - level) / 2
    std = float(draws.std(ddof=1))
    q_low, q_high = (float(q) for q in np.quantile(draws, [alpha, 1 - alpha]))
    if method == "percentile":
        low, high = q_low, q_high
    elif method == "basic":
        low, high = 2 * value - q_high, 2 * value - q_low
    else:
        z = float(scipy.stats.norm.ppf(1 - alpha))
        low, high = value - z * std, value + z * std
    if lower_bound is not None:
        low, high = max(low, lower_bound), max(high, lower_bound)
    return BootstrapCI(value, low, high, std, level, num_resamples, seed, method, float(draws.mean()) - value)
