"""Differentiable volume rendering of expected LiDAR depth along rays (functions; no network).

A ray ``x(t) = o + t d`` (origin ``o`` metres, unit direction ``d``, both in the BEV / LIDAR_TOP
frame) is cut into intervals by sorted edges ``t_0 < t_1 < ... < t_S`` (metres along the ray).
A density field ``sigma`` (1/m) is evaluated once per interval, at its midpoint
``m_i = (t_i + t_{i+1}) / 2``, and taken constant over the interval of length
``delta_i = t_{i+1} - t_i``. Then

* ``alpha_i = 1 - exp(-sigma_i delta_i)``: probability that the beam stops in interval ``i``
  given that it reached it;
* ``T_i = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j)``: transmittance;
* ``w_i = alpha_i T_i``: probability that the return comes from interval ``i``;
* ``opacity = sum_i w_i`` and the expected depth ``D = sum_i w_i m_i + (1 - opacity) t_S``
  (the beam that crosses the whole volume counts as a return at the far bound).

Adaptive sampling (:func:`render_adaptive`): a cheap *proposal* density (in the autoencoder: the
decoded occupancy volume, a trilinear lookup, no MLP) is rendered on a few uniform intervals; its
weights, dilated by ``dilate`` intervals each side and mixed with a uniform floor, form a piecewise
constant pdf along the ray whose inverse CDF, at evenly spaced quantiles, gives the fine edges.
They crowd where the proposal expects the surface, so the field is evaluated only there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "DensityFn",
    "RenderOutput",
    "composite",
    "distortion_loss",
    "midpoints",
    "ray_box_interval",
    "render_adaptive",
    "render_uniform",
    "sample_pdf",
    "uniform_edges",
]

#: ``points (b, r, s, 3) metres -> density (b, r, s) in 1/m``.
DensityFn = Callable[[torch.Tensor], torch.Tensor]


class RenderOutput(NamedTuple):
    """Rendered rays (leading shape ``b r``): ``depth`` (metres along the ray), ``opacity``
    (sum of weights, 0..1), ``weights`` (b r s) and ``edges`` (b r s+1) of the evaluated intervals."""

    depth: torch.Tensor
    opacity: torch.Tensor
    weights: torch.Tensor
    edges: torch.Tensor


def ray_box_interval(origins: torch.Tensor, dirs: torch.Tensor, lower: tuple[float, float, float],
                     upper: tuple[float, float, float], near: float, far: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Part of each ray inside the box ``[lower, upper]`` and within ``[near, far]`` metres.

    origins, dirs: (..., 3). Returns ``(t_near, t_far, valid)`` (...): a ray that misses gets
    ``valid = False`` and a tiny interval starting at ``t_near`` (so it renders as empty).
    """
    lo = torch.tensor(lower, dtype=origins.dtype, device=origins.device)
    hi = torch.tensor(upper, dtype=origins.dtype, device=origins.device)
    safe = torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    inv = 1.0 / safe
    a, b = (lo - origins) * inv, (hi - origins) * inv
    t0 = torch.minimum(a, b).amax(dim=-1).clamp(min=near)
    t1 = torch.maximum(a, b).amin(dim=-1).clamp(max=far)
    valid = t1 > t0
    t1 = torch.where(valid, t1, t0 + 1e-3)
    return t0, t1, valid


def uniform_edges(t_near: torch.Tensor, t_far: torch.Tensor, n: int, *, generator: torch.Generator | None = None,
                  jitter: bool = False) -> torch.Tensor:
    """``n`` equal intervals between ``t_near`` and ``t_far`` (...) -> edges (..., n + 1); with
    ``jitter`` the inner edges move by up to half an interval (drawn from ``generator``)."""
    if n < 1:
        raise ValueError(f"need at least one interval per ray, got n={n}")
    u = torch.linspace(0.0, 1.0, n + 1, dtype=t_near.dtype, device=t_near.device).expand(*t_near.shape, n + 1)
    if jitter and n > 1:
        noise = torch.rand((*t_near.shape, n - 1), generator=generator, dtype=t_near.dtype, device=t_near.device)
        u = torch.cat((u[..., :1], u[..., 1:-1] + (noise - 0.5) / n, u[..., -1:]), dim=-1)
    return t_near[..., None] + u * (t_far - t_near)[..., None]


def midpoints(edges: torch.Tensor) -> torch.Tensor:
    """Interval midpoints (..., s) of edges (..., s + 1)."""
    return 0.5 * (edges[..., 1:] + edges[..., :-1])


