"""Reading test videos back."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np


def read_frames(path) -> np.ndarray:
    """All frames of a video (T, H, W, 3); the ffmpeg reader reports an unknown length, so iterate."""
    with imageio.get_reader(path) as reader:
        return np.stack([frame for frame in reader])
