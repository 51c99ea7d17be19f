"""Basic colour names of image pixels (for "a white car", "a pedestrian in red").

Each pixel is put in one of 12 bins by HSV (OpenCV's 8-bit HSV, hue in degrees here):

* value < 0.22 -> black; saturation < 0.18 -> white (value > 0.78), grey (otherwise);
* otherwise by hue: red [0, 15) and [340, 360), orange [15, 40) (brown when value < 0.55),
  yellow [40, 70), green [70, 165), blue [165, 260), purple [260, 300), pink [300, 340).

The name of a region is its most common bin.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["COLOUR_NAMES", "colour_name", "pixel_colour_bins"]

COLOUR_NAMES: tuple[str, ...] = ("black", "white", "grey", "red", "orange", "brown", "yellow", "green", "blue", "purple", "pink")
_HUE_EDGES = (15, 40, 70, 165, 260, 300, 340)  # degrees
_HUE_NAMES = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "red")


def pixel_colour_bins(rgb: np.ndarray) -> np.ndarray:
    """Index into :data:`COLOUR_NAMES` of every pixel of ``rgb`` ``(n 3)`` or ``(h w 3)`` uint8."""
    px = np.asarray(rgb, dtype=np.uint8).reshape(-1, 1, 3)
    hsv = cv2.cvtColor(px, cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float64)
    h, s, v = hsv[:, 0] * 360.0 / 256.0, hsv[:, 1] / 255.0, hsv[:, 2] / 255.0
    names = np.array(_HUE_NAMES)[np.searchsorted(_HUE_EDGES, h, side="right")]
    names = np.where((names == "orange") & (v < 0.55), "brown", names)
    names = np.where(s < 0.18, np.where(v > 0.78, "white", "grey"), names)
    names = np.where(v < 0.22, "black", names)
    lookup = {n: i for i, n in enumerate(COLOUR_NAMES)}
    return np.array([lookup[n] for n in names], dtype=np.int64)


def colour_name(rgb: np.ndarray, min_pixels: int = 20) -> str | None:
    """The most common colour name of the pixels ``rgb`` (``(n 3)`` or ``(h w 3)`` uint8);
    None when fewer than ``min_pixels`` pixels are given."""
    px = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    if len(px) < min_pixels:
        return None
    counts = np.bincount(pixel_colour_bins(px), minlength=len(COLOUR_NAMES))
    return COLOUR_NAMES[int(np.argmax(counts))]
