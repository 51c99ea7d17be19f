"""Camera key-frame images of a nuScenes-format root as a torch Dataset (for image-level tasks).

Reads ``ROOT/samples/CAM_*/*.jpg`` (real nuScenes or SynthTown), decodes each JPEG and resizes
it to a fixed ``(width, height)`` in pixels (aspect ratio not kept, no crop). Samples are
``{"image": float32 c h w in [-1, 1], "view": int}``, ``view`` indexing ``channels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ...errors import DataError

__all__ = ["CameraFrames", "find_camera_jpegs", "split_files"]


def find_camera_jpegs(root: str | Path, channels: Sequence[str]) -> list[tuple[Path, int]]:
    """Sorted ``(path, view index)`` of every key-frame JPEG of ``channels`` under ``root/samples``."""
    root = Path(root)
    samples = root / "samples"
    if not samples.is_dir():
        raise DataError("no samples/ directory (expected a nuScenes-format root with samples/CAM_*/*.jpg)", root)
    found = []
    for view, channel in enumerate(channels):
        found.extend((p, view) for p in sorted((samples / channel).glob("*.jpg")))
    if not found:
        raise DataError(f"no JPEG images in samples/{{{','.join(channels)}}}/ "
                        "(expected a nuScenes-format root)", root)
    return found


def split_files(files: Sequence[tuple[Path, int]], val_fraction: float, split: str) -> list[tuple[Path, int]]:
    """Deterministic split: every ``round(1/val_fraction)``-th file (sorted order) is validation."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if val_fraction <= 0:
        return list(files) if split == "train" else []
    k = max(2, round(1.0 / val_fraction))
    return [f for i, f in enumerate(files) if (i % k == k - 1) == (split == "val")]


class CameraFrames(Dataset):
    """Resized camera JPEGs; ``image_size`` is (width, height) in pixels."""

    def __init__(self, files: Sequence[tuple[Path, int]], image_size: tuple[int, int]):
        self.files = list(files)
        self.width, self.height = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        path, view = self.files[i]
        try:
            with Image.open(path) as im:
                im.draft("RGB", (self.width, self.height))  # JPEG DCT scaling: decode no larger than needed
                rgb = im.convert("RGB").resize((self.width, self.height), Image.BICUBIC)
        except (OSError, ValueError) as e:
            raise DataError(f"not a readable JPEG image: {e}", path) from None
        hwc = np.asarray(rgb, dtype=np.float32)
        chw = torch.from_numpy(hwc).permute(2, 0, 1).contiguous()  # h w c -> c h w
        return {"image": chw / 127.5 - 1.0, "view": view}
