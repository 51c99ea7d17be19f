"""Session fixtures of the scene tests: a tiny SynthTown root (preset ``tiny``, 1 scene x 1 s), the
scene read from it with one car added 12 m ahead of the ego, and that scene rendered back."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from genesis_drive.world.config import CameraConfig, FaultConfig, LidarConfig, preset

IMAGE_SIZE = (128, 72)


def tiny_config(seed: int = 0):
    """The ``tiny`` preset's town (so scene files can name it), 1 s, 128x72 cameras, 180-step LiDAR."""
    return dataclasses.replace(
        preset("tiny"), num_scenes=1, scene_seconds=1.0, seed=seed, write_buffers=False, faults=FaultConfig(()),
        camera=CameraConfig(image_size=IMAGE_SIZE, shadow_map_size=256), lidar=LidarConfig(azimuth_steps=180),
    )  # fmt: skip


def first_sample(root: Path) -> str:
    from genesis_drive.data.nuscenes import NuScenesReader

    r = NuScenesReader(root)
    return r.sample_tokens(r.scene_tokens()[0])[0]


@pytest.fixture(scope="session")
def town_root(tmp_path_factory) -> Path:
    from genesis_drive.world.generate import generate

    root = tmp_path_factory.mktemp("scene_town") / "root"
    generate(tiny_config(), root, progress=False)
    return root


@pytest.fixture(scope="session")
def town_scene(town_root):
    """The root's scene plus ``lead``: a car 12 m ahead of the ego along its path."""
    from genesis_drive.scene.edit import agent
    from genesis_drive.scene.from_root import from_root

    scene = from_root(town_root, first_sample(town_root))
    pts = [(p.t, p.x + 12 * math.cos(p.yaw), p.y + 12 * math.sin(p.yaw), p.yaw) for p in scene.ego[::5]]
    return scene.add_agent(agent("lead", "vehicle.car", (1.9, 4.6, 1.5), pts))


@pytest.fixture(scope="session")
def rendered(tmp_path_factory, town_scene) -> Path:
    from genesis_drive.scene.to_root import to_root

    out = tmp_path_factory.mktemp("scene_render") / "root"
    to_root(town_scene, out, image_size=IMAGE_SIZE, write_buffers=False)
    return out
