"""Shared fixtures of the `generate` command tests: tiny checkpoints and a short hand-made source root."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..data.handmade import write_handmade
from .tiny_checkpoints import save_dit, save_vae


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> Path:
    """DIR/camera_vae and DIR/camera_dit: run directories as `genesis-drive train` writes them."""
    base = tmp_path_factory.mktemp("ckpt")
    save_dit(base / "camera_dit", save_vae(base / "camera_vae"))
    return base


@pytest.fixture(scope="session")
def source(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root", num_keyframes=2)  # 7 frames at 12 Hz: 2 chunks of 5
