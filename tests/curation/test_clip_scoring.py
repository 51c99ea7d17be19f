"""Clip-level measurements (occlusion, missing data, integrity) and the score / keep decision."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from genesis_drive.curation.image_quality import luminance
from genesis_drive.curation.integrity import check_integrity
from genesis_drive.curation.measures import measure_clip
from genesis_drive.curation.occlusion import OcclusionConfig, dirt_index, occlusion_fraction
from genesis_drive.curation.scoring import (
    SUBSCORES,
    Curve,
    ScoreConfig,
    score_clip,
    worst_mean,
)
from genesis_drive.data.schema import Box3D

from .clips import make_clip
from .images import gaussian_blur, lens_dirt, natural_image, over_expose


def test_curve_anchors_and_direction():
    c = Curve(good=0.2, bad=0.6)
    assert float(c(0.2)) == pytest.approx(0.9) and float(c(0.6)) == pytest.approx(0.1)
    assert float(c(0.4)) == pytest.approx(0.5)
    up = Curve(good=0.12, bad=0.05)  # higher is better
    assert float(up(0.2)) > 0.9 > float(up(0.1)) > float(up(0.05)) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        Curve(1.0, 1.0)


def test_worst_mean():
    assert worst_mean(np.array([5.0, 1.0, 3.0, 2.0]), 0.5) == pytest.approx(1.5)
    assert worst_mean(np.array([5.0, 1.0]), 0.01) == 1.0


def _drive_frames(seed: int, t: int = 16, dirt: float = 0.0, step: int = 45) -> np.ndarray:
    """Luma frames of a view panning ``step`` px per frame over a wide scene (content changes)."""
    big = natural_image(seed, 144, 256 + step * t)
    frames = [big[:, step * i : step * i + 256] for i in range(t)]
    if dirt:
        frames = [lens_dirt(f, dirt, seed) for f in frames]
    return np.stack([luminance(f) for f in frames])


@pytest.mark.parametrize("static", [False, True])
def test_occlusion_monotonic_in_dirt_coverage(static):
    for seed in (0, 1, 2):
        vals = []
        for c in (0.0, 0.05, 0.15, 0.3):
            y = _drive_frames(seed, dirt=c)
            vals.append(occlusion_fraction(y[:1] if static else y))
        assert vals[0] < (0.05 if static else 0.01), vals  # one frame: the weaker, stricter test
        assert vals[0] < vals[1] < vals[2] < vals[3], vals
        # one frame: only blobs smooth over 3x3 cells (24 px) count fully (static_neighbourhood)
        assert vals[3] > (0.045 if static else 0.15), vals


def test_dirt_index_rises_with_smudges_and_needs_motion():
    for seed in (0, 1, 2):
        clean = dirt_index(_drive_frames(seed))
        assert all(dirt_index(_drive_frames(seed, dirt=c)) > clean * 1.4 for c in (0.05, 0.15, 0.3))
        assert dirt_index(_drive_frames(seed, dirt=0.15)[:8]) == 0.0  # too few frames to tell smudges from objects


def _smudge_alpha(h: int, w: int, seed: int) -> np.ndarray:
    """Opacity ``(h w)`` of 8 soft, semi-transparent smudges (discs of radius 5-9 px blurred with
    sigma 3 px, peak opacity about 0.48): the SynthTown kind, out of focus and see-through."""
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.float32)
    for _ in range(8):
        cv2.circle(m, (int(rng.uniform(20, w - 20)), int(rng.uniform(10, h - 10))), int(rng.uniform(5, 9)), 1.0, -1)
    return 0.5 * cv2.GaussianBlur(m, (0, 0), 3.0)


def test_static_semi_transparent_smudges_over_moving_content_score_worse():
    cfg = ScoreConfig()
    for seed in (0, 1, 2):
        y = _drive_frames(seed, t=32, step=24)  # (t h w) luma of a view panning over a wide scene
        a = _smudge_alpha(*y.shape[1:], seed)
        assert 0.4 < a.max() < 0.55
        dirty = y * (1 - a[None]) + 0.2 * a[None]  # I = (1 - a) S + a c, the same smudges in every frame
        clean_idx, dirty_idx = dirt_index(y), dirt_index(dirty)
        assert dirty_idx > 1.5 * clean_idx, (clean_idx, dirty_idx)
        assert float(cfg.dirt(dirty_idx)) < 0.5, dirty_idx  # flagged: listed among the rejection reasons
        assert float(cfg.dirt(clean_idx)) > 0.9, clean_idx
        # the same smudges moving with the content (on the world, not on the lens) count far less
        moving = np.stack([np.roll(a, -24 * i, axis=1) for i in range(len(y))])
        world_idx = dirt_index(y * (1 - moving) + 0.2 * moving)
        assert world_idx < 0.5 * (clean_idx + dirty_idx), (clean_idx, world_idx, dirty_idx)


def test_clean_clip_is_kept_with_high_scores():
    clip = make_clip(t=4, seed=3)
    m = measure_clip(clip)
    s = score_clip(m, ScoreConfig())
    assert s.kept and s.reasons == []
    assert set(s.sub) == set(SUBSCORES)
    assert min(s.sub.values()) > 0.6, s.sub
    assert m.missing_fraction == 0 and m.integrity == 0 and not m.issues


@pytest.mark.parametrize("fault, reason", [("blur", "blur"), ("over", "exposure"), ("dirt", "occlusion")])
def test_faulty_view_rejects_clip_with_reason(fault, reason):
    clip = make_clip(t=4, seed=5)
    for t in range(clip.num_frames):
        img = clip.images[t, 1]
        clip.images[t, 1] = {"blur": lambda x: gaussian_blur(x, 3.0), "over": lambda x: over_expose(x, 2.5), "dirt": lambda x: lens_dirt(x, 0.25, 1)}[fault](img)
    s = score_clip(measure_clip(clip), ScoreConfig())
    assert not s.kept and reason in s.reasons, (s.sub, s.reasons)
    clean = score_clip(measure_clip(make_clip(t=4, seed=5)), ScoreConfig())
    assert clean.kept and clean.total > s.total + 0.1


def test_blur_severity_lowers_the_clip_score_monotonically():
    totals = []
    for sigma in (0.0, 1.0, 2.0, 4.0):
        clip = make_clip(t=2, seed=5)
        clip.images[:] = np.stack([[gaussian_blur(clip.images[t, v], sigma) for v in range(clip.num_views)] for t in range(2)])
        totals.append(score_clip(measure_clip(clip), ScoreConfig()).sub["blur"])
    assert all(b < a for a, b in zip(totals, totals[1:])), totals


def test_missing_views_blank_frozen_and_offset_frames():
    full = make_clip(t=4, seed=6)
    views = full.views
    part = make_clip(t=4, seed=6, views=views[:5])
    m = measure_clip(part, expected_views=views)
    assert m.missing_views == ["CAM_FRONT_LEFT"] and m.missing_fraction == pytest.approx(1 / 6)

    clip = make_clip(t=4, seed=6)
    clip.images[2, 3] = 0  # blank frame
    clip.images[3, 4] = clip.images[2, 4]  # frozen frame while the ego moves
    m = measure_clip(clip)
    assert m.missing_slots[2, 3] and m.missing_slots[3, 4] and m.missing_slots.sum() == 2
    assert m.missing_fraction == pytest.approx(2 / 24)

    offsets = np.zeros((4, 6))
    offsets[1, 2] = 1.0  # this view's frame is one period away: it was dropped
    m = measure_clip(make_clip(t=4, seed=6), frame_offsets=offsets, period_us=83_333)
    assert m.missing_slots[1, 2] and m.missing_slots.sum() == 1
    s = score_clip(m, ScoreConfig())
    assert "missing" in s.reasons and not s.kept


def test_reference_time_gap_counts_dropped_frames():
    clip = make_clip(t=4, seed=7)
    clip.timestamps[2:] += 83_333  # one reference frame missing between frames 1 and 2
    m = measure_clip(clip, period_us=83_333)
    assert m.missing_fraction == pytest.approx(1 / 24)


def test_integrity_flags_bad_annotations_and_timing():
    car = Box3D.from_yaw([10, 0, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car", instance_token="a")
    clip = make_clip(t=3, seed=8, boxes=[car])
    assert check_integrity(clip) == []
    giant = Box3D.from_yaw([20, 5, 0.8], [1.9, 40.0, 1.6], 0.0, "vehicle.car", instance_token="b")
    overlap = Box3D.from_yaw([10.5, 0.2, 0.8], [1.9, 4.5, 1.6], 0.1, "vehicle.car", instance_token="c")
    flying = Box3D.from_yaw([15, -5, 9.0], [0.6, 0.7, 1.8], 0.0, "human.pedestrian.adult", instance_token="d")
    clip = make_clip(t=3, seed=8, boxes=[car, giant, overlap, flying])
    clip.boxes[2] = [replace(b, center=b.center + np.array([30.0, 0, 0])) if b.instance_token == "a" else b for b in clip.boxes[2]]
    clip.timestamps[2] = clip.timestamps[1]
    kinds = sorted(i.kind for i in check_integrity(clip))
    assert kinds == ["box_ground", "box_overlap", "box_size", "timestamps"]  # no speed check across a zero interval
    clip.timestamps[2] = clip.timestamps[1] + 83_333
    kinds = sorted(i.kind for i in check_integrity(clip))
    assert kinds == ["box_ground", "box_overlap", "box_size", "track_jump"]
    s = score_clip(measure_clip(clip), ScoreConfig())
    assert s.sub["integrity"] < 0.1 and "integrity" in s.reasons


def test_weights_and_threshold():
    m = measure_clip(make_clip(t=2, seed=9))
    a = score_clip(m, ScoreConfig(weights=(1.0, 0.0, 0.0)))
    assert a.total == pytest.approx(a.groups["clarity"])
    b = score_clip(m, ScoreConfig(threshold=1.01))
    assert not b.kept and b.reasons  # never reached: rejected with a reason


def test_box_mask_covers_the_projected_box_only():
    from genesis_drive.curation.box_masks import box_mask

    from .clips import cam_to_ego, intrinsics

    k = intrinsics(128, 72)
    cam_from_ego = np.linalg.inv(cam_to_ego(0.0))
    ahead = Box3D.from_yaw([12.0, 0.0, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car")
    behind = Box3D.from_yaw([-12.0, 0.0, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car")
    m = box_mask([ahead, behind], cam_from_ego, k, (128, 72))
    assert m[36, 64] and not m[5, 5] and not m[70, 2]
    assert 0.02 < m.mean() < 0.2
    assert not box_mask([behind], cam_from_ego, k, (128, 72)).any()


def test_annotated_objects_are_not_taken_for_occluders():
    y = _drive_frames(0, dirt=0.3)
    h, w = y.shape[1:]
    occluded = occlusion_fraction(y)
    everything = np.ones((len(y), h, w), bool)
    assert occluded > 0.15 and occlusion_fraction(y, objects=everything) == 0.0
    assert occlusion_fraction(y, objects=np.zeros_like(everything)) == pytest.approx(occluded)


def _facade_frames(t: int = 48, luma: float = 0.3, drift_px: float = 4.0) -> np.ndarray:
    """Luma frames ``(t h w)`` of a dusk street seen by a crawling ego, no smudge on the lens: on
    the left a near building's flat-shaded wall (uniform luma, no texture) with rows of darker
    windows 16 px apart, on the right a brighter, detailed distance; the view drifts ``drift_px``
    px over the whole stack (almost no change over time)."""
    h, w = 144, 256 + int(drift_px) + 2
    big = np.full((h, w), luma, np.float32)
    for y0 in range(8, 140, 30):
        for x0 in range(6, 160, 26):
            big[y0 : y0 + 14, x0 : x0 + 14] = luma * 0.6
    rng = np.random.default_rng(3)
    far = cv2.GaussianBlur(rng.uniform(0.35, 0.75, (h, w - 170)).astype(np.float32), (0, 0), 1.0)
    big[:, 170:] = far
    shifts = np.linspace(0.0, drift_px, t)
    return np.stack([cv2.warpAffine(big, np.float32([[1, 0, -s], [0, 1, 0]]), (w, h))[:, :256] for s in shifts])


def test_dark_crawling_facade_without_smudges_is_not_occluded():
    y = _facade_frames()
    assert float(np.median(np.abs(y - np.median(y, axis=0)).mean(axis=0))) < OcclusionConfig().moving_gate  # a static view
    clean = occlusion_fraction(y)
    assert clean < ScoreConfig().occlusion.good, clean  # scored above 0.9
    # the wall bands between the window rows are smooth up to the nearest window edge only
    assert occlusion_fraction(y, replace(OcclusionConfig(), static_neighbourhood=1)) > 0.15
    # an opaque dark leaf intruding from the top-left corner of the same view is still found:
    # most of its area (the cells of its soft rim excepted), well above the curve's good anchor
    yy, xx = np.mgrid[:144, :256]
    mask = cv2.GaussianBlur(((xx - 40.0) ** 2 / 55**2 + (yy - 20.0) ** 2 / 45**2 < 1).astype(np.float32), (0, 0), 5.0)
    leaf = occlusion_fraction(y * (1 - 0.95 * mask) + 0.1 * 0.95 * mask)
    assert 0.7 * float((mask > 0.5).mean()) < leaf < 1.1 * float((mask > 0.5).mean()), leaf
    assert leaf > 1.5 * ScoreConfig().occlusion.good


def test_dropped_black_frame_is_missing_not_blurred():
    clip = make_clip(t=4, seed=6)
    clip.images[2, 3] = 0  # a dropped frame written black
    m = measure_clip(clip)
    assert m.image["blur"][2, 3] == 1.0 and m.missing_slots[2, 3]  # no detail at all
    s = score_clip(m, ScoreConfig())
    assert s.sub["blur"] > 0.9 and "missing" in s.reasons and "blur" not in s.reasons
