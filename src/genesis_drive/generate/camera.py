"""Sample one 6-view camera clip with the MultiViewDiT and a video codec, in the three modes.

Modes (``mode``):

* ``free``: from noise (``t = 1``), nothing given.
* ``first-frame``: the first ``m`` latent frames are given clean (``given_latents``, e.g. the VAE
  latents of real frames, or of the previous chunk's last frames in a rollout); the DiT is told
  they are given (``given`` mask, modulated at time 0) and the sampler keeps them fixed exactly.
  With ``strength < 1`` the other frames start from the *static video* of the last given frame
  (that frame held for the whole clip, encoded: ``real_latents``) noised to ``strength``, instead
  of pure noise: ConsistI2V's FrameInit (Ren et al., 2024) without its low-pass filter, i.e. SDEdit
  from the held frame. The picture then moves away from the given frame only as far as the
  remaining ``strength`` of the flow carries it.
* ``noisy-latent``: start from the real latents noised to ``strength`` in [0, 1] (flow time
  ``t_start = strength``; 1 = pure noise, 0 = the real latents returned as they are).

Given latents may be combined with any mode (the rollout gives the previous chunk's frames in all
three). Classifier-free guidance: ``guidance`` scales ``v_uncond + g (v_cond - v_uncond)``; the
unconditional branch drops every condition group (:data:`models.camera.conditions.CONDITION_GROUPS`).
``drop`` removes groups from the conditional branch too (ablations: the DiT without pedestrian
keypoints, boxes, ego, caption or layout video, as its condition dropout trained it).
Seeded: one CPU ``torch.Generator`` per clip, so the same seed gives the same bytes.

Shapes: latents ``b v t c h w`` (normalised, as :class:`models.codec.LatentCodec` encodes them);
frames ``v t h w 3`` uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from einops import rearrange

from ..diffusion.samplers import cfg_velocity, keep_latents, sample
from ..errors import ConfigError
from ..models.camera.conditions import CONDITION_GROUPS
from ..models.camera.dit import MultiViewDiT
from ..models.codec import LatentCodec

__all__ = ["MODES", "DEFAULT_STRENGTH", "DEFAULT_FIRST_FRAME_STRENGTH", "mode_strength", "check_drop", "sample_latents",
           "encode_frames", "decode_frames", "static_video", "generate_chunk"]

MODES = ("free", "first-frame", "noisy-latent")
#: noisy-latent mode's default noise level.
DEFAULT_STRENGTH = 0.6
#: first-frame mode's default start (the given frame held still, noised to it): chosen on the
#: validation root st_val among 1.0 / 0.9 / 0.8 / 0.7 (docs/benchmarks.md, "First-frame mode from
#: the held frame").
DEFAULT_FIRST_FRAME_STRENGTH = 0.9


def mode_strength(mode: str, strength: float | None) -> float:
    """The flow time a generation in ``mode`` starts from: ``strength`` when given (noisy-latent
    and first-frame modes), else :data:`DEFAULT_STRENGTH` in noisy-latent mode,
    :data:`DEFAULT_FIRST_FRAME_STRENGTH` in first-frame mode and 1 (pure noise) in free mode.
    One-line ConfigError for a value outside [0, 1] or one below 1 in free mode."""
    if strength is None:
        return {"noisy-latent": DEFAULT_STRENGTH, "first-frame": DEFAULT_FIRST_FRAME_STRENGTH}.get(mode, 1.0)
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"--strength must be in [0, 1], got {strength}")
    if mode == "free" and strength < 1.0:
        raise ConfigError("--strength applies to --mode noisy-latent and first-frame only (got --mode free)")
    return float(strength)


def check_drop(drop: Sequence[str]) -> None:
    """ConfigError naming ``--drop-conditions`` unless every group is one of :data:`CONDITION_GROUPS`."""
    bad = [g for g in drop if g not in CONDITION_GROUPS]
    if bad:
        raise ConfigError(f"--drop-conditions: unknown camera condition group(s) {bad}; expected names from {CONDITION_GROUPS}")


@torch.no_grad()
def sample_latents(
    dit: MultiViewDiT,
    cond: Mapping[str, torch.Tensor],
    shape: tuple[int, ...],
    *,
    mode: str = "free",
    given_latents: torch.Tensor | None = None,
    real_latents: torch.Tensor | None = None,
    strength: float = 1.0,
    layout: torch.Tensor | None = None,
    layout_video: torch.Tensor | None = None,
    steps: int = 20,
    guidance: float = 1.0,
    method: str = "euler",
    shift: float = 1.0,
    seed: int = 0,
    drop: Sequence[str] = (),
) -> torch.Tensor:
    """Latents ``shape = (b v t c h w)`` sampled from the DiT (see the module doc).

    cond: batched condition tensors (``b`` leading, on the DiT's device). given_latents:
    ``(b v m c h w)`` clean latents of the first ``m`` latent frames (required in first-frame mode).
    real_latents: ``(b v t c h w)`` (required in noisy-latent mode, and in first-frame mode with
    ``strength < 1``: the static video of the given frame). layout: the layout video's
    latents for the control branch, ``shape`` like the output, or None. layout_video: the layout
    video itself ``(b v T 3 H W)`` uint8, for a DiT with a layout hint encoder. shift: the sampler's time
    grid shift (:func:`diffusion.samplers.time_grid`; the DiT run's ``time.shift``, 1 = uniform).
    drop: condition groups left out of both branches (:data:`CONDITION_GROUPS`).
    """
    check_drop(drop)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; expected {' | '.join(MODES)}")
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be in [0, 1], got {strength}")
    if mode == "first-frame" and given_latents is None:
        raise ConfigError("first-frame mode needs given latent frames")
    # noisy-latent mode, and first-frame mode below strength 1, start from latents noised to the strength
    from_latents = mode == "noisy-latent" or (mode == "first-frame" and strength < 1.0)
    if from_latents and real_latents is None:
        raise ConfigError("noisy-latent mode needs the real latents" if mode == "noisy-latent" else
                          "first-frame mode with strength < 1 needs the latents to start from (the given frame held)")
    b, v, t = shape[:3]
    device = next(dit.parameters()).device
    given = torch.zeros(b, t, dtype=torch.bool, device=device)
    keep = None
    if given_latents is not None:
        m = given_latents.shape[2]
        if not 1 <= m < t or tuple(given_latents.shape[:2]) != (b, v) or tuple(given_latents.shape[3:]) != tuple(shape[3:]):
            raise ConfigError(f"given latents {tuple(given_latents.shape)} do not fit the first frames of {tuple(shape)}")
        given[:, :m] = True
        clean = torch.zeros(shape, device=device)
        clean[:, :, :m] = given_latents.to(device)
        keep = keep_latents(given.view(b, 1, t, 1, 1, 1), clean)
    if mode == "noisy-latent" and strength == 0.0:
        x = real_latents.to(device).float().clone()
        return keep(x, torch.zeros(b, device=device)) if keep is not None else x
    drop_all = {g: torch.ones(b, dtype=torch.bool, device=device) for g in CONDITION_GROUPS}
    dropped = {g: drop_all[g] for g in drop} or None

    def v_cond(x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return dit(x, time, cond, layout=layout, given=given, drop=dropped, layout_video=layout_video)

    def v_uncond(x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return dit(x, time, cond, layout=layout, given=given, drop=drop_all, layout_video=layout_video)

    generator = torch.Generator().manual_seed(int(seed))
    return sample(
        cfg_velocity(v_cond, v_uncond, guidance), tuple(shape), steps=steps, method=method, shift=shift, generator=generator, device=device,
        x0=real_latents.to(device) if from_latents else None, t_start=strength if from_latents else 1.0, keep=keep,
    )  # fmt: skip


def encode_frames(codec: LatentCodec, frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames ``(v t h w 3)`` (4k+1 frames) -> normalised latents ``(1 v t' c h' w')``."""
    device = next(codec.parameters()).device
    x = rearrange(frames.to(device).float(), "v t h w c -> v c t h w") / 127.5 - 1.0
    return rearrange(codec.encode(x), "v c t h w -> 1 v t c h w")


def decode_frames(codec: LatentCodec, latents: torch.Tensor) -> np.ndarray:
    """Normalised latents ``(1 v t c h w)`` -> uint8 frames ``(v T H W 3)``."""
    x = codec.decode(rearrange(latents, "1 v t c h w -> v c t h w"))
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(rearrange(x, "v c t h w -> v t h w c").cpu().numpy())


def static_video(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """The last frame of ``frames (v f h w 3)`` held for ``num_frames``: ``(v num_frames h w 3)``."""
    return np.ascontiguousarray(np.repeat(np.asarray(frames)[:, -1:], num_frames, axis=1))


@torch.no_grad()
def generate_chunk(
    dit: MultiViewDiT,
    codec: LatentCodec,
    cond: Mapping[str, torch.Tensor],
    *,
    mode: str = "free",
    given_frames: np.ndarray | None = None,
    real_frames: np.ndarray | None = None,
    strength: float = 1.0,
    steps: int = 20,
    guidance: float = 1.0,
    method: str = "euler",
    shift: float = 1.0,
    seed: int = 0,
    drop: Sequence[str] = (),
) -> np.ndarray:
    """One clip's frames ``(v t h w 3)`` uint8, from its condition tensors (unbatched, the
    :class:`layout.conditions.ConditionTransform` output of a ``t = 4k+1``-frame clip).

    given_frames: ``(v f h w 3)`` uint8, ``f = 4 (m - 1) + 1``: frames to continue (encoded, kept as
    the first ``m`` latent frames). real_frames: ``(v t h w 3)`` uint8, the real clip (noisy-latent mode).
    strength: noisy-latent mode, the real clip's noise level; first-frame mode, below 1 the start
    is the last given frame held for the clip (:func:`static_video`) noised to it (module doc).
    The layout video (``cond["layout"]``) is encoded with the codec for the control branch.
    drop: condition groups left out at sampling (:func:`sample_latents`).
    """
    device = next(dit.parameters()).device
    batch = {k: x[None].to(device) for k, x in cond.items() if isinstance(x, torch.Tensor)}
    layout_video = rearrange(cond["layout"], "v t c h w -> v t h w c")
    layout = encode_frames(codec, layout_video)
    shape = tuple(layout.shape)
    given = encode_frames(codec, torch.from_numpy(np.asarray(given_frames))) if given_frames is not None else None
    if mode == "first-frame" and strength < 1.0 and given_frames is not None:
        real_frames = static_video(given_frames, layout_video.shape[1])
    real = encode_frames(codec, torch.from_numpy(np.asarray(real_frames))) if real_frames is not None else None
    if real is not None and tuple(real.shape) != shape:
        raise ConfigError(f"real frames encode to {tuple(real.shape)}, the layout to {shape}: give the clip's own frames")
    z = sample_latents(dit, batch, shape, mode=mode, given_latents=given, real_latents=real, strength=strength, layout=layout,
                       layout_video=batch["layout"], steps=steps, guidance=guidance, method=method, shift=shift, seed=seed, drop=drop)  # fmt: skip
    return decode_frames(codec, z)
