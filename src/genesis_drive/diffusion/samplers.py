"""ODE samplers for rectified flow, as functions of a velocity function ``v(x, t) -> v``.

Same convention as :mod:`genesis_drive.diffusion.flow`: ``x_t = (1 - t) x0 + t noise``, ``t = 1`` is
noise, ``t = 0`` data, ``dx/dt = v``. Sampling integrates from ``t_start`` (1 for free generation,
``strength < 1`` in noisy-latent mode) down to 0 on a descending :func:`time_grid`.

* A velocity function takes ``x`` (``b ...``) and ``t`` of shape ``(b,)`` and returns a tensor like ``x``.
* :func:`euler_step` / :func:`heun_step`: one step from ``t`` to ``t_next`` (Heun: 2nd order, two
  evaluations per step).
* :func:`integrate`: run the steps over a grid; ``keep(x, t) -> x`` is applied to the start and after
  every update (and before every evaluation), e.g. :func:`keep_latents` puts given clean latents back
  where a mask says (first-frame mode), so they stay fixed exactly.
* :func:`sample`: draw the start noise from a ``torch.Generator`` (or noise given latents to
  ``t_start``) and integrate. Same generator state, same samples.
* :func:`cfg_velocity` / :func:`cfg_batched`: classifier-free guidance
  ``v = v_uncond + scale (v_cond - v_uncond)`` (scale 1 is the conditional field, 0 the unconditional).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError
from .flow import add_noise, shift_time

__all__ = [
    "KeepFn",
    "VelocityFn",
    "cfg_batched",
    "cfg_velocity",
    "euler_step",
    "heun_step",
    "integrate",
    "keep_latents",
    "sample",
    "time_grid",
]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``v(x, t)`` with ``x`` of shape ``(b, ...)`` and ``t`` of shape ``(b,)`` -> velocity like ``x``."""
KeepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``keep(x, t)`` with scalar ``t`` -> ``x`` with the given (fixed) entries restored."""

METHODS = ("euler", "heun")


def time_grid(
    steps: int, *, t_start: float = 1.0, shift: float = 1.0, device: torch.device | str | None = None
) -> torch.Tensor:
    """Descending times ``(steps + 1,)`` from ``t_start`` to 0: ``t = t_start * shift_time(u, shift)`` for
    ``u`` uniform from 1 to 0 (so the grid starts exactly at ``t_start`` and ends at 0).

    With ``shift = 1`` the grid is uniform; ``shift > 1`` spends more steps near noise (SD3 / MagicDrive-V2).
    """
    if steps < 1:
        raise ConfigError(f"sampler steps must be >= 1, got {steps}")
    if not 0.0 < t_start <= 1.0:
        raise ConfigError(f"sampler start time must be in (0, 1], got {t_start}")
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)
    if shift != 1.0:
        t = shift_time(u, shift) * t_start
    else:
        t = u * t_start
    t[-1] = 0.0
    return t.float()


def _tb(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)


def euler_step(v: VelocityFn, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """``x + (t_next - t) v(x, t)`` (scalar times)."""
    return x + (float(t_next) - float(t)) * v(x, _tb(t, x))


def heun_step(
    v: VelocityFn, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, keep: KeepFn | None = None
) -> torch.Tensor:
    """Heun (explicit trapezoid): Euler predictor, then the mean of the two slopes."""
    dt = float(t_next) - float(t)
    d0 = v(x, _tb(t, x))
    x_pred = x + dt * d0
    if keep is not None:
        x_pred = keep(x_pred, t_next)
    d1 = v(x_pred, _tb(t_next, x))
    return x + dt * 0.5 * (d0 + d1)


@torch.no_grad()
def integrate(
    v: VelocityFn, x: torch.Tensor, grid: torch.Tensor, *, method: str = "heun", keep: KeepFn | None = None
) -> torch.Tensor:
    """Integrate ``dx/dt = v`` from ``grid[0]`` to ``grid[-1]`` with ``method`` ``"euler"`` or ``"heun"``."""
    if method not in METHODS:
        raise ConfigError(f"sampler method must be one of {METHODS}, got {method!r}")
    if keep is not None:
        x = keep(x, grid[0])
    for i in range(len(grid) - 1):
        t, t_next = grid[i], grid[i + 1]
        if method == "euler":
            x = euler_step(v, x, t, t_next)
        else:
            x = heun_step(v, x, t, t_next, keep)
        if keep is not None:
            x = keep(x, t_next)
    return x


def keep_latents(mask: torch.Tensor, clean: torch.Tensor) -> KeepFn:
    """A ``keep`` that sets ``x`` to ``clean`` where ``mask`` is true (mask broadcasts, e.g. ``(b, 1, t, 1, 1)``).

    The given latents stay clean at every time (the DiT sees them as clean conditioning frames,
    matching training where their loss is masked out).
    """
    m = mask.to(torch.bool)

    def keep(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.where(m.to(x.device), clean.to(device=x.device, dtype=x.dtype), x)

    return keep


def sample(
    v: VelocityFn,
    shape: tuple[int, ...],
    *,
    steps: int,
    method: str = "heun",
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    x0: torch.Tensor | None = None,
    t_start: float = 1.0,
    keep: KeepFn | None = None,
) -> torch.Tensor:
    """Draw ``N(0, I)`` noise of ``shape`` and integrate to data.

    Noisy-latent mode: pass the clean latents ``x0`` and ``t_start = strength < 1``; the start is
    ``add_noise(x0, noise, t_start)`` with noise from the same ``generator``. ``keep`` holds given latents
    fixed (first-frame mode; see :func:`keep_latents`).
    """
    if x0 is not None and tuple(x0.shape) != tuple(shape):
        raise ValueError(f"x0 shape {tuple(x0.shape)} differs from sample shape {tuple(shape)}")
    if x0 is None and t_start != 1.0:
        raise ConfigError("a start time below 1 (noisy-latent mode) needs the clean latents x0")
    gen_device = generator.device if generator is not None else device
    noise = torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)
    x = noise if x0 is None else add_noise(x0.to(device=noise.device, dtype=dtype), noise, t_start)
    grid = time_grid(steps, t_start=t_start, shift=shift, device=noise.device)
    return integrate(v, x, grid, method=method, keep=keep)


def cfg_velocity(v_cond: VelocityFn, v_uncond: VelocityFn, scale: float) -> VelocityFn:
    """Guided velocity ``v_uncond + scale (v_cond - v_uncond)`` from two velocity functions."""

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if scale == 1.0:
            return v_cond(x, t)
        vu = v_uncond(x, t)
        if scale == 0.0:
            return vu
        return vu + scale * (v_cond(x, t) - vu)

    return v


def cfg_batched(v_pair: VelocityFn, scale: float) -> VelocityFn:
    """Guidance with one network call: ``v_pair`` gets ``cat([x, x])`` and ``cat([t, t])`` and must
    return the conditional velocity for the first half and the unconditional for the second (the
    caller's network closes over both condition sets, concatenated the same way)."""

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = v_pair(torch.cat([x, x]), torch.cat([t, t]))
        vc, vu = out.chunk(2)
        return vu + scale * (vc - vu)

    return v
