"""Fixtures of the export tests: the hand-made root (exactly known content, no renderer) and one full export."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..data.handmade import write_handmade


@pytest.fixture(scope="session")
def hm_root(tmp_path_factory) -> Path:
    """One scene, 2 keyframes: 7 frames x 6 cameras (64 x 36), 11 LiDAR sweeps of 200 points."""
    return write_handmade(tmp_path_factory.mktemp("export_hm") / "root", num_keyframes=2)
