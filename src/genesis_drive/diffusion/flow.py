"""Rectified flow / flow matching as plain functions (no module state).

Convention (used by every function here and by :mod:`genesis_drive.diffusion.samplers`)
---------------------------------------------------------------------------------------
* Time ``t`` in [0, 1]: ``t = 0`` is data, ``t = 1`` is pure noise.
* Path: ``x_t = (1 - t) * x0 + t * noise`` with ``noise ~ N(0, I)``.
* Velocity target: ``v = dx_t/dt = noise - x0``. A network ``v(x_t, t)`` trained with
  :func:`flow_loss` estimates ``E[noise - x0 | x_t]``; sampling integrates ``dx/dt = v`` from
  ``t = 1`` (or ``t_start < 1`` in noisy-latent mode) down to ``t = 0``.
* ``t`` has shape ``(b,)`` (one time per sample) and is broadcast over the other axes of ``x``.

Time sampling
-------------
* :func:`sample_time_uniform`: ``t ~ U(0, 1)``.
* :func:`sample_time_logit_normal`: ``t = sigmoid(m + s * n)``, ``n ~ N(0, 1)`` (SD3 uses m=0, s=1).
* :func:`shift_time`: the SD3 / MagicDrive-V2 resolution shift ``t' = s t / (1 + (s - 1) t)``; it
  moves mass towards noise for larger ``s``. :func:`resolution_shift` gives
  ``s = sqrt(tokens / base_tokens)`` (the SD3 rule: shift grows with the square root of the token
  count, so the signal-to-noise ratio per token is matched across resolutions).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

__all__ = [
    "add_noise",
    "broadcast_time",
    "flow_loss",
    "noise_to_strength",
    "resolution_shift",
    "sample_time",
    "sample_time_logit_normal",
    "sample_time_uniform",
    "shift_time",
    "velocity_target",
]


def broadcast_time(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """``t`` of shape ``()`` or ``(b,)`` -> shape ``(b, 1, 1, ...)`` matching ``x``'s rank (dtype of x)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.reshape((1,) * x.ndim)
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"time must have shape () or ({x.shape[0]},), got {tuple(t.shape)}")
    return t.reshape(t.shape[0], *((1,) * (x.ndim - 1)))


def sample_time_uniform(n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """``(n,)`` times ``~ U(0, 1)``."""
    return torch.rand(n, generator=generator, device=device)


def sample_time_logit_normal(
    n: int, *, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(n,)`` times ``sigmoid(mean + std * N(0, 1))`` (SD3's logit-normal; mean > 0 favours noise)."""
    if std <= 0:
        raise ConfigError(f"logit-normal std must be > 0, got {std}")
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Resolution shift ``t' = s t / (1 + (s - 1) t)``; maps [0, 1] onto itself, identity at ``s = 1``."""
    if shift <= 0:
        raise ConfigError(f"time shift must be > 0, got {shift}")
    return shift * t / (1.0 + (shift - 1.0) * t)


def resolution_shift(tokens: int, base_tokens: int = 256) -> float:
    """Shift ``s = sqrt(tokens / base_tokens)`` for a latent of ``tokens`` patches (1.0 at ``base_tokens``)."""
    if tokens <= 0 or base_tokens <= 0:
        raise ConfigError(f"token counts must be > 0, got tokens={tokens}, base_tokens={base_tokens}")
    return math.sqrt(tokens / base_tokens)


def sample_time(
    n: int,
    *,
    kind: str = "logit_normal",
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(n,)`` training times: ``kind`` ``"uniform"`` or ``"logit_normal"`` (mean, std), then shifted by ``shift``."""
    if kind == "uniform":
        t = sample_time_uniform(n, generator=generator, device=device)
    elif kind == "logit_normal":
        t = sample_time_logit_normal(n, mean=mean, std=std, generator=generator, device=device)
    else:
        raise ConfigError(f"time sampling kind must be 'uniform' or 'logit_normal', got {kind!r}")
    return shift_time(t, shift) if shift != 1.0 else t


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """``x_t = (1 - t) x0 + t noise``; ``t`` scalar or ``(b,)``."""
    tb = broadcast_time(t, x0)
    return (1.0 - tb) * x0 + tb * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Flow-matching target ``v = noise - x0`` (the path's time derivative)."""
    return noise - x0


def flow_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the elements where ``mask`` is true (all when ``mask`` is None).

    ``mask`` broadcasts against ``pred``: per element (same shape), or per frame, e.g. ``(b, 1, t, 1, 1)``
    for ``b c t h w`` latents, with False on clean conditioning frames (first-frame mode). The mean
    counts broadcast elements, so a per-frame mask weighs each kept element equally. An all-false
    mask raises (nothing to learn from).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    err = (pred.float() - target.float()) ** 2
    if mask is None:
        return err.mean()
    m = torch.broadcast_to(mask.to(device=err.device, dtype=err.dtype), err.shape)
    total = m.sum()
    if total.item() == 0:
        raise ValueError("flow_loss mask excludes every element")
    return (err * m).sum() / total


def noise_to_strength(
    x0: torch.Tensor, strength: float, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, float]:
    """Noisy-latent mode: ``x0`` noised to time ``strength`` in [0, 1] -> ``(x_t, t_start)``.

    Strength 0 returns ``x0``; strength 1 is pure noise. Sampling then starts at ``t_start = strength``.
    """
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"noise strength must be in [0, 1], got {strength}")
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return add_noise(x0, noise, strength), float(strength)
