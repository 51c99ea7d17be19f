"""Compiled LiDAR ray marcher over a baked density volume (inference only, CPU, numba).

:func:`render_marched` renders the rays of :func:`.bake.render_baked` from the same
:class:`~.bake.BakedVolume` (density ``b z h w`` in 1/m on the lattice nodes of
:func:`.bake.bake_grid`, trilinear lookup with border clamping, i.e. ``grid_sample(...,
padding_mode="border", align_corners=False)``), but instead of fixed coarse-to-fine passes it steps
along each ray in compiled code (numba, parallel over rays) and stops at the first surface.

Per ray ``x(t) = o + t d`` (grid / LIDAR_TOP frame, metres, unit ``d``), inside the ray-box
interval ``[t_near, t_far]`` of :func:`.render.ray_box_interval` (the same interval, ``valid`` and
``t_far`` as the other renderers):

* **Lookup.** ``MarchConfig.interpolate = "pre_softplus"`` (default) interpolates the density
  field's pre-activation ``x = softplus^-1(sigma / density_scale)`` (kept by the bake,
  :attr:`.bake.BakedVolume.pre`, or else recovered from the baked density, :func:`pre_softplus`) and returns ``density_scale * softplus(x)``: the network's output
  before its last nonlinearity varies smoothly across a surface, the density (0 outside, a few
  hundred 1/m inside) does not, and its trilinear interpolant turns opaque right after the last
  node outside the solid, i.e. up to one lattice spacing early (what :func:`.bake.render_baked`
  renders). ``"density"`` interpolates sigma itself (any density module; the baked renderer's
  field).
* **Coarse steps.** The lattice cell crossing length of the ray, ``c = min_a s_a / |d_a|``
  (``s_a``: node spacing along axis ``a``: ``r / xy_factor`` in x and y, ``(z1 - z0) / z_samples``
  in z), sets the step ``MarchConfig.step * c``; ``[t_near, t_far]`` is cut into equal intervals
  of at most that length.
* **Refinement.** A coarse interval whose optical depth ``sigma(m) delta`` exceeds
  ``refine_tau`` is replaced, together with the interval before it (where the density may have
  started to rise between the two midpoints), by ``refine`` equal sub-intervals each. Near a
  surface the intervals are therefore ``refine`` times finer than in free space.
* **Empty-space skipping** (``MarchConfig.skip_block = B > 0``). The lattice is cut into blocks of
  ``B`` x ``B`` x ``B`` cells; :func:`block_maxima` gives the largest value any lookup inside each
  block can return (a trilinear value is a convex combination of its cell's corner nodes). A
  coarse interval whose midpoint lies in a block whose maximum is below the value of
  ``skip_density`` (the softplus being monotonic, the density anywhere in the block is then at most
  ``skip_density``) is skipped with the rest of the block: the march jumps to the first interval
  whose midpoint may lie outside it, and the skipped intervals add no optical depth. Against the
  march without skipping, every skipped interval would have added at most ``skip_density *
  delta`` (and none of them is refined, ``skip_density * delta`` being far below
  ``refine_tau``), so the transmittance of every ray is changed by a factor ``exp(-tau_s)`` with
  ``tau_s <= skip_density * (t_far - t_near)`` (1e-4 / m over the 90 m diagonal of the tiny grid:
  0.9 %), its opacity by at most ``tau_s`` and its expected depth by at most ``tau_s * (t_far -
  t_near)`` (a weight of at most ``tau_s`` moved within the ray), and an interval after a skip that needs refining is redone with its predecessor as
  usual. A trained field is far below that in free air (the shipped autoencoder: 1e-8 to 1e-11 /m),
  so in practice the depths agree with the unskipped march to float precision.
* **Compositing** is :func:`.render.composite`'s on that partition: density at each interval's
  midpoint ``m_i``, constant over its length ``delta_i``; ``T_i = exp(-sum_{j<i} sigma_j
  delta_j)``, ``w_i = T_i (1 - exp(-sigma_i delta_i))``, ``opacity = sum w_i``, expected depth
  ``D = sum w_i m_i + (1 - opacity) t_far``.
* **Early termination.** Once the transmittance falls below ``min_transmittance`` the ray
  stops: the remaining transmittance ``T`` is counted as a return at the last midpoint (instead of
  being spread over the rest of the ray and the far bound). The depth then differs from the fully
  marched one by at most ``min_transmittance * (t_far - t_near)`` and the reported opacity
  (``1 - T``) is at most ``min_transmittance`` below it; ``min_transmittance = 0`` marches every
  ray to ``t_far``.

Difference to :func:`.bake.render_baked` (same volume, same definitions): both compute the expected
depth; the baked renderer as a quadrature of 32 uniform + 16 importance samples of the density
interpolant, the marcher as a converged one (~2 samples per lattice cell crossed, 4x finer near
surfaces; ten times finer steps change the depth by millimetres) of the interpolant chosen by
``interpolate``, less the early-termination residual. With ``"density"`` the two render the same
field and differ by the baked renderer's quadrature error; with ``"pre_softplus"`` the marcher's
field is closer to the exact one (measured on the shipped autoencoder and held-out sweeps: the
exact renderer's depth error and Chamfer, where the baked renderer is 0.1-0.2 m early on grazing
ground beams; docs/lidar.md). tests/models/lidar/test_march.py records the bounds.

The drop logit is the model's own head, run once in torch on the rendered hit points
``o + D d``. The ``fine`` field of the returned :class:`~.ae.LidarRender` summarises the march as
one interval ``[t_near, t_stop]`` (``t_stop``: where the ray stopped, ``t_far`` if it did not)
holding the whole opacity: the marcher keeps no per-sample weights, so that field serves no loss
(inference only; the distortion loss needs a differentiable render).

Threads: the marcher uses ``min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)`` numba
threads (restored afterwards); every ray is computed by the same sequential code whatever the
thread count or the rays rendered with it, so results are bit-identical across both. Compiled once
per machine (``cache=True``: the machine code is kept in ``__pycache__``; the first call of a
process loads it).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import torch

from ...errors import ConfigError
from .ae import DensityField, LidarAE, LidarRender
from .bake import BakedVolume
from .render import RenderOutput, ray_box_interval

__all__ = ["MarchConfig", "block_maxima", "march_rays", "pre_softplus", "render_marched"]


@dataclass(frozen=True)
class MarchConfig:
    """Stepping of :func:`render_marched`.

    step: coarse interval length as a fraction of the ray's lattice cell crossing length
    ``min_a s_a / |d_a|`` (0.5 = two density lookups per cell crossed).
    refine: sub-intervals per coarse interval near a surface (1 = no refinement).
    refine_tau: optical depth ``sigma delta`` of a coarse interval above which it (and the one
    before it) is refined.
    min_transmittance: a ray stops once its transmittance falls below this (0 = never stops early).
    interpolate: what the trilinear lookup interpolates: ``"pre_softplus"`` (the model's
    :class:`~.ae.DensityField` pre-activation ``softplus^-1(sigma / density_scale)``, the density
    being ``density_scale * softplus`` of the interpolated value) or ``"density"`` (sigma itself,
    as :func:`.bake.render_baked` does; any density module).
    skip_block: side (lattice cells) of the blocks of empty-space skipping; 0 = none.
    skip_density: density (1/m) below which a block counts as empty (see the module doc).
    """

    step: float = 0.5
    refine: int = 4
    refine_tau: float = 0.05
    min_transmittance: float = 1e-3
    interpolate: Literal["pre_softplus", "density"] = "pre_softplus"
    skip_block: int = 4
    skip_density: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 < self.step <= 4.0:
            raise ConfigError(f"march.step must be a fraction of a lattice cell in (0, 4], got {self.step}")
        if self.refine < 1:
            raise ConfigError(f"march.refine must be >= 1 sub-intervals, got {self.refine}")
        if not self.refine_tau > 0.0:
            raise ConfigError(f"march.refine_tau must be a positive optical depth, got {self.refine_tau}")
        if not 0.0 <= self.min_transmittance < 1.0:
            raise ConfigError(f"march.min_transmittance must be in [0, 1), got {self.min_transmittance}")
        if self.interpolate not in ("pre_softplus", "density"):
            raise ConfigError(f"march.interpolate must be 'pre_softplus' or 'density', got {self.interpolate!r}")
        if self.skip_block < 0:
            raise ConfigError(f"march.skip_block must be >= 0 lattice cells (0: no empty-space skipping), got {self.skip_block}")
        if not self.skip_density > 0.0:
            raise ConfigError(f"march.skip_density must be a positive density (1/m), got {self.skip_density}")


@numba.njit(cache=True, inline="always")
def _lookup(vol, b, fx, fy, fz):  # pragma: no cover - compiled
    """Trilinear value of ``vol[b]`` (z h w) at fractional node indices (row fx, column fy,
    height fz), coordinates clamped to the node range (grid_sample border padding)."""
    nz, nh, nw = vol.shape[1], vol.shape[2], vol.shape[3]
    fx = min(max(fx, 0.0), nh - 1.0)
    fy = min(max(fy, 0.0), nw - 1.0)
    fz = min(max(fz, 0.0), nz - 1.0)
    i0, j0, k0 = int(fx), int(fy), int(fz)
    i1, j1, k1 = min(i0 + 1, nh - 1), min(j0 + 1, nw - 1), min(k0 + 1, nz - 1)
    wx, wy, wz = fx - i0, fy - j0, fz - k0
    c00 = vol[b, k0, i0, j0] * (1.0 - wy) + vol[b, k0, i0, j1] * wy
    c01 = vol[b, k0, i1, j0] * (1.0 - wy) + vol[b, k0, i1, j1] * wy
    c10 = vol[b, k1, i0, j0] * (1.0 - wy) + vol[b, k1, i0, j1] * wy
    c11 = vol[b, k1, i1, j0] * (1.0 - wy) + vol[b, k1, i1, j1] * wy
    c0 = c00 * (1.0 - wx) + c01 * wx
    c1 = c10 * (1.0 - wx) + c11 * wx
    return c0 * (1.0 - wz) + c1 * wz


@numba.njit(cache=True, inline="always")
def _density(vol, b, fx, fy, fz, scale):  # pragma: no cover - compiled
    """Density (1/m) at fractional node indices: the trilinear value itself (``scale <= 0``) or
    ``scale * softplus`` of it (the volume holds pre-activations)."""
    v = _lookup(vol, b, fx, fy, fz)
    if scale <= 0.0:
        return v
    if v > 20.0:
        return scale * v
    return scale * math.log1p(math.exp(v))


@numba.njit(cache=True, parallel=True)
def _march_kernel(vol, scale, rays_per_batch, o, d, t_near, t_far, lower, spacing, step, refine, refine_tau,
                  min_t, block_max, block, skip_below, depth, opacity, t_stop):  # pragma: no cover - compiled
    """March rays ``n`` (o, d (n 3); bounds (n)) through ``vol`` (b z h w; densities, or
    pre-activations when ``scale > 0``); ray ``i`` reads batch ``i // rays_per_batch``. Writes depth, opacity, t_stop (n) (see the module doc).
    ``block_max`` (b, z, h, w blocks of ``block`` cells; ``block`` 0: no skipping): the largest
    volume value any lookup inside each block can return; intervals whose midpoint lies in a
    block below ``skip_below`` are skipped."""
    n = o.shape[0]
    nz, nh, nw = vol.shape[1], vol.shape[2], vol.shape[3]
    for i in numba.prange(n):
        b = i // rays_per_batch
        # fractional node index along each axis: f = a + t * g (nodes at cell centres)
        ax = (o[i, 0] - lower[0]) / spacing[0] - 0.5
        ay = (o[i, 1] - lower[1]) / spacing[1] - 0.5
        az = (o[i, 2] - lower[2]) / spacing[2] - 0.5
        gx, gy, gz = d[i, 0] / spacing[0], d[i, 1] / spacing[1], d[i, 2] / spacing[2]
        g = max(abs(gx), abs(gy), abs(gz), 1e-12)
        t0, t1 = np.float64(t_near[i]), np.float64(t_far[i])
        length = t1 - t0
        steps = max(1, math.ceil(length * g / step))
        dt = length / steps
        h = dt / refine
        trans, acc = 1.0, 0.0  # transmittance before the next interval; sum of w_i m_i
        prev_trans, prev_acc = 1.0, 0.0  # the state before the previous coarse interval
        prev_refined = True  # (no previous interval to refine at the start)
        stop = t1
        done = False
        k = 0
        while k < steps:
            ta = t0 + k * dt
            m = ta + 0.5 * dt
            if block > 0:
                # the lattice cell of the midpoint (as _lookup clamps and floors), and its block
                bx = int(min(max(ax + m * gx, 0.0), nh - 1.0)) // block
                by = int(min(max(ay + m * gy, 0.0), nw - 1.0)) // block
                bz = int(min(max(az + m * gz, 0.0), nz - 1.0)) // block
                if block_max[b, bz, bx, by] < skip_below:
                    # jump to the first interval whose midpoint may lie outside the block
                    te = t1
                    for a0, ga, bi in ((ax, gx, bx), (ay, gy, by), (az, gz, bz)):
                        if ga > 0.0:
                            te = min(te, ((bi + 1) * block - a0) / ga)
                        elif ga < 0.0:
                            te = min(te, (bi * block - a0) / ga)
                    prev_trans, prev_acc = trans, acc  # the skipped intervals add nothing
                    prev_refined = False
                    k = max(k + 1, math.ceil((te - t0) / dt - 0.5))
                    continue
            s = _density(vol, b, ax + m * gx, ay + m * gy, az + m * gz, scale)
            tau = s * dt
            if refine > 1 and tau > refine_tau:
                start, count = ta, refine
                if not prev_refined:  # redo the previous coarse interval finely too
                    trans, acc = prev_trans, prev_acc
                    start, count = ta - dt, 2 * refine
                prev_trans, prev_acc = trans, acc
                for j in range(count):
                    mm = start + (j + 0.5) * h
                    ss = _density(vol, b, ax + mm * gx, ay + mm * gy, az + mm * gz, scale)
                    nt = trans * math.exp(-ss * h)
                    acc += (trans - nt) * mm
                    trans = nt
                    if trans < min_t:
                        acc += trans * mm
                        stop = start + (j + 1) * h
                        done = True
                        break
                prev_refined = True
            else:
                prev_trans, prev_acc = trans, acc
                nt = trans * math.exp(-tau)
                acc += (trans - nt) * m
                trans = nt
                prev_refined = False
                if trans < min_t:
                    acc += trans * m
                    stop = ta + dt
                    done = True
            if done:
                break
            k += 1
        if done:
            depth[i] = acc
        else:
            depth[i] = acc + trans * t1
        opacity[i] = 1.0 - trans
        t_stop[i] = stop


@contextlib.contextmanager
def _torch_thread_count() -> Iterator[None]:
    """Run numba's parallel kernels inside on torch's thread count (at most
    ``NUMBA_NUM_THREADS``), and leave torch's and numba's counts as they were.

    torch's count is read first: numba's first thread call starts its OpenMP pool, which resets the
    OpenMP thread count that torch shares (numba/numba#9387); torch gets its own count back."""
    with warnings.catch_warnings():  # numba probes an older TBB once per process and says it skips it
        warnings.filterwarnings("ignore", message=".*TBB threading layer", category=numba.NumbaWarning)
        threads = torch.get_num_threads()
        before = numba.get_num_threads()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            yield
        finally:
            numba.set_num_threads(before)


@numba.njit(cache=True, parallel=True)
def _block_max_kernel(vol, block, out):  # pragma: no cover - compiled
    """``out[b, i, j, k]`` = max of ``vol[b]`` (z h w) over the nodes of the cells of block (i, j,
    k): nodes ``i * block .. min((i + 1) * block, n - 1)`` along each axis (cell c reads nodes c
    and c + 1, the last cell its clamped border node)."""
    nb, nz, nh, nw = vol.shape
    for q in numba.prange(nb * out.shape[1]):
        b, i = q // out.shape[1], q % out.shape[1]
        for j in range(out.shape[2]):
            for k in range(out.shape[3]):
                m = -np.inf
                for z in range(i * block, min((i + 1) * block, nz - 1) + 1):
                    for x in range(j * block, min((j + 1) * block, nh - 1) + 1):
                        for y in range(k * block, min((k + 1) * block, nw - 1) + 1):
                            m = max(m, vol[b, z, x, y])
                out[b, i, j, k] = m


def block_maxima(vol: torch.Tensor, block: int) -> torch.Tensor:
    """The largest value a trilinear lookup (:func:`_lookup`: clamped, cells of the node lattice)
    can return inside each block of ``block`` cells per axis of ``vol`` (b z h w, CPU) -> (b,
    ceil(z / block), ceil(h / block), ceil(w / block)) float32: the maximum over the nodes of the
    block's cells (a cell's lookups are convex combinations of its 8 corner nodes; the last cell of
    an axis is the clamped border node). Compiled (numba, the caller's thread count)."""
    if block < 1:
        raise ValueError(f"block_maxima needs blocks of >= 1 cells, got {block}")
    v = vol.detach().float().contiguous().cpu().numpy()
    b, nz, nh, nw = v.shape
    out = np.empty((b, -(-nz // block), -(-nh // block), -(-nw // block)), dtype=np.float32)
    with _torch_thread_count():
        _block_max_kernel(v, block, out)
    return torch.from_numpy(out)


def pre_softplus(sigma: torch.Tensor, scale: float) -> torch.Tensor:
    """The pre-activation ``x`` with ``scale * softplus(x) = sigma`` (densities 1/m, any shape),
    float32; densities below 1e-30 scale units map to ``x = log(1e-30)``."""
    y = (sigma.float() / scale).clamp(min=1e-30)
    return y + torch.log(-torch.expm1(-y))


def march_rays(volume: BakedVolume, origins: torch.Tensor, dirs: torch.Tensor, t_near: torch.Tensor,
               t_far: torch.Tensor, cfg: MarchConfig = MarchConfig(), *,
               softplus_scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """March rays through ``volume`` (sigma ``b z h w`` 1/m): ``origins``, unit ``dirs`` (b r 3)
    metres in the grid frame, bounds ``t_near, t_far`` (b r) metres -> ``(depth, opacity, t_stop)``
    (b r) float32 (module doc). CPU tensors only. With ``softplus_scale`` (the density field's
    ``density_scale``) the lookups interpolate :func:`pre_softplus` of the volume; None
    interpolates the density itself."""
    sigma = volume.sigma
    if sigma.device.type != "cpu" or origins.device.type != "cpu":
        raise ValueError(f"the numba ray marcher runs on the CPU, got tensors on {sigma.device} and {origins.device}")
    b, r = origins.shape[:2]
    lat = volume.grid
    if softplus_scale is not None and not softplus_scale > 0:
        raise ValueError(f"softplus_scale must be a positive density scale (1/m) or None, got {softplus_scale}")
    if softplus_scale is None:
        vol_t = sigma.detach().float()
    elif volume.pre is not None and volume.pre_scale == softplus_scale:  # the bake kept the pre-activation
        vol_t = volume.pre.detach().float()
    else:
        vol_t = pre_softplus(sigma.detach(), softplus_scale)
    vol = vol_t.contiguous().numpy()
    scale = 0.0 if softplus_scale is None else float(softplus_scale)
    block = int(cfg.skip_block)
    o = origins.detach().float().reshape(-1, 3).contiguous().numpy()
    d = dirs.detach().float().reshape(-1, 3).contiguous().numpy()
    tn = t_near.detach().float().reshape(-1).contiguous().numpy()
    tf = t_far.detach().float().reshape(-1).contiguous().numpy()
    lower = np.asarray(lat.lower, dtype=np.float64)
    spacing = np.asarray((lat.resolution, lat.resolution, lat.bin_height), dtype=np.float64)
    depth, opacity, stop = (np.empty(b * r, dtype=np.float32) for _ in range(3))
    if block > 0:
        block_max = block_maxima(torch.from_numpy(vol), block).numpy()
        skip = (float(cfg.skip_density) if softplus_scale is None
                else float(pre_softplus(torch.tensor(cfg.skip_density), softplus_scale)))  # fmt: skip
    else:
        block_max, skip = np.zeros((1, 1, 1, 1), dtype=np.float32), -math.inf
    with _torch_thread_count():
        _march_kernel(vol, scale, r, o, d, tn, tf, lower, spacing, float(cfg.step), int(cfg.refine), float(cfg.refine_tau),
                      float(cfg.min_transmittance), block_max, block, skip, depth, opacity, stop)
    return tuple(torch.from_numpy(a).reshape(b, r) for a in (depth, opacity, stop))  # type: ignore[return-value]


@torch.no_grad()
def render_marched(model: LidarAE, plane: torch.Tensor, volume: BakedVolume, origins: torch.Tensor, dirs: torch.Tensor,
                   cfg: MarchConfig = MarchConfig()) -> LidarRender:
    """Render rays from a baked volume (:func:`.bake.bake_density` of ``plane``) by the compiled
    marcher: ``origins`` (b r 3) metres and unit ``dirs`` (b r 3) in the grid (LIDAR_TOP) frame ->
    the fields of :func:`.bake.render_baked` (depth metres, drop logit, opacity, t_far, valid; ``fine``
    = the one-interval summary of the module doc), fp32, CPU. The drop head reads ``plane``'s drop
    channels at the hit point."""
    b = plane.shape[0]
    if (origins.ndim != 3 or origins.shape[-1] != 3 or dirs.shape != origins.shape or origins.shape[0] != b
            or origins.shape[1] < 1):
        raise ValueError(f"rays are origins and dirs of shape (b, r >= 1, 3) with b = {b}, "
                         f"got {tuple(origins.shape)} and {tuple(dirs.shape)}")
    if volume.sigma.shape[0] != b or volume.sigma.shape[1:] != volume.grid.shape:
        raise ValueError(f"the baked volume is (b = {b}, {volume.grid.shape}) density, got {tuple(volume.sigma.shape)}")
    mc = model.cfg
    with torch.autocast(plane.device.type, enabled=False):
        plane, origins, dirs = plane.float(), origins.float(), dirs.float()
        t0, t1, valid = ray_box_interval(origins, dirs, mc.grid.lower, mc.grid.upper, mc.near, mc.far)
        scale = None
        if cfg.interpolate == "pre_softplus":
            if not isinstance(model.density, DensityField):
                raise ConfigError(f"march.interpolate 'pre_softplus' needs the model's DensityField (softplus density), "
                                  f"got {type(model.density).__name__}; use 'density'")
            scale = float(model.density.cfg.density_scale)
        depth, opacity, stop = march_rays(volume, origins, dirs, t0, t1, cfg, softplus_scale=scale)
        hit = origins + depth[..., None] * dirs
        drop = model.drop(model.split(plane).drop, hit, depth, opacity, dirs)
        fine = RenderOutput(depth, opacity, opacity[..., None], torch.stack((t0, stop), dim=-1))
        return LidarRender(depth, drop, opacity, t1, valid, fine)
