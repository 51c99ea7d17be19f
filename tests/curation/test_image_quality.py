"""Per-image measurements and scores on natural-looking images and their degraded versions."""

from __future__ import annotations

import numpy as np
import pytest

from genesis_drive.curation import image_quality as iq
from genesis_drive.curation.measures import MeasureConfig, add_temporal_jumps
from genesis_drive.curation.scoring import ScoreConfig, per_image_subscores

from .images import (
    add_noise,
    backlight,
    camera_frame,
    gaussian_blur,
    haze,
    jpeg,
    motion_blur,
    natural_image,
    over_expose,
    pil_jpeg,
    tint,
)

SEEDS = (0, 1, 2)
#: (height, width): SynthTown's tiny cameras, the analysis width, nuScenes, a 1080p camera (Waymo-like)
RESOLUTIONS = ((144, 256), (360, 640), (900, 1600), (1080, 1920))
ANALYSIS_WIDTH = MeasureConfig().analysis_width


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [natural_image(s, 144, 256) for s in SEEDS]


def _m(img):
    return iq.measure_image(img)


def _strictly_increasing(xs):
    return all(b > a for a, b in zip(xs, xs[1:]))


def test_blur_effect_rises_with_gaussian_and_motion_blur(photos):
    for p in photos:
        g = [iq.blur_effect(iq.luminance(gaussian_blur(p, s))) for s in (0, 0.8, 1.6, 3.2)]
        m = [iq.blur_effect(iq.luminance(motion_blur(p, n, 20))) for n in (1, 5, 9, 15)]
        assert _strictly_increasing(g) and _strictly_increasing(m), (g, m)
        assert g[0] < 0.35 and g[-1] > 0.6
    flat = np.full((64, 64), 0.5, np.float32)
    assert iq.blur_effect(flat) == 1.0  # nothing sharp at all


def test_noise_sigma_tracks_added_noise():
    clean = np.full((96, 128), 0.5, np.float32)
    assert iq.noise_sigma(clean) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    for sigma in (2.0, 5.0, 10.0):
        noisy = clean + rng.normal(0, sigma / 255.0, clean.shape).astype(np.float32)
        assert iq.noise_sigma(noisy) == pytest.approx(sigma, rel=0.08)


def test_noise_monotonic_on_photos(photos):
    for p in photos:
        vals = [iq.noise_sigma(iq.luminance(add_noise(p, s))) for s in (0, 4, 8, 16)]
        assert _strictly_increasing(vals), vals


def test_jpeg_quality_reads_the_encoder_quality(photos):
    """The IJG quality is read back from the DC quantisation lattice, whichever libjpeg front end wrote it."""
    for p in photos:
        assert iq.jpeg_quality(iq.luminance(p)) == 100.0  # never compressed
        for q, want in ((95, 93.75), (90, 90.625), (75, 75.0), (50, 50.0), (30, 29.63), (10, 9.64)):
            for encode in (jpeg, pil_jpeg):
                assert iq.jpeg_quality(iq.luminance(encode(p, q))) == pytest.approx(want, abs=0.5), (q, encode.__name__)


def test_jpeg_quality_without_evidence_is_100(photos):
    flat = np.full((144, 256), 0.5, np.float32)
    assert iq.jpeg_quality(flat) == 100.0
    two_tone = np.full((144, 256), 180 / 255, np.float32)
    two_tone[100:] = 90 / 255  # one edge: 32 identical textured blocks line up on every step
    assert iq.jpeg_quality(iq.luminance(jpeg(np.repeat((two_tone * 255).astype(np.uint8)[..., None], 3, 2), 10))) == 100.0
    shifted = jpeg(photos[0], 10)[3:, 5:]  # cropped after compression: the 8-pixel grid moved
    assert iq.jpeg_quality(iq.luminance(shifted)) == 100.0
    assert iq.jpeg_quality(np.zeros((4, 4), np.float32)) == 100.0


def test_exposure_clipping_fractions():
    y = np.linspace(0, 1, 256, dtype=np.float32)[None].repeat(4, 0)
    over, under = iq.clipped_fractions(y)
    assert over == pytest.approx(11 / 256, abs=1 / 256)  # grey levels 245..255
    assert under == pytest.approx(6 / 256, abs=1 / 256)  # grey levels 0..5


