"""Raw quality measurements of a whole clip: per-image statistics, lens occlusion, missing data,
scene integrity. Scores are derived from these by :mod:`.scoring`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.schema import Clip
from .image_quality import ImageMeasures, downscale, luminance, measure_image
from .integrity import IntegrityConfig, Issue, check_integrity
from .occlusion import OcclusionConfig, OcclusionMeasures, occlusion_measures

__all__ = ["IMAGE_MEASURES", "ClipMeasures", "MeasureConfig", "add_temporal_jumps", "measure_clip"]

IMAGE_MEASURES: tuple[str, ...] = tuple(ImageMeasures.__dataclass_fields__)


@dataclass(frozen=True)
class MeasureConfig:
    """How a clip is measured.

    analysis_width: images wider than this (pixels) are area-downscaled before measuring, except
        the clarity measurements, judged at the native pixel scale: JPEG quality on the whole
        image, blur and noise on native-resolution tiles totalling the downscaled image's area
        (:func:`~.image_quality.native_tiles`); None measures everything at native size.
    blank_std: an image whose luma standard deviation is below this (8-bit grey levels) is blank.
    frozen_diff: two consecutive frames of a view whose mean absolute difference is below this
        (grey levels) are a repeat; it counts as a missing frame when the ego moved more than
        ``frozen_min_motion`` metres between them (a moving camera never sees the same image twice).
    max_frame_offset: a view's frame farther than this many of its frame periods from the
        reference camera's timestamp is missing (it was dropped and a neighbour stands in). The
        nearest frame of a healthy view is at most half a period away plus the views' trigger
        offset (0 in SynthTown, up to ~0.3 periods on nuScenes), a stand-in about one period.
    gap_factor: a reference-camera interval longer than ``gap_factor`` periods means dropped frames.
    occlusion_frames: lens occlusion is judged on this many frames of the camera spread evenly over
        the whole scene (dirt stays on the lens; over a scene everything else moves), when the
        dataset is available (:class:`~.worker.ClipWorker`); else on the clip's own frames.
    """

    analysis_width: int | None = 640
    blank_std: float = 2.0
    frozen_diff: float = 0.5
    frozen_min_motion: float = 0.3
    max_frame_offset: float = 0.75
    gap_factor: float = 1.5
    occlusion_frames: int = 48
    occlusion: OcclusionConfig = OcclusionConfig()
    integrity: IntegrityConfig = IntegrityConfig()


@dataclass
class ClipMeasures:
    """Raw measurements of one clip.

    image: measurement name -> ``(t v)`` array over frames and views (units: :mod:`.image_quality`),
        plus the temporal jumps of :func:`add_temporal_jumps`.
    occlusion_per_view: ``(v,)`` occluded fraction of each view; occlusion: their maximum.
    dirt_per_view: ``(v,)`` lens-dirt index of each view (:func:`~.occlusion.dirt_index`), dirt:
        their maximum.
    missing_slots: ``(t v)`` bool, frames missing, blank, frozen or off-time per view;
    missing_views: expected views the clip lacks; missing_fraction: missing (frame, view) slots
    over ``t * len(expected views)``.
    integrity: sum of issue weights; issues: the issues.
    """

    views: tuple[str, ...]
    image: dict[str, np.ndarray]
    occlusion_per_view: np.ndarray
    dirt_per_view: np.ndarray
    missing_slots: np.ndarray
    missing_views: list[str]
    missing_fraction: float
    integrity: float
    issues: list[Issue] = field(default_factory=list)

    @property
    def occlusion(self) -> float:
        return float(self.occlusion_per_view.max()) if self.occlusion_per_view.size else 0.0

    @property
    def dirt(self) -> float:
        return float(self.dirt_per_view.max()) if self.dirt_per_view.size else 0.0

    def details(self) -> dict:
        """A JSON-able summary: per-view medians of every image measurement (and worst frame
        index of blur / exposure), occlusion per view, missing-data and integrity findings."""
        per_view = {}
        for vi, v in enumerate(self.views):
            d = {k: round(float(np.median(a[:, vi])), 5) for k, a in self.image.items()}
            d["worst_blur_frame"] = int(np.argmax(self.image["blur"][:, vi]))
            d["occlusion"] = round(float(self.occlusion_per_view[vi]), 5)
            d["dirt"] = round(float(self.dirt_per_view[vi]), 4)
            d["missing_frames"] = np.flatnonzero(self.missing_slots[:, vi]).tolist()
            per_view[v] = d
        return {
            "views": per_view,
            "missing_views": list(self.missing_views),
            "missing_fraction": round(self.missing_fraction, 5),
            "integrity": self.integrity,
            "issues": [f"{i.kind}: {i.message}" for i in self.issues[:20]],
        }


def add_temporal_jumps(image: dict[str, np.ndarray]) -> None:
    """Add each frame's change against its own view's median over the clip (faults that hit single
    frames stand out against the same camera's other frames; 0 for one-frame clips):
    ``blur_jump`` (blur effect difference), ``brightness_jump`` (relative mean-luma increase,
    ``b / median b - 1``) and ``backlight_jump`` (backlight index difference)."""
    med = {k: np.median(image[k], axis=0, keepdims=True) for k in ("blur", "brightness", "backlight")}
    image["blur_jump"] = image["blur"] - med["blur"]
    image["brightness_jump"] = image["brightness"] / np.maximum(med["brightness"], 0.02) - 1.0
    image["backlight_jump"] = image["backlight"] - med["backlight"]


def _frozen_slots(y: list[np.ndarray], clip: Clip, cfg: MeasureConfig) -> np.ndarray:
    """``(t v)`` bool: frame t of view v repeats frame t-1 although the ego moved."""
    t_n, v_n = clip.num_frames, clip.num_views
    out = np.zeros((t_n, v_n), bool)
    moved = np.hypot(*np.diff(clip.ego_trajectory[:, :2], axis=0).T) > cfg.frozen_min_motion
    for t in range(1, t_n):
        if not moved[t - 1]:
            continue
        for v in range(v_n):
            out[t, v] = float(np.mean(np.abs(y[v][t] - y[v][t - 1]))) * 255.0 < cfg.frozen_diff
    return out


def measure_clip(
    clip: Clip,
    cfg: MeasureConfig = MeasureConfig(),
    expected_views: tuple[str, ...] | None = None,
    frame_offsets: np.ndarray | None = None,
    period_us: float | None = None,
    occlusion: list[OcclusionMeasures] | None = None,
) -> ClipMeasures:
    """Measure ``clip``.

    expected_views: the views the clip should have (default: its own); absent ones are missing.
    frame_offsets: ``(t v)`` |timestamp of the dataset frame of view v nearest to reference time t
        - that time|, in frame periods of view v (the clip stores reference timestamps only);
        None skips that test.
    period_us: nominal frame period of the reference camera in microseconds (default: the
        median interval of the clip's timestamps).
    occlusion: per view, occlusion measurements made elsewhere (over the scene); None measures
        them on the clip's own frames.
    """
    t_n, v_n = clip.num_frames, clip.num_views
    expected = tuple(expected_views) if expected_views is not None else clip.views
    image = {k: np.zeros((t_n, v_n)) for k in IMAGE_MEASURES}
    lumas: list[np.ndarray] = []  # per view: (t h w) analysis-resolution luma
    for v in range(v_n):
        frames = []
        for t in range(t_n):
            rgb = clip.images[t, v]
            for k, val in measure_image(rgb, cfg.analysis_width).to_dict().items():
                image[k][t, v] = val
            frames.append(luminance(downscale(rgb, cfg.analysis_width)))
        lumas.append(np.stack(frames))
    add_temporal_jumps(image)
    if occlusion is None:
        occlusion = [occlusion_measures(y, cfg.occlusion) for y in lumas]
    if len(occlusion) != v_n:
        raise ValueError(f"occlusion must give measurements per view ({v_n}), got {len(occlusion)}")
    missing = np.zeros((t_n, v_n), bool)
    missing |= np.array([[float(lumas[v][t].std()) * 255.0 < cfg.blank_std for v in range(v_n)] for t in range(t_n)])
    missing |= _frozen_slots(lumas, clip, cfg)
    dts = np.diff(clip.timestamps).astype(np.float64)
    period = float(period_us) if period_us else (float(np.median(dts)) if dts.size else 0.0)
    gap_slots = 0
    if period > 0:
        gap_slots = int(sum(max(0, int(round(dt / period)) - 1) for dt in dts if dt > cfg.gap_factor * period))
    if frame_offsets is not None:
        off = np.asarray(frame_offsets, dtype=np.float64)
        if off.shape != (t_n, v_n):
            raise ValueError(f"frame_offsets must be (t={t_n}, v={v_n}) frame periods, got {off.shape}")
        missing |= off > cfg.max_frame_offset
    missing_views = [v for v in expected if v not in clip.views]
    total_slots = t_n * max(len(expected), 1)
    n_missing = int(missing[:, [i for i, v in enumerate(clip.views) if v in expected]].sum()) + gap_slots + t_n * len(missing_views)
    issues = check_integrity(clip, cfg.integrity)
    return ClipMeasures(
        views=clip.views,
        image=image,
        occlusion_per_view=np.array([o.occluded for o in occlusion], dtype=np.float64),
        dirt_per_view=np.array([o.dirt for o in occlusion], dtype=np.float64),
        missing_slots=missing,
        missing_views=missing_views,
        missing_fraction=min(1.0, n_missing / total_slots),
        integrity=float(sum(i.weight for i in issues)),
        issues=issues,
    )
