"""No-reference image-quality measurements of one camera image (raw values, with units).

Each function takes an RGB image ``(h w 3)`` uint8 and returns a float whose unit and direction
are stated in its docstring. Turning raw values into ``[0, 1]`` scores is :mod:`.scoring`'s job,
so the raw numbers stay available to reports and benchmarks.

Luminance ``Y`` is BT.601 luma in ``[0, 1]`` (OpenCV's RGB->GRAY).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = [
    "ImageMeasures",
    "backlight_index",
    "blockiness",
    "blur_effect",
    "clipped_fractions",
    "colour_cast",
    "dark_channel_haze",
    "downscale",
    "luminance",
    "measure_image",
    "noise_sigma",
    "rms_contrast",
    "saturation",
]

_BLUR_TAPS = 9  # length of the re-blur averaging filter (pixels), as in Crete-Roffet et al. 2007


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma ``(h w)`` float32 in ``[0, 1]`` of an RGB uint8 image ``(h w 3)``."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def blur_effect(y: np.ndarray) -> float:
    """Perceptual blur of a luminance image ``(h w)``: 0 = sharp .. 1 = fully blurred.

    The re-blur principle (Crete-Roffet, Dolmiere, Ladret, Nicolas 2007): blurring a sharp image
    removes much of its neighbour-to-neighbour variation, blurring an already blurred image removes
    little. Measured along four directions (horizontal, vertical, both diagonals) so that motion
    blur in any of them counts; the blurriest direction is returned. Content-normalised: flat
    regions carry no weight.
    """
    y = y.astype(np.float32)
    k = _BLUR_TAPS
    kernels = {
        "h": np.full((1, k), 1.0 / k, np.float32),
        "v": np.full((k, 1), 1.0 / k, np.float32),
        "d": np.eye(k, dtype=np.float32) / k,
        "a": np.fliplr(np.eye(k, dtype=np.float32)) / k,
    }
    worst = 0.0
    for name, kern in kernels.items():
        b = cv2.filter2D(y, -1, kern, borderType=cv2.BORDER_REFLECT)
        if name == "h":
            df, db = np.abs(np.diff(y, axis=1)), np.abs(np.diff(b, axis=1))
        elif name == "v":
            df, db = np.abs(np.diff(y, axis=0)), np.abs(np.diff(b, axis=0))
        elif name == "d":
            df, db = np.abs(y[1:, 1:] - y[:-1, :-1]), np.abs(b[1:, 1:] - b[:-1, :-1])
        else:
            df, db = np.abs(y[1:, :-1] - y[:-1, 1:]), np.abs(b[1:, :-1] - b[:-1, 1:])
        m = k // 2 + 1  # skip borders influenced by the reflection
        df, db = df[m:-m, m:-m], db[m:-m, m:-m]
        s_f = float(df.sum(dtype=np.float64))
        if s_f <= 1e-6:
            return 1.0  # no variation at all: nothing sharp in the image
        s_v = float(np.maximum(df - db, 0).sum(dtype=np.float64))
        worst = max(worst, (s_f - s_v) / s_f)
    return float(worst)


def noise_sigma(y: np.ndarray) -> float:
    """Standard deviation of additive white noise, in 8-bit grey levels (0 = clean).

    Immerkaer's (1996) Laplacian-difference mask ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` cancels
    locally planar signal; for white noise its response has standard deviation ``6 sigma``. The
    median absolute response (robust to the edges and texture that also excite the mask) is
    converted with the Gaussian factor 0.6745.
    """
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = cv2.filter2D(y.astype(np.float32) * 255.0, -1, mask, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.median(np.abs(r)) / (6 * 0.6745))


def blockiness(y: np.ndarray, block: int = 8) -> float:
    """JPEG-style blocking: relative excess of the luminance step across ``block``-pixel grid lines.

    For every block column (and row) the summed absolute step across its grid line is compared with
    the mean summed step between the pixel columns inside it; the median ratio over blocks (robust
    to a real edge that happens to lie on a grid line), minus 1, averaged over both axes.
    0 for unblocked images, rising with compression (about 0.5-2 at JPEG quality 5-25).
    """
    out = []
    for axis in (0, 1):
        d = np.abs(np.diff(y.astype(np.float32), axis=axis)).sum(axis=1 - axis)  # summed step per gap
        n = d.size // block
        if n < 2:
            continue
        d = d[: n * block].reshape(n, block)
        inside = d[:, : block - 1].mean(axis=1)
        valid = inside > 1e-6
        if valid.sum() < 2:
            continue
        out.append(float(np.median(d[valid, block - 1] / inside[valid])) - 1.0)
    return float(max(0.0, np.mean(out))) if out else 0.0


def clipped_fractions(y: np.ndarray) -> tuple[float, float]:
    """Fractions of pixels clipped bright (luma >= 245/255) and dark (luma <= 5/255).

    Luma rather than any single channel: a saturated red or blue object is not over-exposed.
    """
    return float(np.mean(y >= 245.0 / 255.0)), float(np.mean(y <= 5.0 / 255.0))


def backlight_index(y: np.ndarray) -> float:
    """Backlight / glare: how much brighter the brightest large region of the upper image is than
    the lower half, in luma units (-1..1).

    The luma is reduced to 64 pixels wide and blurred (sigma 3 px) so that only large structures
    count (a low sun's glare, not lit windows or lamps); the index is the maximum of that
    large-scale luma over the top 60 % of rows minus the median over the bottom half. Evenly lit
    scenes score about 0-0.3, shooting into a glare with a darkened foreground 0.3-0.6.
    """
    h, w = y.shape
    small = cv2.resize(y.astype(np.float32), (64, max(2, round(h * 64 / w))), interpolation=cv2.INTER_AREA)
    large = cv2.GaussianBlur(small, (0, 0), 3.0)
    n = large.shape[0]
    return float(large[: max(1, int(0.6 * n))].max() - np.median(large[n // 2 :]))


def rms_contrast(y: np.ndarray) -> float:
    """RMS contrast: standard deviation of luma in ``[0, 1]`` (0 = flat; ~0.2-0.3 for daylight)."""
    return float(y.std())


def colour_cast(rgb: np.ndarray) -> tuple[float, float, float]:
    """Colour cast in CIELAB: ``(D, K, cast)``.

    ``D = |mean (a*, b*)|`` is the chroma of the average colour (CIELAB units; a neutral scene
    averages near grey, ``D < 5``); ``K = D / |std (a*, b*)|`` (Gasparini and Schettini 2004) is
    large when the whole image leans one way rather than containing colourful objects.
    ``cast = D * min(1, K)``: a strong average chroma that is not explained by colourful content
    (K alone explodes on nearly grey images such as fog, D alone on colourful scenes).
    """
    lab = cv2.cvtColor(np.ascontiguousarray(rgb).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    mean, std = cv2.meanStdDev(lab)
    d = float(np.hypot(mean[1, 0], mean[2, 0]))
    k = d / max(float(np.hypot(std[1, 0], std[2, 0])), 1.0)
    return d, k, d * min(1.0, k)


def saturation(rgb: np.ndarray) -> float:
    """Mean HSV saturation in ``[0, 1]`` (grey/hazy scenes low, vivid scenes high)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    return float(hsv[..., 1].mean() / 255.0)


def dark_channel_haze(rgb: np.ndarray, patch: int = 15) -> float:
    """Haze density from the dark channel prior (He, Sun, Tang 2009), in ``[0, 1]``.

    Median over the image of the per-pixel minimum of R, G, B eroded over ``patch`` pixels: haze-free
    outdoor images have dark-channel values near 0 away from the sky; fog lifts them towards the
    airlight.
    """
    dark = rgb.min(axis=2)
    dark = cv2.erode(dark, np.ones((patch, patch), np.uint8))
    return float(np.median(dark) / 255.0)


@dataclass(frozen=True)
class ImageMeasures:
    """All raw measurements of one image (units in each function's docstring)."""

    blur: float
    noise: float
    blockiness: float
    over_exposed: float
    under_exposed: float
    backlight: float
    contrast: float
    cast_d: float
    cast_k: float
    cast: float
    brightness: float
    saturation: float
    haze: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def downscale(rgb: np.ndarray, width: int | None) -> np.ndarray:
    """``rgb`` resized (area averaging) to ``width`` pixels wide, aspect kept; unchanged if narrower."""
    h, w = rgb.shape[:2]
    if width is None or w <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def measure_image(rgb: np.ndarray, analysis_width: int | None = None) -> ImageMeasures:
    """Every raw measurement of an RGB uint8 image ``(h w 3)``.

    Blockiness is measured at the native resolution (the JPEG grid); everything else on the image
    downscaled to ``analysis_width`` pixels (None: native), which bounds the cost on large images.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"measure_image expects (h, w, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    block = blockiness(luminance(rgb))
    rgb = downscale(rgb, analysis_width)
    y = luminance(rgb)
    over, under = clipped_fractions(y)
    d, k, cast = colour_cast(downscale(rgb, 160))  # colour statistics need no detail
    return ImageMeasures(
        blur=blur_effect(y),
        noise=noise_sigma(y),
        blockiness=block,
        over_exposed=over,
        under_exposed=under,
        backlight=backlight_index(y),
        contrast=rms_contrast(y),
        cast_d=d,
        cast_k=k,
        cast=cast,
        brightness=float(y.mean()),
        saturation=saturation(rgb),
        haze=dark_channel_haze(rgb),
    )
