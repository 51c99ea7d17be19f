"""Plan a long-video rollout: which frames each chunk covers and which of its frames are given.

A chunk is a clip of ``num_frames = 4k + 1`` frames (the causal video VAE's unit: frame 0 alone,
then groups of 4, so ``k + 1`` latent frames). Chunk after chunk covers a scene of ``n`` frames;
each chunk after the first starts on already generated frames: its first ``given_frames`` frames
(``4 (m - 1) + 1`` for ``m`` given latent frames) are the last generated ones, re-encoded by the VAE
and kept clean (the first-frame mechanism), so the chunk continues them. The last chunk is shifted
back to end on the scene's last frame; it then overlaps more than ``m`` latents' worth, and keeps
as given the largest whole latent group inside the overlap (the other overlapping frames are
regenerated but not used: every frame is taken from the first chunk that generated it).

Frames are indices into the scene's reference-camera frames (12 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, DataError

__all__ = ["Chunk", "plan_rollout", "given_frames_for_latents", "latents_for_frames"]


@dataclass(frozen=True)
class Chunk:
    """One chunk: frames ``start .. start + num_frames - 1``; the first ``given_frames`` are given
    (0 for a chunk generated without frames); frames from ``keep_from`` on (clip-relative) are new."""

    start: int
    num_frames: int
    given_frames: int
    keep_from: int

    @property
    def given_latents(self) -> int:
        """Latent frames given (the causal VAE maps 4(m-1)+1 frames to m latents)."""
        return latents_for_frames(self.given_frames) if self.given_frames else 0


def given_frames_for_latents(m: int) -> int:
    """Frames that ``m >= 1`` latent frames of the causal VAE encode: ``4 (m - 1) + 1``."""
    if m < 1:
        raise ConfigError(f"given latent frames must be >= 1, got {m}")
    return 4 * (m - 1) + 1


def latents_for_frames(f: int) -> int:
    """Latent frames of ``f = 4k + 1`` frames: ``k + 1``."""
    if f < 1 or (f - 1) % 4:
        raise ConfigError(f"a causal-VAE clip has 4k+1 frames, got {f}")
    return (f - 1) // 4 + 1


def plan_rollout(n: int, num_frames: int, overlap_latents: int = 1, first_given: int = 0) -> list[Chunk]:
    """Chunks covering frames ``0 .. n - 1`` (see the module doc).

    num_frames: frames per chunk (4k + 1, k >= 1). overlap_latents: latent frames each later chunk
    takes from the previous one (< the chunk's latents). first_given: frames given to the first
    chunk (0 in free mode; ``4 (m - 1) + 1`` in first-frame mode).
    """
    lat = latents_for_frames(num_frames)
    if lat < 2:
        raise ConfigError(f"a rollout chunk needs at least 2 latent frames (num_frames >= 5), got {num_frames}")
    if not 1 <= overlap_latents < lat:
        raise ConfigError(f"overlap_latents must be in [1, {lat - 1}] for {num_frames}-frame chunks, got {overlap_latents}")
    if first_given:
        latents_for_frames(first_given)
        if first_given >= num_frames:
            raise ConfigError(f"first_given ({first_given}) must be fewer than the chunk's {num_frames} frames")
    if n < num_frames:
        raise DataError(f"the scene has {n} frames, fewer than one {num_frames}-frame chunk", None, "frames")
    overlap = given_frames_for_latents(overlap_latents)
    chunks = [Chunk(0, num_frames, first_given, first_given)]
    end = num_frames  # frames generated so far: 0 .. end - 1
    while end < n:
        start = end - overlap
        if start + num_frames > n:  # the last chunk ends on the scene's last frame
            start = n - num_frames
            span = end - start  # frames of it already generated (>= overlap)
            given = 4 * ((span - 1) // 4) + 1  # the largest whole latent group inside the overlap
        else:
            given = overlap
        chunks.append(Chunk(start, num_frames, given, end - start))
        end = start + num_frames
    return chunks
