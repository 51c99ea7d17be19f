"""Turn a clip's raw measurements into sub-scores, group scores, the total S and a keep decision.

Every sub-score is in ``[0, 1]`` (1 = flawless) and is a strictly monotone logistic function of one
raw measurement (so rankings, and therefore ROC-AUCs, are those of the raw values). A
:class:`Curve` is fixed by two anchors: the raw value scored 0.9 (``good``) and the one scored 0.1
(``bad``); the direction follows from their order.

Groups (each the minimum of its sub-scores: a clip is as clear as its worst defect):

* clarity    = min(blur, noise, compression)
* structure  = min(occlusion, missing, integrity)
* aesthetics = min(exposure, backlight, contrast, colour_cast)

Per-image sub-scores (:func:`per_image_subscores`) are reduced to the clip by the mean of the
worst ``worst_fraction`` of the clip's images.

``S = l1 * clarity + l2 * structure + l3 * aesthetics``; a clip is kept when it was measured
without error and ``S >= threshold``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .measures import ClipMeasures

__all__ = [
    "GROUPS",
    "SCORE_PRESETS",
    "SUBSCORES",
    "ClipScores",
    "Curve",
    "ScoreConfig",
    "per_image_subscores",
    "score_clip",
    "worst_mean",
]

#: Group name -> its sub-score names (the manifest has a ``score_<name>`` column for each).
GROUPS: dict[str, tuple[str, ...]] = {
    "clarity": ("blur", "noise", "compression"),
    "structure": ("occlusion", "missing", "integrity"),
    "aesthetics": ("exposure", "backlight", "contrast", "colour_cast"),
}
SUBSCORES: tuple[str, ...] = tuple(s for names in GROUPS.values() for s in names)


@dataclass(frozen=True)
class Curve:
    """Logistic map raw value -> score with ``score(good) = 0.9`` and ``score(bad) = 0.1``."""

    good: float
    bad: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.good) and math.isfinite(self.bad)) or self.good == self.bad:
            raise ValueError(f"Curve anchors must be finite and differ, got good={self.good}, bad={self.bad}")

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        k = 2.0 * math.log(9.0) / (self.bad - self.good)  # sign carries the direction
        mid = 0.5 * (self.good + self.bad)
        z = np.clip(k * (np.asarray(x, dtype=np.float64) - mid), -60, 60)
        return 1.0 / (1.0 + np.exp(z))


def worst_mean(values: np.ndarray, fraction: float) -> float:
    """Mean of the lowest ``fraction`` of ``values`` (at least one value)."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0:
        raise ValueError("worst_mean of an empty array")
    n = max(1, int(math.ceil(fraction * v.size)))
    return float(v[:n].mean())


@dataclass(frozen=True)
class ScoreConfig:
    """Curves per raw measurement, group weights and thresholds.

    Raw units (:mod:`.image_quality`, :mod:`.measures`): blur effect 0..1 and its jump over the
    view's clip median, both at the image's native pixel scale; noise sigma in 8-bit grey levels
    (native scale); JPEG quality on the IJG 1-100 scale (100: no JPEG quantisation found);
    exposed fractions 0..1, mean luma 0..1 and the relative brightness jump; backlight index (luma difference,
    -1..1) and its jump; contrast = luma std 0..1; colour cast ``D min(1, K)`` in CIELAB units;
    occlusion = soft occluded fraction of the worst view 0..1 and dirt = lens-dirt soft-blob index
    of the worst view (dimensionless, :func:`~.occlusion.dirt_index`; the occlusion sub-score is
    the lower of the two); missing = fraction of (frame,
    view) slots missing, blank or frozen; integrity = weighted count of annotation / timing
    violations. Per-image sub-scores take the minimum over their curves (e.g. blur = min(blur,
    blur_jump)); the blur of a missing slot (``ClipMeasures.missing_slots``) is 1, the missing
    sub-score counts it.

    worst_fraction: per-image sub-scores (T x V images) are reduced to the clip by the mean of the
    worst ``worst_fraction`` of images, so a fault in one view or a few frames still counts.
    reason_below: sub-scores below this are listed as rejection reasons of a rejected clip.
    """

    blur: Curve = Curve(0.42, 0.60)
    blur_jump: Curve = Curve(0.05, 0.15)
    noise: Curve = Curve(4.0, 10.0)
    compression: Curve = Curve(55.0, 25.0)
    over_exposed: Curve = Curve(0.15, 0.40)
    under_exposed: Curve = Curve(0.15, 0.60)
    brightness: Curve = Curve(0.68, 0.82)
    brightness_jump: Curve = Curve(0.2, 0.6)
    backlight: Curve = Curve(0.65, 0.9)
    backlight_jump: Curve = Curve(0.1, 0.25)
    contrast: Curve = Curve(0.06, 0.02)
    colour_cast: Curve = Curve(8.0, 20.0)
    occlusion: Curve = Curve(0.06, 0.18)
    dirt: Curve = Curve(0.8, 1.3)
    missing: Curve = Curve(0.005, 0.02)
    integrity: Curve = Curve(0.25, 1.5)
    weights: tuple[float, float, float] = (0.4, 0.3, 0.3)
    threshold: float = 0.75
    worst_fraction: float = 0.02
    reason_below: float = 0.5

    def __post_init__(self) -> None:
        if len(self.weights) != 3 or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError(f"ScoreConfig.weights (l1, l2, l3) must be 3 non-negative numbers, got {self.weights}")
        if not 0 < self.worst_fraction <= 1:
            raise ValueError(f"ScoreConfig.worst_fraction must be in (0, 1], got {self.worst_fraction}")

    def to_dict(self) -> dict:
        return asdict(self)