def test_over_exposure_monotonic(photos):
    for p in photos:
        vals = [_m(over_expose(p, g)).over_exposed for g in (1.0, 1.4, 1.8, 2.5)]
        assert _strictly_increasing(vals), vals


def test_backlight_index_grows_with_glare(photos):
    for p in photos:
        vals = [_m(backlight(p, s)).backlight for s in (0.0, 0.3, 0.6)]
        assert _strictly_increasing(vals), vals


def test_contrast_and_haze(photos):
    for p in photos:
        c = [_m(haze(p, a)).contrast for a in (0, 0.3, 0.6)]
        h = [_m(haze(p, a)).haze for a in (0, 0.3, 0.6)]
        assert c[0] > c[1] > c[2] and h[0] < h[1] < h[2]
    y = np.zeros((10, 10), np.float32)
    y[:, 5:] = 1.0
    assert iq.rms_contrast(y) == pytest.approx(0.5)


def test_colour_cast(photos):
    grey = np.full((32, 32, 3), 128, np.uint8)
    assert iq.colour_cast(grey)[0] == pytest.approx(0.0, abs=0.5)
    for p in photos:
        means = p.reshape(-1, 3).mean(axis=0)
        balanced = tint(p, tuple(means.mean() / means))  # grey-world balanced: no cast to start with
        k = [iq.colour_cast(tint(balanced, (1 + a, 1.0, 1 - a)))[1] for a in (0.0, 0.1, 0.2, 0.3)]
        assert _strictly_increasing(k), k
        assert k[0] < 0.15 and k[-1] > 0.6, k


def _subscores(img: np.ndarray) -> dict[str, float]:
    """Sub-scores of a single image (a one-frame, one-view clip: no temporal jumps)."""
    image = {k: np.array([[v]]) for k, v in _m(img).to_dict().items()}
    add_temporal_jumps(image)
    return {k: float(v[0, 0]) for k, v in per_image_subscores(image, ScoreConfig()).items()}


def test_sharp_photo_outscores_blurred_and_over_exposed(photos):
    for p in photos:
        sharp, blurred, over = _subscores(p), _subscores(gaussian_blur(p, 2.5)), _subscores(over_expose(p, 2.2))
        assert sharp["blur"] > 0.8 and blurred["blur"] < 0.2
        assert sharp["exposure"] > 0.8 and over["exposure"] < 0.2
        assert min(sharp.values()) > 0.5, sharp
        for worse in (blurred, over):
            assert sum(worse.values()) < sum(sharp.values())


def test_measure_image_rejects_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        iq.measure_image(np.zeros((8, 8, 3), np.float32))


