"""Fixtures of the layout tests: the hand-built clip of :mod:`layout.scene`."""

from __future__ import annotations

import pytest

from .scene import make_clip


@pytest.fixture(scope="package")
def clip():
    """Three frames, six 320 x 180 cameras, road map, boxes, one pedestrian pose, one LiDAR sweep."""
    return make_clip()
