"""Per-image measurements and scores on natural-looking images and their degraded versions."""

from __future__ import annotations

import numpy as np
import pytest

from genesis_drive.curation import image_quality as iq
from genesis_drive.curation.measures import add_temporal_jumps
from genesis_drive.curation.scoring import ScoreConfig, per_image_subscores

from .images import (
    add_noise,
    backlight,
    gaussian_blur,
    haze,
    jpeg,
    motion_blur,
    natural_image,
    over_expose,
    tint,
)

SEEDS = (0, 1, 2)


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


def test_blockiness_rises_as_jpeg_quality_falls(photos):
    for p in photos:
        vals = [iq.blockiness(iq.luminance(x)) for x in (p, jpeg(p, 60), jpeg(p, 25), jpeg(p, 8))]
        assert _strictly_increasing(vals), vals
        assert vals[0] < 0.1 and vals[-1] > 1.0


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


def test_analysis_width_keeps_native_blockiness(photos):
    big = jpeg(photos[0], 10)
    full, small = iq.measure_image(big), iq.measure_image(big, analysis_width=64)
    assert small.blockiness == full.blockiness
    assert small.brightness == pytest.approx(full.brightness, abs=0.01)