def composite(sigma: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Volume rendering of densities ``sigma`` (..., s) (1/m, one per interval) over ``edges``
    (..., s + 1) metres -> ``(weights (..., s), depth (...), opacity (...))`` as in the module doc."""
    delta = (edges[..., 1:] - edges[..., :-1]).clamp(min=0.0)
    tau = sigma.clamp(min=0.0) * delta
    alpha = 1.0 - torch.exp(-tau)
    trans = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))  # exclusive: prod_{j<i} (1 - alpha_j)
    w = alpha * trans
    opacity = w.sum(dim=-1)
    depth = (w * midpoints(edges)).sum(dim=-1) + (1.0 - opacity) * edges[..., -1]
    return w, depth, opacity


def _march(density_fn: DensityFn, origins: torch.Tensor, dirs: torch.Tensor, edges: torch.Tensor) -> RenderOutput:
    pts = origins[..., None, :] + midpoints(edges)[..., None] * dirs[..., None, :]
    w, depth, opacity = composite(density_fn(pts), edges)
    return RenderOutput(depth, opacity, w, edges)


def render_uniform(density_fn: DensityFn, origins: torch.Tensor, dirs: torch.Tensor, t_near: torch.Tensor,
                   t_far: torch.Tensor, n: int, *, generator: torch.Generator | None = None,
                   jitter: bool = False) -> RenderOutput:
    """Render rays ``origins, dirs`` (b, r, 3) with ``n`` uniform intervals in ``[t_near, t_far]`` (b, r)."""
    return _march(density_fn, origins, dirs, uniform_edges(t_near, t_far, n, generator=generator, jitter=jitter))


def sample_pdf(edges: torch.Tensor, weights: torch.Tensor, n: int, *, dilate: int = 1, floor: float = 0.02,
               generator: torch.Generator | None = None, jitter: bool = False) -> torch.Tensor:
    """Inverse-CDF resampling: ``n`` new intervals (edges (..., n + 1), sorted, detached) from a
    piecewise-constant pdf over ``edges`` (..., s + 1) with interval masses ``weights`` (..., s).

    The masses are first dilated (max over ``dilate`` neighbouring intervals each side, so a surface
    the proposal places one interval early or late is still covered) and mixed with a uniform
    floor (fraction ``floor`` of the mass spread evenly over ``[edges[0], edges[-1]]``). The new
    edges sit at the quantiles ``k / n`` (jittered within their stratum when ``jitter``); the
    first and last are the ray's bounds.
    """
    if n < 1:
        raise ValueError(f"need at least one interval per ray, got n={n}")
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must be a fraction in (0, 1], got {floor}")
    edges, w = edges.detach(), weights.detach().clamp(min=0.0)
    s = w.shape[-1]
    if dilate > 0:
        w = F.max_pool1d(w.reshape(-1, 1, s), 2 * dilate + 1, stride=1, padding=dilate).reshape(w.shape)
    length = (edges[..., 1:] - edges[..., :-1]).clamp(min=0.0)
    total = length.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    mass = w / w.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    pdf = (1.0 - floor) * mass + floor * length / total
    pdf = pdf / pdf.sum(dim=-1, keepdim=True)
    cdf = torch.cat((torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, dim=-1)), dim=-1)
    cdf[..., -1] = 1.0
    u = torch.linspace(0.0, 1.0, n + 1, dtype=edges.dtype, device=edges.device).expand(*edges.shape[:-1], n + 1)
    if jitter and n > 1:
        noise = torch.rand((*edges.shape[:-1], n - 1), generator=generator, dtype=edges.dtype, device=edges.device)
        u = torch.cat((u[..., :1], u[..., 1:-1] + (noise - 0.5) / n, u[..., -1:]), dim=-1).contiguous()
    idx = (torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True) - 1).clamp(0, s - 1)
    c0 = torch.gather(cdf, -1, idx)
    p = torch.gather(pdf, -1, idx)
    e0 = torch.gather(edges, -1, idx)
    e1 = torch.gather(edges, -1, idx + 1)
    frac = ((u - c0) / p.clamp(min=1e-12)).clamp(0.0, 1.0)
    return torch.cummax(e0 + frac * (e1 - e0), dim=-1).values


def render_adaptive(density_fn: DensityFn, proposal_fn: DensityFn, origins: torch.Tensor, dirs: torch.Tensor,
                    t_near: torch.Tensor, t_far: torch.Tensor, n_proposal: int, n_fine: int | Sequence[int], *,
                    dilate: int = 1, floor: float = 0.02, generator: torch.Generator | None = None,
                    jitter: bool = False) -> tuple[RenderOutput, RenderOutput]:
    """Coarse-to-fine rendering: ``proposal_fn`` on ``n_proposal`` uniform intervals, then
    ``density_fn`` on intervals drawn by :func:`sample_pdf` from the previous pass's weights, once
    per entry of ``n_fine`` (an int = one pass). Every pass but the last runs without gradients (it
    only places samples); the last one is the output. Rays (b, r, 3), bounds (b, r).
    Returns ``(fine, proposal)`` renders."""
    stages = (n_fine,) if isinstance(n_fine, int) else tuple(n_fine)
    if not stages:
        raise ValueError("n_fine must hold at least one pass")
    coarse_edges = uniform_edges(t_near, t_far, n_proposal, generator=generator, jitter=jitter)
    with torch.no_grad():
        proposal = _march(proposal_fn, origins, dirs, coarse_edges)
    prev = proposal
    for k, n in enumerate(stages):
        edges = sample_pdf(prev.edges, prev.weights, n, dilate=dilate, floor=floor, generator=generator, jitter=jitter)
        if k == len(stages) - 1:
            return _march(density_fn, origins, dirs, edges), proposal
        with torch.no_grad():
            prev = _march(density_fn, origins, dirs, edges)
    raise AssertionError("unreachable")


def distortion_loss(weights: torch.Tensor, edges: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """mip-NeRF 360's distortion loss per ray (...): ``sum_{i,j} w_i w_j |m_i - m_j| +
    1/3 sum_i w_i^2 delta_i`` on positions divided by ``scale`` (metres); small when the weight is
    concentrated in one short interval (a sharp surface). O(s) via prefix sums; edges sorted."""
    m = midpoints(edges) / scale
    delta = (edges[..., 1:] - edges[..., :-1]) / scale
    w_before = torch.cumsum(weights, dim=-1) - weights
    wm_before = torch.cumsum(weights * m, dim=-1) - weights * m
    cross = 2.0 * (weights * (m * w_before - wm_before)).sum(dim=-1)
    return cross + (weights.square() * delta).sum(dim=-1) / 3.0
