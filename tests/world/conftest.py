"""A small SynthTown dataset generated once per test session (shared by the world tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from genesis_drive.world.config import CameraConfig, FaultConfig, FaultRate, LidarConfig, RoadConfig, WorldConfig, preset


def small_config(seed: int = 2) -> WorldConfig:
    """1 scene x 1.5 s (3 keyframes, 18 camera frames, 30 sweeps) at 320x180, high fault rates."""
    faults = FaultConfig(
        (
            FaultRate("motion_blur", 0.15),
            FaultRate("overexposure", 0.1),
            FaultRate("backlight", 0.1),
            FaultRate("dropped_frame", 0.1),
            FaultRate("lens_dirt", 0.5, per="clip"),
            FaultRate("occlusion", 0.3, per="clip"),
        )
    )
    return dataclasses.replace(
        preset("tiny"),
        name="test",
        num_scenes=1,
        scene_seconds=1.5,
        seed=seed,
        roads=RoadConfig(grid=(3, 2), spacing=(80.0, 95.0)),
        camera=CameraConfig(image_size=(320, 180), shadow_map_size=512),
        lidar=LidarConfig(azimuth_steps=360),
        faults=faults,
    )


@pytest.fixture(scope="session")
def world_root(tmp_path_factory) -> Path:
    from genesis_drive.world.generate import generate

    root = tmp_path_factory.mktemp("synthtown") / "root"
    generate(small_config(), root, progress=False)
    return root
