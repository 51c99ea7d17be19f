"""Camera sensor faults injected into SynthTown images, with their ground truth.

Kinds (:data:`~genesis_drive.world.config.FAULT_KINDS`):

* ``motion_blur``: linear blur along a random direction, length 1.5 %..6 % of the image width;
* ``overexposure``: gain 1.6x..3.4x plus an offset, clipped (blown-out highlights);
* ``backlight``: shooting into a low sun: a bright glare centred near the top of the frame,
  the rest of the image darkened (silhouettes);
* ``lens_dirt``: semi-transparent, out-of-focus brown-grey blotches (stay for the whole scene);
* ``occlusion``: a near-opaque out-of-focus dark shape over about 5 %..35 % of the image, entering from
  an edge (a leaf, a sticker; stays for the whole scene);
* ``dropped_frame``: the camera delivered no data: the image is all black (the sample_data record is
  kept, so every sample still has all six cameras and every channel stays at 12 Hz).

``severity`` in [0.3, 1] scales each effect. Which frames get which fault is drawn up front from a
seeded generator (see :class:`~genesis_drive.world.config.FaultRate` for per-frame / per-clip rates).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import FaultConfig

__all__ = ["FaultEvent", "apply_faults", "draw_faults"]

#: Order in which faults are applied to one image (lens effects first, drop last).
_ORDER = ("lens_dirt", "occlusion", "overexposure", "backlight", "motion_blur", "dropped_frame")


@dataclass(frozen=True)
class FaultEvent:
    """One fault on one image. seed: fixes the fault's random pattern (same seed, same pattern)."""

    kind: str
    severity: float
    per: str
    seed: int


def draw_faults(cfg: FaultConfig, rng: np.random.Generator, num_frames: int, channels: tuple[str, ...]) -> dict[tuple[int, str], list[FaultEvent]]:
    """Faults of every (camera frame index, channel) of one scene; frames without faults are absent.

    per-clip kinds: each channel has the fault on all its frames with probability ``rate`` (one
    pattern for the whole clip). per-frame kinds: each image independently with probability ``rate``.
    """
    out: dict[tuple[int, str], list[FaultEvent]] = {}
    for fr in cfg.rates:
        for ch in channels:
            if fr.per == "clip":
                hit = rng.random() < fr.rate
                sev = float(rng.uniform(0.3, 1.0))
                seed = int(rng.integers(2**31))
                if hit:
                    for f in range(num_frames):
                        out.setdefault((f, ch), []).append(FaultEvent(fr.kind, sev, "clip", seed))
            else:
                hits = rng.random(num_frames) < fr.rate
                sev = rng.uniform(0.3, 1.0, num_frames)
                seeds = rng.integers(2**31, size=num_frames)
                for f in np.flatnonzero(hits):
                    out.setdefault((int(f), ch), []).append(FaultEvent(fr.kind, float(sev[f]), "frame", int(seeds[f])))
    for events in out.values():
        events.sort(key=lambda e: _ORDER.index(e.kind))
    return out


def apply_faults(image: np.ndarray, events: list[FaultEvent]) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``events`` applied in a fixed order; returns a new array."""
    img = image.astype(np.float32)
    for ev in sorted(events, key=lambda e: _ORDER.index(e.kind)):
        img = _APPLY[ev.kind](img, ev.severity, np.random.default_rng(ev.seed))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _motion_blur(img: np.ndarray, sev: float, rng: np.random.Generator) -> np.ndarray:
    w = img.shape[1]
    length = max(round(w * (0.015 + 0.045 * sev)), 3)
    angle = rng.uniform(0, np.pi)
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    for t in np.linspace(-c, c, 4 * length):
        k[round(c + t * np.sin(angle)), round(c + t * np.cos(angle))] = 1.0
    return cv2.filter2D(img, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


def _overexposure(img: np.ndarray, sev: float, rng: np.random.Generator) -> np.ndarray:
    gain = 1.6 + 1.8 * sev * rng.uniform(0.9, 1.1)
    return img * gain + 30.0 * sev


def _backlight(img: np.ndarray, sev: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.0, 0.35) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - cx, yy - cy) / h
    glare = np.exp(-((r / (0.3 + 0.3 * sev)) ** 2))[..., None]
    dark = img * (0.75 - 0.4 * sev)
    return dark + (255.0 - dark) * glare * (0.55 + 0.45 * sev)


def _blobs(h: int, w: int, n: int, size: tuple[float, float], rng: np.random.Generator, edge: bool = False) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    for _ in range(n):
        if edge:
            side = rng.integers(4)
            cx = [rng.uniform(0, w), rng.uniform(0, w), 0.0, float(w)][side]
            cy = [0.0, float(h), rng.uniform(0, h), rng.uniform(0, h)][side]
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ax = (int(rng.uniform(*size) * w), int(rng.uniform(*size) * w))
        cv2.ellipse(mask, (int(cx), int(cy)), ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    return mask


def _lens_dirt(img: np.ndarray, sev: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    mask = _blobs(h, w, int(4 + 10 * sev), (0.02, 0.02 + 0.05 * sev), rng)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(w * 0.012, 1.0))
    alpha = np.clip(mask * (0.35 + 0.4 * sev), 0, 0.85)[..., None]
    dirt = np.array([95.0, 80.0, 60.0]) * rng.uniform(0.7, 1.2)
    return img * (1 - alpha) + dirt * alpha


def _occlusion(img: np.ndarray, sev: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    mask = _blobs(h, w, 1, (0.12 + 0.12 * sev, 0.18 + 0.17 * sev), rng, edge=True)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(w * 0.02, 1.0))
    alpha = np.clip(mask * 0.95, 0, 0.95)[..., None]
    color = np.array([25.0, 30.0, 20.0]) * rng.uniform(0.6, 1.4)
    return img * (1 - alpha) + color * alpha


def _dropped(img: np.ndarray, sev: float, rng: np.random.Generator) -> np.ndarray:
    return np.zeros_like(img)


_APPLY = {
    "motion_blur": _motion_blur,
    "overexposure": _overexposure,
    "backlight": _backlight,
    "lens_dirt": _lens_dirt,
    "occlusion": _occlusion,
    "dropped_frame": _dropped,
}
