"""Fréchet distance as a torchmetrics ``Metric``: FID_multi, FVD_multi, FD_synth are instances of it.

``update(x, real)`` runs the pluggable feature extractor (any ``nn.Module`` mapping a batch to
``(b, d)`` features; ``None`` means ``x`` already holds features) and accumulates, per set,
``sum x`` (d,), ``sum x x^T`` (d, d) and the count in float64 — states that sum across ranks, so
the metric is distributed-safe under torchmetrics' sync. With ``keep_features`` the generated
features are also kept (concatenated across ranks) for the bootstrap.

The reference side comes either from ``update(..., real=True)`` or from fixed statistics set with
:meth:`set_reference` (typically loaded from a :mod:`~genesis_drive.eval.reference_cache` file).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .bootstrap import BootstrapCI, bootstrap_ci
from .frechet import (
    GaussianStats,
    frechet_distance,
    psd_factor,
    trace_sqrt_product,
    trace_sqrt_product_features,
)
from .states import is_empty

__all__ = ["FrechetDistance"]


class FrechetDistance(Metric):
    """Fréchet distance between generated and reference features.

    extractor: module mapping an input batch to ``(b, d)``; ``None`` to pass features directly.
    num_features: ``d``; read from ``extractor.num_features`` when omitted.
    name: the name reports use (``"FID_multi"``, ``"FVD_multi"``, ``"FD_synth"`` ...).
    method: ``"eigh"`` (torch) or ``"sqrtm"`` (scipy) for :meth:`compute`.
    keep_features: keep generated features for :meth:`bootstrap` (float32, ``4 d`` bytes per sample).
    identity: JSON-able description of the feature network and its preprocessing (weights SHA-256,
        resize ...); part of the reference-cache key, recorded in reports.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        extractor: nn.Module | None = None,
        num_features: int | None = None,
        *,
        name: str = "FD",
        method: str = "eigh",
        keep_features: bool = True,
        identity: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_features is None:
            if extractor is None or not hasattr(extractor, "num_features"):
                raise ValueError("pass num_features, or an extractor with a num_features attribute")
            num_features = int(extractor.num_features)
        if method not in ("eigh", "sqrtm"):
            raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
        self.extractor = extractor
        if extractor is not None:
            extractor.eval()
            extractor.requires_grad_(False)
        self.num_features = d = int(num_features)
        self.name, self.method, self.keep_features = name, method, keep_features
        self.identity = dict(identity or {})
        self.reference: GaussianStats | None = None
        for side in ("gen", "ref"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        if keep_features:
            self.add_state("gen_features", [], dist_reduce_fx="cat")
            self.add_state("gen_groups", [], dist_reduce_fx="cat")

    # -- accumulation ----------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, d)`` float64 features of an input batch."""
        f = self.extractor(x) if self.extractor is not None else torch.as_tensor(x)
        if f.ndim != 2 or f.shape[1] != self.num_features:
            raise ValueError(f"{self.name}: features must be (b, {self.num_features}), got {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError(f"{self.name}: the feature extractor returned NaN or inf")
        return f.detach().to(torch.float64)

    def update(self, x: torch.Tensor, real: bool = False, groups: torch.Tensor | None = None) -> None:
        """Add a batch of generated (``real=False``) or reference (``real=True``) inputs.

        groups: optional ``(b,)`` non-negative int64 ids of the unit the bootstrap resamples (e.g. a
        hash of the clip id, so all frames and views of a clip are drawn together); without them
        every sample is its own unit.
        """
        f = self.features(x).to(self.gen_sum.device)
        side = "ref" if real else "gen"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + f.shape[0])
        if not real and self.keep_features:
            if groups is None:
                g = torch.full((f.shape[0],), -1, dtype=torch.int64)
            else:
                g = torch.as_tensor(groups, dtype=torch.int64).reshape(-1)
                if g.shape[0] != f.shape[0] or (g < 0).any():
                    raise ValueError(f"{self.name}: groups must be ({f.shape[0]},) non-negative ids, got {tuple(g.shape)}")
            self.gen_features.append(f.float())
            self.gen_groups.append(g.to(f.device))

    def set_reference(self, stats: GaussianStats | None) -> None:
        """Use fixed reference statistics (e.g. from a cache file) instead of accumulated reference inputs."""
        if stats is not None and stats.dim != self.num_features:
            raise ValueError(f"{self.name}: reference statistics have d={stats.dim}, the metric d={self.num_features}")
        self.reference = stats

    # -- statistics ------------------------------------------------------------------------------
    def _stats(self, side: str) -> GaussianStats:
        n = int(getattr(self, f"{side}_count"))
        if n < 2:
            what = "generated" if side == "gen" else "reference"
            raise ValueError(f"{self.name}: {n} {what} samples; at least 2 are needed")
        return GaussianStats.from_sums(getattr(self, f"{side}_sum"), getattr(self, f"{side}_outer"), n)

    def _reference_unsynced(self) -> GaussianStats:
        return self.reference if self.reference is not None else self._stats("ref")

    def generated_stats(self) -> GaussianStats:
        """Generated-set statistics (synced across ranks)."""
        with self.sync_context(should_unsync=True):
            return self._stats("gen")

    def reference_stats(self) -> GaussianStats:
        """Reference statistics: the fixed ones, else those accumulated (synced across ranks)."""
        if self.reference is not None:
            return self.reference
        with self.sync_context(should_unsync=True):
            return self._stats("ref")

    def _gen_features(self) -> tuple[torch.Tensor, np.ndarray]:
        """Kept generated features (n, d) float32 (where the states live) and their bootstrap unit ids (n,)."""
        if is_empty(self.gen_features):
            raise ValueError(f"{self.name}: no generated samples")
        feats = dim_zero_cat(self.gen_features)
        groups = dim_zero_cat(self.gen_groups).cpu().numpy()
        own = groups < 0  # samples without a group id are their own unit
        return feats, np.where(own, groups.max(initial=0) + 1 + np.arange(len(groups)), groups)

    def _fd_from_draw(self, feats: torch.Tensor, idx: np.ndarray, ref: GaussianStats, factor: list, chunk: int = 65536) -> float:
        """FD of the generated features ``feats[idx]`` (with repeats) against fixed reference statistics.

        ``n < d``: the ``(n, n)`` form on the drawn rows. ``n >= d``: weighted sums over the stored
        rows in float64 chunks (no copy of the draw), then ``F^T C F`` with the reference factor
        ``F`` (computed once into ``factor``).
        """
        dev = feats.device
        ref_mean, ref_cov = ref.mean.to(dev), ref.cov.to(dev)
        n, d = len(idx), feats.shape[1]
        if n < d:
            x = feats[torch.from_numpy(idx).to(dev)].to(torch.float64)
            mu = x.mean(0)
            xc = x - mu
            tr_gen = float((xc * xc).sum()) / (n - 1)
            tsp = float(trace_sqrt_product_features(ref_cov, xc))
        else:
            if not factor:
                factor.append(psd_factor(ref_cov))
            w = torch.bincount(torch.from_numpy(idx).to(dev), minlength=feats.shape[0]).to(torch.float64)
            total = torch.zeros(d, dtype=torch.float64, device=dev)
            outer = torch.zeros(d, d, dtype=torch.float64, device=dev)
            for i in range(0, feats.shape[0], chunk):
                f, wc = feats[i : i + chunk].to(torch.float64), w[i : i + chunk]
                total += wc @ f
                outer += (f * wc[:, None]).T @ f
            mu = total / n
            cov = (outer - n * torch.outer(mu, mu)) / (n - 1)
            tr_gen = float(torch.trace(cov))
            tsp = float(trace_sqrt_product(ref_cov, cov, factor[0]))
        diff = mu - ref_mean
        return float(diff @ diff) + tr_gen + float(torch.trace(ref_cov)) - 2 * tsp

    def compute(self) -> torch.Tensor:
        """The Fréchet distance (float64).

        ``method="eigh"`` with kept features and fewer generated samples than dimensions uses the
        exact ``(n, n)`` form of :func:`~genesis_drive.eval.frechet.trace_sqrt_product_features`
        (the generated covariance is singular there); otherwise the covariances from the float64 sums.
        """
        gen, ref = self._stats("gen"), self._reference_unsynced()
        if self.method == "eigh" and self.keep_features and gen.count < self.num_features:
            feats, _ = self._gen_features()
            return torch.tensor(self._fd_from_draw(feats, np.arange(feats.shape[0]), ref, []), dtype=torch.float64)
        return torch.tensor(frechet_distance(gen, ref, self.method), dtype=torch.float64)

    # -- uncertainty -----------------------------------------------------------------------------
    def bootstrap(self, num_resamples: int = 100, level: float = 0.95, seed: int = 0, progress: bool = False, method: str = "normal") -> BootstrapCI:
        """Bootstrap over generated samples (or their groups); the reference statistics are held fixed.

        Each resample refits mean/covariance to the drawn features (weighted sums, no copy of the
        draw) and evaluates the trace term through a ``min(n, d)``-sized symmetric eigenproblem.
        method: interval method of :func:`~genesis_drive.eval.bootstrap.bootstrap_ci` (``"normal"``:
        FD is biased upward under redraws with repeated samples; see that module).
        """
        if not self.keep_features:
            raise ValueError(f"{self.name}: bootstrap needs keep_features=True")
        full = float(self.compute())  # synced, cached by torchmetrics until the next update
        with self.sync_context(should_unsync=True):
            feats, groups = self._gen_features()
            ref = self._reference_unsynced()
        factor: list[torch.Tensor] = []  # the reference factor, computed once if a draw has n >= d

        def statistic(idx: np.ndarray) -> float:
            return self._fd_from_draw(feats, idx, ref, factor)

        ci = bootstrap_ci(statistic, feats.shape[0], groups=groups, num_resamples=num_resamples, level=level, seed=seed,
                          method=method, lower_bound=0.0, progress=f"{self.name} bootstrap" if progress else None)  # fmt: skip
        # report the metric itself (float64 sums and the chosen sqrt method) as the value
        shift = full - ci.value
        if method == "normal":
            return replace(ci, value=full, low=max(ci.low + shift, 0.0), high=ci.high + shift, bias=ci.bias - shift)
        return replace(ci, value=full, bias=ci.bias - shift)
