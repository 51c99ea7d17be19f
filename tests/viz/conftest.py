"""Fixtures of the viz tests (the clip comes from the layout tests' scene builder)."""

from __future__ import annotations

import pytest

from tests.layout.scene import make_clip


@pytest.fixture(scope="package")
def clip():
    """Three frames, six 320 x 180 cameras, road map, boxes, one pedestrian pose, one LiDAR sweep."""
    return make_clip()