def test_native_tiles_cover_every_band():
    y = np.arange(1080 * 1920, dtype=np.float32).reshape(1080, 1920)
    assert iq.native_tiles(y, None)[0] is y and iq.native_tiles(y, y.size)[0] is y
    tiles = iq.native_tiles(y, 640 * 360)
    assert len(tiles) == 9 and all(t.shape in ((120, 213), (120, 214)) for t in tiles)
    assert sum(t.size for t in tiles) <= 640 * 360 * 1.01
    rows = sorted(int(t[0, 0]) // 1920 // 120 for t in tiles)
    cols = sorted(int(t[0, 0]) % 1920 // 213 for t in tiles)
    assert rows == list(range(9)) and cols == list(range(9))  # every row band and column band once
    assert all(np.shares_memory(t, y) for t in tiles)
    assert len(iq.native_tiles(y[:100, :400], 10)) == 3  # cells keep at least 32 px a side


def test_analysis_width_keeps_clarity_at_native_scale(photos):
    big = jpeg(photos[0], 10)
    full, small = iq.measure_image(big), iq.measure_image(big, analysis_width=64)
    assert small.jpeg_quality == full.jpeg_quality
    assert small.brightness == pytest.approx(full.brightness, abs=0.01)
    # blur and noise on native tiles (3 cells of 48 x 85 px) read about what the whole image reads
    assert small.blur == pytest.approx(full.blur, abs=0.05) and small.noise == pytest.approx(full.noise, abs=0.5)


# ---------------------------------------------------------------------------------------------
# camera photos at their own resolution (nuScenes 1600x900, 1080p cameras): the same scene,
# objects sized relative to the frame, at every resolution


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    return natural_image(seed, h, w, n_shapes=40)


def _camera_subscores(img: np.ndarray | iq.ImageMeasures) -> dict[str, float]:
    """Sub-scores of one image (or of its measurements) at the default analysis width."""
    m = img if isinstance(img, iq.ImageMeasures) else iq.measure_image(img, ANALYSIS_WIDTH)
    image = {k: np.array([[v]]) for k, v in m.to_dict().items()}
    add_temporal_jumps(image)
    return {k: float(v[0, 0]) for k, v in per_image_subscores(image, ScoreConfig()).items()}


@pytest.mark.parametrize("h, w", RESOLUTIONS)
def test_blur_ladder_at_every_resolution(h, w):
    """Gaussian blur of sigma 0, 1, 2, 4 pixels: the blur score falls at every step, at any size."""
    p = _scene(h, w)
    scores = [_camera_subscores(gaussian_blur(p, s))["blur"] for s in (0, 1, 2, 4)]
    assert all(b < a for a, b in zip(scores, scores[1:])), scores
    assert scores[0] > 0.9 and scores[2] < 0.2, scores


def test_two_pixel_blur_of_a_1080p_photo_is_seen_at_the_default_analysis_width():
    """The defect: downscaled to 640 px, a 1920-px photo and its sigma-2 copy both scored 0.988."""
    p = _scene(1080, 1920)
    sharp, blurred = iq.measure_image(p, ANALYSIS_WIDTH), iq.measure_image(gaussian_blur(p, 2), ANALYSIS_WIDTH)
    assert blurred.blur > sharp.blur + 0.25
    assert _camera_subscores(p)["blur"] > 0.95 and _camera_subscores(gaussian_blur(p, 2))["blur"] < 0.2


@pytest.mark.parametrize("h, w", RESOLUTIONS[2:])
def test_exposure_ladder(h, w):
    """Gain 0.5 .. 2.5: darker is not a fault until the blacks are crushed, brighter clips and is flagged."""
    p = _scene(h, w)
    gains = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5)
    m = [iq.measure_image(over_expose(p, g), ANALYSIS_WIDTH) for g in gains]
    over, under = [x.over_exposed for x in m], [x.under_exposed for x in m]
    assert all(b >= a for a, b in zip(over, over[1:])) and all(b > a for a, b in zip(over[2:], over[3:])), over
    assert all(b <= a for a, b in zip(under, under[1:])), under
    assert iq.measure_image(over_expose(p, 0.1), ANALYSIS_WIDTH).under_exposed > under[0]
    exposure = [_camera_subscores(x)["exposure"] for x in m]
    assert min(exposure[:3]) > 0.9, exposure
    assert all(b < a for a, b in zip(exposure[2:], exposure[3:])) and exposure[-1] < 0.2, exposure
    # a property of the picture, not of its pixels: the same reading on the analysis-size copy
    small = iq.downscale(over_expose(p, 2.0), ANALYSIS_WIDTH)
    assert iq.measure_image(small).over_exposed == pytest.approx(m[4].over_exposed, abs=1e-9)


@pytest.mark.parametrize("h, w", RESOLUTIONS)
def test_jpeg_quality_ladder(h, w):
    """Qualities 95 and 75 read as fine, 30 and 10 are flagged (sub-score below 0.5)."""
    p = _scene(h, w)
    scores = {q: _camera_subscores(jpeg(p, q))["compression"] for q in (95, 75, 30, 10)}
    assert scores[95] > 0.95 and scores[75] > 0.95 and scores[30] < 0.5 and scores[10] < 0.05, scores


@pytest.mark.parametrize("h, w", RESOLUTIONS[2:])
def test_untouched_camera_jpeg_reads_clear(h, w):
    """The defect: an untouched nuScenes 1600x900 JPEG read compression 0.665. A soft, slightly
    noisy, quality-90 camera frame now scores near 1 on every clarity sub-score."""
    sub = _camera_subscores(camera_frame(0, h, w, quality=90))
    assert sub["compression"] > 0.99 and sub["blur"] > 0.9 and sub["noise"] > 0.9, sub
