"""The hand-made nuScenes-format root (tests/data/handmade.py) shared by the task tests (read only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ...data.handmade import write_handmade


@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")
