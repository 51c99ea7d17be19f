"""Fréchet distance between Gaussians fitted to feature sets (the formula behind FID, FVD, FD_synth).

    FD = |mu_1 - mu_2|^2 + tr(C_1) + tr(C_2) - 2 tr((C_1 C_2)^(1/2))

Units are those of the features squared. Two implementations of the matrix-square-root trace:

- :func:`frechet_distance_sqrtm`: ``scipy.linalg.sqrtm`` of ``C_1 C_2`` (the pytorch-fid / TF-GAN
  reference formulation, float64 numpy);
- :func:`frechet_distance_eigh`: torch, float64, symmetric eigenvalues only:
  ``tr((C_1 C_2)^(1/2)) = sum sqrt(eig(F^T C_2 F))`` with ``C_1 = F F^T`` (Cholesky, or an
  eigendecomposition when ``C_1`` is singular); ``C_1 C_2`` and the symmetric PSD matrix
  ``F^T C_2 F`` share their non-zero eigenvalues. It runs on any torch device.

:class:`GaussianStats` holds ``mean (d,)``, ``cov (d, d)`` (unbiased, ``n - 1``) and the sample count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

__all__ = [
    "GaussianStats",
    "frechet_distance",
    "frechet_distance_eigh",
    "frechet_distance_sqrtm",
    "psd_factor",
    "trace_sqrt_product",
    "trace_sqrt_product_features",
]


@dataclass(frozen=True)
class GaussianStats:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of ``count`` feature vectors (float64, CPU)."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int

    def __post_init__(self) -> None:
        mean = torch.as_tensor(self.mean, dtype=torch.float64).detach().cpu()
        cov = torch.as_tensor(self.cov, dtype=torch.float64).detach().cpu()
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"GaussianStats needs mean (d,) and cov (d, d); got {tuple(mean.shape)} and {tuple(cov.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
            raise ValueError("GaussianStats mean/cov contain NaN or inf")
        if int(self.count) < 2:
            raise ValueError(f"GaussianStats needs at least 2 samples for a covariance, got {self.count}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "count", int(self.count))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @staticmethod
    def from_features(features: torch.Tensor | np.ndarray) -> GaussianStats:
        """Fit to features ``(n, d)``; covariance with ``n - 1`` (as ``numpy.cov``)."""
        x = torch.as_tensor(features).detach().to(torch.float64).cpu()
        if x.ndim != 2:
            raise ValueError(f"features must be (n, d), got {tuple(x.shape)}")
        if x.shape[0] < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {x.shape[0]}")
        return GaussianStats(x.mean(0), torch.cov(x.T, correction=1).reshape(x.shape[1], x.shape[1]), x.shape[0])

    @staticmethod
    def from_sums(total: torch.Tensor, outer: torch.Tensor, count: int | torch.Tensor) -> GaussianStats:
        """From running sums: ``total = sum x`` (d,), ``outer = sum x x^T`` (d, d), ``count = n``."""
        n = int(count)
        if n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
        total = total.detach().to(torch.float64).cpu()
        outer = outer.detach().to(torch.float64).cpu()
        mean = total / n
        cov = (outer - n * torch.outer(mean, mean)) / (n - 1)
        return GaussianStats(mean, (cov + cov.T) / 2, n)


def psd_factor(mat: torch.Tensor) -> torch.Tensor:
    """A factor ``F`` (d, k) with ``F F^T = mat`` for a symmetric PSD matrix.

    Cholesky when the matrix is positive definite (cheap, exact); otherwise the eigendecomposition
    ``V sqrt(max(w, 0))`` (rank-deficient covariances: fewer samples than dimensions).
    """
    sym = (mat + mat.T) / 2
    chol, info = torch.linalg.cholesky_ex(sym)
    if int(info) == 0:
        return chol
    w, v = torch.linalg.eigh(sym)
    return v * w.clamp_min(0).sqrt()


def _sum_sqrt_eigvals(sym: torch.Tensor) -> torch.Tensor:
    return torch.linalg.eigvalsh((sym + sym.T) / 2).clamp_min(0).sqrt().sum()


def trace_sqrt_product(cov1: torch.Tensor, cov2: torch.Tensor, factor1: torch.Tensor | None = None) -> torch.Tensor:
    """``tr((C_1 C_2)^(1/2))`` for PSD ``C_1, C_2`` (d, d): ``sum sqrt(eig(F^T C_2 F))`` with ``C_1 = F F^T``.

    ``C_1 C_2 = F (F^T C_2 F) F^{-1}`` (or, for singular ``C_1``, shares its non-zero eigenvalues
    with it), so only symmetric eigenvalues are needed. ``factor1`` may pass a precomputed ``F``.
    """
    f = psd_factor(cov1) if factor1 is None else factor1
    return _sum_sqrt_eigvals(f.T @ cov2 @ f)


def trace_sqrt_product_features(cov1: torch.Tensor, centered: torch.Tensor, factor1: torch.Tensor | None = None) -> torch.Tensor:
    """``tr((C_1 C_2)^(1/2))`` where ``C_2 = X^T X / (n - 1)`` for centred features ``X`` (n, d).

    ``X / sqrt(n - 1)`` transposed is a factor of ``C_2``: for ``n < d`` the eigenproblem is the
    ``(n, n)`` matrix ``X C_1 X^T / (n - 1)``; otherwise ``A^T A`` (d, d) with ``A = X F / sqrt(n - 1)``
    and ``C_1 = F F^T`` (``factor1``, computed when not given).
    """
    n, d = centered.shape
    if n < d:
        return _sum_sqrt_eigvals(centered @ cov1 @ centered.T / (n - 1))
    f = psd_factor(cov1) if factor1 is None else factor1
    a = centered @ f / (n - 1) ** 0.5
    return _sum_sqrt_eigvals(a.T @ a)


def frechet_distance_eigh(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance, torch float64 eigendecomposition (see module docstring)."""
    mu1, mu2, cov1, cov2 = (torch.as_tensor(a).to(torch.float64) for a in (mu1, mu2, cov1, cov2))
    _check_shapes(mu1, cov1, mu2, cov2)
    diff = mu1 - mu2
    # factor a positive definite covariance by Cholesky when there is one (the trace is symmetric
    # in C_1, C_2); eigendecomposition only when both are singular
    chol1, info = torch.linalg.cholesky_ex((cov1 + cov1.T) / 2)
    tsp = trace_sqrt_product(cov1, cov2, chol1) if int(info) == 0 else trace_sqrt_product(cov2, cov1)
    tr = torch.trace(cov1) + torch.trace(cov2) - 2 * tsp
    return float(diff @ diff + tr)


