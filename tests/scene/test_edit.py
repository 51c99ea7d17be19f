"""The editing API: every edit returns a new, checked scene; the original is unchanged."""

from __future__ import annotations

import math

import pytest

from genesis_drive.errors import ConfigError
from genesis_drive.scene import scene_from_dict
from genesis_drive.scene.edit import agent, pedestrian, straight_track, track

from .test_schema_io import base_dict


@pytest.fixture
def scene():
    return scene_from_dict(base_dict(n_agents=2))


def test_add_and_remove(scene):
    s2 = scene.add_agent(agent("bus", "vehicle.bus.rigid", (2.9, 11.0, 3.4), [(0.0, 60.0, 2.0, math.pi), (2.0, 40.0, 2.0, math.pi)]))
    assert s2.ids() == ("car0", "car1", "bus", "walker", "statue") and scene.ids() == ("car0", "car1", "walker", "statue")
    assert s2.get("bus").track[1].x == 40.0 and s2.get("bus").size == (2.9, 11.0, 3.4)
    s3 = s2.add_agent(pedestrian("kid", [(0.0, 5.0, 9.0, 0.0)], size=(0.5, 0.5, 1.2), category="human.pedestrian.child", pose="stand"))
    assert s3.pedestrians[-1].id == "kid" and s3.pedestrians[-1].pose == "stand"
    assert s3.remove_agent("bus").remove_agent("kid") == scene
    with pytest.raises(ConfigError, match="an agent with id 'car0' already exists"):
        scene.add_agent(agent("car0", "vehicle.car", (2, 4, 1.5), [(0.0, 1.0, 0.0, 0.0)]))
    with pytest.raises(ConfigError, match=r"agents\[2\]\.category: unknown category 'vehicle.spaceship'"):
        scene.add_agent(agent("ufo", "vehicle.spaceship", (2, 4, 1.5), [(0.0, 1.0, 0.0, 0.0)]))
    with pytest.raises(ConfigError, match=r"no agent or pedestrian with id 'nobody'; the scene has \['car0', 'car1', 'walker', 'statue'\]"):
        scene.remove_agent("nobody")


def test_move(scene):
    moved = scene.move_agent("car1", dx=1.5, dy=-0.25)
    before, after = scene.get("car1").track, moved.get("car1").track
    assert [(p.x - q.x, p.y - q.y, p.t - q.t, p.yaw - q.yaw) for p, q in zip(after, before)] == [(1.5, -0.25, 0.0, 0.0)] * 2
    assert moved.get("car0") == scene.get("car0") and moved.get("walker") == scene.get("walker")
    walked = scene.move_agent("walker", dy=-0.5)
    assert [p.y for p in walked.get("walker").track] == [8.5, 8.5]
    new = track([(0.0, 15.0, 2.0, math.pi), (1.0, 10.0, 2.0, math.pi)])
    assert scene.move_agent("car0", track=new).get("car0").track == new
    with pytest.raises(ConfigError, match="either a new track or dx/dy"):
        scene.move_agent("car0", dx=1.0, track=new)
    with pytest.raises(ConfigError, match=r"agents\[0\]\.track\[0\]: position \(1000, -2\) is out of the map's range"):
        scene.move_agent("car0", dx=980.0)
    with pytest.raises(ConfigError, match="no agent or pedestrian with id 'car9'"):
        scene.move_agent("car9", dx=1.0)


def test_caption_edits(scene):
    s = scene.with_time_of_day("dusk").with_weather("fog").with_text("misty evening")
    assert (s.caption.time_of_day, s.caption.weather, s.caption.text) == ("dusk", "fog", "misty evening")
    assert (scene.caption.time_of_day, scene.caption.weather) == ("night", "rain")
    with pytest.raises(ConfigError, match="caption.time_of_day: expected one of day, dusk, night, got 'noon'"):
        scene.with_time_of_day("noon")
    with pytest.raises(ConfigError, match="caption.weather: expected one of clear, rain, fog, got 'hail'"):
        scene.with_weather("hail")


def test_straight_track_values():
    pts = straight_track(10.0, 5.0, math.pi / 2, 4.0, 0.0, 1.2, step=0.5)
    assert [p.t for p in pts] == [0.0, 0.5, 1.0, 1.2]
    assert [round(p.y, 9) for p in pts] == [5.0, 7.0, 9.0, 9.8]
    assert all(abs(p.x - 10.0) < 1e-9 and p.yaw == math.pi / 2 for p in pts)
