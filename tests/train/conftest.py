"""Shared fixtures for the training-engine tests: a tiny nuScenes-style JPEG root and fast configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genesis_drive.config import apply_overrides
from genesis_drive.train.tasks.frame_ae import FrameAEConfig, tiny

DRIVERS = Path(__file__).parent

#: Fast settings on top of the tiny preset: fp32, no previews/eval, log every step, one final checkpoint.
FAST = [
    "train.precision=fp32",
    "train.eval_every=0",
    "train.preview_every=0",
    "train.preview_samples=0",
    "train.log_every=1",
    "train.ckpt_every=1000",
    "train.warmup_steps=0",
    "train.schedule=constant",
    "train.ema_decay=0.9",
    "train.batch_size=4",
    "data.val_fraction=0",
]


def make_jpeg_root(root: Path, n_per_channel: int = 10, channels=("CAM_FRONT", "CAM_BACK")) -> Path:
    """Write ``root/samples/<channel>/*.jpg`` (160x90 gradients with a moving square)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:90, 0:160]
    for c, ch in enumerate(channels):
        d = root / "samples" / ch
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_channel):
            img = np.stack([(x * 1.5 + 20 * i) % 256, (y * 2.5 + 40 * c) % 256,
                            np.full_like(x, (37 * i) % 256)], -1).astype(np.uint8)
            r, s = 10 + 12 * i % 60, 20 + 9 * i % 100
            img[r : r + 20, s : s + 30] = rng.integers(0, 255, 3, dtype=np.uint8)
            Image.fromarray(img).save(d / f"scene-{i // 5:04d}__{ch}__{i:06d}.jpg", quality=92)
    return root


@pytest.fixture(scope="session")
def jpeg_root(tmp_path_factory) -> Path:
    return make_jpeg_root(tmp_path_factory.mktemp("nusc"))


def fast_config(*overrides: str) -> FrameAEConfig:
    return apply_overrides(tiny(), [*FAST, *overrides])


def weights_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)
