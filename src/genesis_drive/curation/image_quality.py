"""No-reference image-quality measurements of one camera image (raw values, with units).

Each function takes an RGB image ``(h w 3)`` uint8 and returns a float whose unit and direction
are stated in its docstring. Turning raw values into ``[0, 1]`` scores is :mod:`.scoring`'s job,
so the raw numbers stay available to reports and benchmarks.

Luminance ``Y`` is BT.601 luma in ``[0, 1]`` (OpenCV's RGB->GRAY).

Resolution: the clarity measurements (blur, noise, JPEG quality) are judged at the image's own
pixel scale, so a 2-pixel blur of a 1920-pixel photo counts as it does on a 256-pixel render; on a
large image, blur and noise are measured on native-resolution tiles spread over it
(:func:`native_tiles`), which bounds the cost. Everything else (exposure, colour, backlight) is a
property of the picture, not of its pixels, and is measured on the image area-downscaled to the
analysis width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = [
    "ImageMeasures",
    "backlight_index",
    "blur_effect",
    "clipped_fractions",
    "colour_cast",
    "dark_channel_haze",
    "downscale",
    "jpeg_quality",
    "luminance",
    "measure_image",
    "native_tiles",
    "noise_sigma",
    "rms_contrast",
    "saturation",
]

_BLUR_TAPS = 9  # length of the re-blur averaging filter (pixels), as in Crete-Roffet et al. 2007
_JPEG_MIN_BLOCKS = 32  # textured 8x8 blocks needed to read a JPEG quantisation step
_JPEG_MAX_BLOCKS = 1024  # blocks used at most (evenly strided)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma ``(h w)`` float32 in ``[0, 1]`` of an RGB uint8 image ``(h w 3)``."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _tile_list(y: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [y] if isinstance(y, np.ndarray) else list(y)


def native_tiles(y: np.ndarray, max_pixels: int | None, min_side: int = 32) -> list[np.ndarray]:
    """Native-resolution tiles of ``y`` ``(h w)`` covering about ``max_pixels`` pixels, spread over it.

    ``[y]`` itself when it has at most ``max_pixels`` pixels (or ``max_pixels`` is None). Otherwise
    the image is cut into an ``n x n`` grid, ``n = ceil(h w / max_pixels)`` (capped so that cells
    keep ``min_side`` pixels a side), and one cell per grid row is taken, in column
    ``(i * step) mod n`` with ``step`` coprime to ``n`` near ``0.38 n``: every row band and every
    column band of the image is sampled once (sky, buildings, road), at the native pixel scale.
    Views, not copies.
    """
    h, w = y.shape[:2]
    if max_pixels is None or h * w <= max_pixels:
        return [y]
    n = min(math.ceil(h * w / max_pixels), max(1, min(h, w) // min_side))
    if n <= 1:
        return [y]
    step = max(1, round(0.382 * n))
    while math.gcd(step, n) != 1:
        step += 1
    rows = [i * h // n for i in range(n + 1)]
    cols = [j * w // n for j in range(n + 1)]
    out = []
    for i in range(n):
        j = (i * step) % n
        out.append(y[rows[i] : rows[i + 1], cols[j] : cols[j + 1]])
    return out


def blur_effect(y: np.ndarray | Sequence[np.ndarray]) -> float:
    """Perceptual blur of a luminance image ``(h w)``, or of a set of tiles of one (pooled): 0 =
    sharp .. 1 = fully blurred, at the pixel scale of the input.

    The re-blur principle (Crete-Roffet, Dolmiere, Ladret, Nicolas 2007): blurring a sharp image
    removes much of its neighbour-to-neighbour variation, blurring an already blurred image removes
    little. Measured along four directions (horizontal, vertical, both diagonals) so that motion
    blur in any of them counts; the blurriest direction is returned. Content-normalised: flat
    regions carry no weight. Tiles (:func:`native_tiles`) pool their variation sums, so the result
    is that of the union of the tiles.
    """
    tiles = [t.astype(np.float32) for t in _tile_list(y)]
    k = _BLUR_TAPS
    kernels = {
        "h": np.full((1, k), 1.0 / k, np.float32),
        "v": np.full((k, 1), 1.0 / k, np.float32),
        "d": np.eye(k, dtype=np.float32) / k,
        "a": np.fliplr(np.eye(k, dtype=np.float32)) / k,
    }
    m = k // 2 + 1  # skip borders influenced by the reflection
    worst = 0.0
    for name, kern in kernels.items():
        s_f = s_v = 0.0
        for t in tiles:
            if min(t.shape) <= 2 * m + 1:
                continue
            b = cv2.filter2D(t, -1, kern, borderType=cv2.BORDER_REFLECT)
            if name == "h":
                df, db = np.abs(np.diff(t, axis=1)), np.abs(np.diff(b, axis=1))
            elif name == "v":
                df, db = np.abs(np.diff(t, axis=0)), np.abs(np.diff(b, axis=0))
            elif name == "d":
                df, db = np.abs(t[1:, 1:] - t[:-1, :-1]), np.abs(b[1:, 1:] - b[:-1, :-1])
            else:
                df, db = np.abs(t[1:, :-1] - t[:-1, 1:]), np.abs(b[1:, :-1] - b[:-1, 1:])
            df, db = df[m:-m, m:-m], db[m:-m, m:-m]
            s_f += float(df.sum(dtype=np.float64))
            s_v += float(np.maximum(df - db, 0).sum(dtype=np.float64))
        if s_f <= 1e-6:
            return 1.0  # no variation at all: nothing sharp in the image
        worst = max(worst, (s_f - s_v) / s_f)
    return float(worst)


def noise_sigma(y: np.ndarray | Sequence[np.ndarray]) -> float:
    """Standard deviation of additive white noise, in 8-bit grey levels (0 = clean), of a luminance
    image ``(h w)`` or of a set of tiles of one (pooled), at the pixel scale of the input.

    Immerkaer's (1996) Laplacian-difference mask ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` cancels
    locally planar signal; for white noise its response has standard deviation ``6 sigma``. The
    median absolute response (robust to the edges and texture that also excite the mask) is
    converted with the Gaussian factor 0.6745.
    """
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    responses = [
        np.abs(cv2.filter2D(t.astype(np.float32) * 255.0, -1, mask, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]).ravel()
        for t in _tile_list(y)
        if min(t.shape) > 2
    ]
    if not responses:
        return 0.0
    return float(np.median(np.concatenate(responses)) / (6 * 0.6745))


def jpeg_quality(y: np.ndarray) -> float:
    """JPEG quality the luminance ``(h w)`` was compressed with, on the IJG (libjpeg) 1-100 scale;
    100 when no JPEG quantisation is found (a lossless image, or one resized or cropped after
    compression, which moves the 8-pixel grid).

    JPEG quantises each 8x8 block's DCT coefficients to multiples of a step; the DC coefficient,
    ``8 (block mean - 128)`` in grey levels, keeps that lattice through decoding (rounding adds
    about 0.3 grey levels). The step ``q`` is the largest one (1..255) on which the DC values of the
    textured blocks (luma std >= 1 grey level, none clipped at 0 or 255: flat and saturated blocks
    sit on spurious lattices) line up: their phases agree, ``|mean exp(2 pi i DC / q)| >= 0.5``; for
    steps of 16 and more at least 40 % of them lie within 1.5 of a multiple of ``q`` (a dark,
    low-contrast image's DC values bunch in a range narrower than a large step, which aligns their
    phases but leaves them off the lattice: 2 % within 1.5 on such a SynthTown frame, against
    55-99 % for JPEG qualities 5-50, whose decoding clips and rounds some blocks off it); the
    blocks near the lattice hold at least 5 distinct multiples (a handful of identical blocks line
    up on any step); at least 32 textured blocks.
    The IJG tables scale the standard luminance DC step 16 by ``S = 5000 / quality`` (quality < 50)
    or ``200 - 2 quality`` percent, so ``S = 100 q / 16`` gives the quality (q = 2, 3, 5, 8, 16, 27,
    80 for qualities 95, 90, 85, 75, 50, 30, 10). A camera's own tables are read on the same scale.
    Up to 1024 textured blocks (evenly strided) are used.
    """
    g = np.rint(np.asarray(y, dtype=np.float32) * 255.0)  # the grey levels the luma came from
    h, w = (g.shape[0] // 8) * 8, (g.shape[1] // 8) * 8
    if h == 0 or w == 0:
        return 100.0
    g = np.ascontiguousarray(g[:h, :w])
    size = (w // 8, h // 8)  # per-block statistics: an exact 8x area reduction averages each block
    mean = cv2.resize(g, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    var = cv2.resize(g * g, size, interpolation=cv2.INTER_AREA).astype(np.float64) - mean**2
    clipped = cv2.resize(((g <= 0) | (g >= 255)).astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    textured = (var >= 1.0) & ~clipped
    dc = 8.0 * (mean[textured] - 128.0)
    if dc.size < _JPEG_MIN_BLOCKS:
        return 100.0
    dc = dc[:: max(1, math.ceil(dc.size / _JPEG_MAX_BLOCKS))]
    steps = np.arange(1, 256, dtype=np.float64)
    phase = (2.0 * np.pi * dc[None, :] / steps[:, None]).astype(np.float32)  # float32 trig: 10x faster, 1e-3 rad
    coherence = np.hypot(np.cos(phase).mean(axis=1), np.sin(phase).mean(axis=1))
    for i in np.flatnonzero(coherence >= 0.5)[::-1]:
        q = steps[i]
        k = np.round(dc / q)
        on = np.abs(dc - q * k) <= 1.5
        if q >= 16 and on.mean() < 0.4:  # phases aligned by a narrow bunch, not by a lattice
            continue
        if np.unique(k[on]).size >= 5:
            scale = 100.0 * q / 16.0
            return float((200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale)
    return 100.0


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
    jpeg_quality: float
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

    Clarity at the native pixel scale: JPEG quality on the whole native luma (the JPEG grid), blur
    and noise on native-resolution tiles totalling the area of the analysis image
    (:func:`native_tiles`; the whole image when it is no wider than ``analysis_width``).
    Everything else on the image area-downscaled to ``analysis_width`` pixels (None: native),
    which bounds the cost on large images.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"measure_image expects (h, w, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    native = luminance(rgb)
    rgb = downscale(rgb, analysis_width)
    y = native if rgb.shape[:2] == native.shape else luminance(rgb)
    tiles = native_tiles(native, y.size)
    over, under = clipped_fractions(y)
    d, k, cast = colour_cast(downscale(rgb, 160))  # colour statistics need no detail
    return ImageMeasures(
        blur=blur_effect(tiles),
        noise=noise_sigma(tiles),
        jpeg_quality=jpeg_quality(native),
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