def frechet_distance_sqrtm(mu1, cov1, mu2, cov2, eps: float = 1e-6) -> float:
    """Fréchet distance with ``scipy.linalg.sqrtm(C_1 C_2)`` (float64 numpy).

    As in the reference implementations: when the square root is not finite (singular product),
    ``eps * I`` is added to both covariances and it is recomputed; an imaginary part larger than
    1e-3 (relative to the largest entry) raises ``ValueError`` instead of being dropped silently.
    """
    mu1, mu2, cov1, cov2 = (np.asarray(torch.as_tensor(a).to(torch.float64).cpu().numpy()) for a in (mu1, mu2, cov1, cov2))
    _check_shapes(mu1, cov1, mu2, cov2)
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        scale = max(np.abs(covmean).max(), 1e-12)
        if np.abs(covmean.imag).max() / scale > 1e-3:
            raise ValueError(f"sqrtm(C1 C2) has a large imaginary part ({np.abs(covmean.imag).max():.3g}); covariances not PSD?")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))


def frechet_distance(a: GaussianStats, b: GaussianStats, method: str = "eigh") -> float:
    """Fréchet distance between two fitted Gaussians; ``method`` is ``"eigh"`` (torch) or ``"sqrtm"`` (scipy)."""
    if a.dim != b.dim:
        raise ValueError(f"feature dimensions differ: {a.dim} vs {b.dim}")
    if method == "eigh":
        return frechet_distance_eigh(a.mean, a.cov, b.mean, b.cov)
    if method == "sqrtm":
        return frechet_distance_sqrtm(a.mean, a.cov, b.mean, b.cov)
    raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")


def _check_shapes(mu1, cov1, mu2, cov2) -> None:
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != mu1.shape or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"expected mu (d,), cov (d, d) for both sets; got {tuple(mu1.shape)}, {tuple(cov1.shape)}, {tuple(mu2.shape)}, {tuple(cov2.shape)}")