def _strict() -> ScoreConfig:
    return ScoreConfig(threshold=0.85)


def _lenient() -> ScoreConfig:
    return ScoreConfig(threshold=0.6)


#: Named presets (``--preset``): "default" as above; "strict" / "lenient" move the threshold only.
SCORE_PRESETS = {"default": ScoreConfig, "strict": _strict, "lenient": _lenient}


@dataclass
class ClipScores:
    """Sub-scores, groups, total S, keep decision and reasons of one clip."""

    sub: dict[str, float]
    groups: dict[str, float]
    total: float
    kept: bool
    reasons: list[str] = field(default_factory=list)


def per_image_subscores(image: dict[str, np.ndarray], cfg: ScoreConfig) -> dict[str, np.ndarray]:
    """Per-image sub-scores (same shape as the inputs, usually ``(t v)``) from raw measurements
    (:data:`~.measures.IMAGE_MEASURES` plus the temporal jumps)."""
    im, mn = image, np.minimum
    exposure = mn(mn(cfg.over_exposed(im["over_exposed"]), cfg.under_exposed(im["under_exposed"])), cfg.brightness(im["brightness"]))
    return {
        "blur": mn(cfg.blur(im["blur"]), cfg.blur_jump(im["blur_jump"])),
        "noise": cfg.noise(im["noise"]),
        "compression": cfg.compression(im["jpeg_quality"]),
        "exposure": mn(exposure, cfg.brightness_jump(im["brightness_jump"])),
        "backlight": mn(cfg.backlight(im["backlight"]), cfg.backlight_jump(im["backlight_jump"])),
        "contrast": cfg.contrast(im["contrast"]),
        "colour_cast": cfg.colour_cast(im["cast"]),
    }


def score_clip(m: ClipMeasures, cfg: ScoreConfig) -> ClipScores:
    """Score one clip's measurements with ``cfg``."""
    per_image = per_image_subscores(m.image, cfg)
    # a missing slot (blank, frozen, off-time) is scored by ``missing``; a black dropped frame has
    # no detail at all and would also read as fully blurred
    per_image["blur"] = np.where(m.missing_slots, 1.0, per_image["blur"])
    sub = {name: worst_mean(v, cfg.worst_fraction) for name, v in per_image.items()}
    sub["occlusion"] = float(min(cfg.occlusion(m.occlusion), cfg.dirt(m.dirt)))
    sub["missing"] = float(cfg.missing(m.missing_fraction))
    sub["integrity"] = float(cfg.integrity(m.integrity))
    groups = {g: min(sub[s] for s in names) for g, names in GROUPS.items()}
    l1, l2, l3 = cfg.weights
    total = l1 * groups["clarity"] + l2 * groups["structure"] + l3 * groups["aesthetics"]
    kept = bool(total >= cfg.threshold)
    reasons = [] if kept else ([s for s in SUBSCORES if sub[s] < cfg.reason_below] or ["low_total"])
    return ClipScores({s: sub[s] for s in SUBSCORES}, groups, float(total), kept, reasons)
