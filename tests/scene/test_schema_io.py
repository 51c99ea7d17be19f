"""Scene files: parsing with field paths, semantic checks, round trips through YAML and JSON."""

from __future__ import annotations

import copy
import json
import math

import pytest
import yaml

from genesis_drive.errors import ConfigError
from genesis_drive.scene import ExplicitMap, Pedestrian, TownMap, load_scene, save_scene, scene_from_dict, scene_to_dict
from genesis_drive.scene.schema import AGENT_CATEGORIES, SCENE_FORMAT


def base_dict(n_agents: int = 4) -> dict:
    """A 2 s scene on a 100 m x 20 m explicit road, ``n_agents`` cars driving along x."""
    return {
        "format": SCENE_FORMAT,
        "name": "hand-made",
        "duration": 2.0,
        "caption": {"time_of_day": "night", "weather": "rain", "text": "a wet night"},
        "map": {
            "polygons": {"drivable_area": [[[0, -10], [100, -10], [100, 10], [0, 10]]]},
            "polylines": {"lane_centerline": [[[0, -2], [100, -2]], [[100, 2], [0, 2]]]},
        },
        "ego": [{"t": 0.0, "x": 10.0, "y": -2.0, "yaw": 0.0}, {"t": 2.0, "x": 30.0, "y": -2.0, "yaw": 0.0}],
        "agents": [
            {"id": f"car{i}", "category": "vehicle.car", "size": [1.9, 4.5, 1.6],
             "track": [{"t": 0.0, "x": 20.0 + 8 * i, "y": -2.0, "yaw": 0.0}, {"t": 2.0, "x": 36.0 + 8 * i, "y": -2.0, "yaw": 0.0, "z": 0.8}]}
            for i in range(n_agents)
        ],  # fmt: skip
        "pedestrians": [
            {"id": "walker", "category": "human.pedestrian.adult", "size": [0.7, 0.8, 1.75], "pose": "walk",
             "track": [{"t": 0.0, "x": 50.0, "y": 9.0, "yaw": math.pi}, {"t": 2.0, "x": 47.4, "y": 9.0, "yaw": math.pi}]},
            {"id": "statue", "category": "human.pedestrian.child", "size": [0.5, 0.5, 1.2],
             "pose": [[0.01 * k, 0.02 * k, 0.07 * k] for k in range(17)], "track": [{"t": 0.5, "x": 60.0, "y": 9.5, "yaw": 0.0}]},
        ],  # fmt: skip
    }


def fails(d: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        scene_from_dict(d)
    assert str(e.value) == message or str(e.value).startswith(message), str(e.value)


def test_valid_scene_values():
    s = scene_from_dict(base_dict())
    assert isinstance(s.map, ExplicitMap) and s.map.bounds() == (0.0, -10.0, 100.0, 10.0)
    assert [a.id for a in s.agents] == ["car0", "car1", "car2", "car3"]
    assert s.agents[1].track[1].x == 44.0 and s.agents[1].track[0].z is None and s.agents[1].track[1].z == 0.8
    assert s.pedestrians[1].pose == "keypoints" and s.pedestrians[1].keypoints[3] == pytest.approx((0.03, 0.06, 0.21))
    assert (s.caption.time_of_day, s.caption.weather, s.frame_rate, s.keyframe_rate) == ("night", "rain", 12, 2)
    assert s.keyframe_times() == (0.0, 0.5, 1.0, 1.5)
    assert s.last_frame_time == pytest.approx(23 / 12)
    assert s.map.layers().lane_centerline[1].tolist() == [[100.0, 2.0], [0.0, 2.0]]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    s = scene_from_dict(base_dict())
    path = save_scene(s, tmp_path / f"scene{suffix}")
    assert load_scene(path) == s
    town = scene_from_dict({**base_dict(), "map": {"town": {"seed": 7, "preset": "tiny", "index": 2}}})
    assert isinstance(town.map, TownMap) and town.map == TownMap(7, "tiny", 2)
    assert load_scene(save_scene(town, tmp_path / f"town{suffix}")) == town
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
    text = path.read_text()
    assert (yaml.safe_load(text) if suffix == ".yaml" else json.loads(text)) == scene_to_dict(s)


def test_bad_number_names_the_path(tmp_path):
    d = base_dict()
    d["agents"][3]["track"][0]["yaw"] = "abc"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError) as e:
        load_scene(path)
    assert str(e.value) == f"{path}: agents[3].track[0].yaw: expected a number, got 'abc'"
    d = base_dict()
    d["agents"][1]["size"] = [1.9, 4.5]
    fails(d, "agents[1].size: expected [w, l, h] (3 numbers, metres), got 2 values")
    d = base_dict()
    d["ego"][1]["t"] = True
    fails(d, "ego[1].t: expected a number, got True")
    d = base_dict()
    d["map"]["polygons"]["drivable_area"][0][2] = [100, "x"]
    fails(d, "map.polygons.drivable_area[0][2][1]: expected a number, got 'x'")


def test_unknown_and_missing_keys():
    d = base_dict()
    d["agents"][0]["colour"] = "red"
    fails(d, "agents[0].colour: unknown key; allowed keys here: id, category, size, track")
    d = base_dict()
    d["weather"] = "rain"
    fails(d, "weather: unknown key; allowed keys here: format, name, duration, map, ego, frame_rate, keyframe_rate, agents, pedestrians, caption")
    d = base_dict()
    del d["ego"][1]["yaw"]
    fails(d, "ego[1].yaw: missing (required keys here: t, x, y, yaw)")
    d = base_dict()
    d["map"]["polylines"]["kerbs"] = [[[0, 0], [1, 1]]]
    fails(d, "map.polylines.kerbs: unknown polyline layer; expected one of lane_divider, road_divider, road_edge, lane_centerline")


def test_categories():
    d = base_dict()
    d["agents"][2]["category"] = "vehicle.tank"
    fails(d, f"agents[2].category: unknown category 'vehicle.tank'; expected one of {', '.join(AGENT_CATEGORIES)}")
    d = base_dict()
    d["agents"][0]["category"] = "human.pedestrian.adult"
    fails(d, "agents[0].category: unknown category 'human.pedestrian.adult' (a pedestrian category: list it under pedestrians)")
    d = base_dict()
    d["pedestrians"][0]["pose"] = "dance"
    fails(d, "pedestrians[0].pose: expected a preset (walk, stand) or 17 keypoints [x, y, z], got 'dance'")
    d = base_dict()
    d["pedestrians"][1]["pose"] = d["pedestrians"][1]["pose"][:5]
    fails(d, "pedestrians[1].pose: expected 17 keypoints [x, y, z] (person frame, metres), got 5")
    d = base_dict()
    d["caption"]["weather"] = "snow"
    fails(d, "caption.weather: expected one of clear, rain, fog, got 'snow'")


def test_times_coverage_range_and_ids():
    d = base_dict()
    d["agents"][0]["track"][1]["t"] = 0.0
    fails(d, "agents[0].track[1].t: track times must increase (0.0 after 0.0)")
    d = base_dict()
    d["ego"][1]["t"] = 1.5
    fails(d, "ego: the ego path must cover every frame, t = 0 .. 1.91667 s (duration 2 s at 12 Hz); it covers 0 .. 1.5 s")
    d = base_dict()
    d["agents"][2]["track"][1]["x"] = 400.0
    fails(d, "agents[2].track[1]: position (400, -2) is out of the map's range: x -50 .. 150, y -60 .. 60 m")
    d = base_dict()
    d["agents"][3]["track"] = [{"t": 5.0, "x": 1.0, "y": 0.0, "yaw": 0.0}]
    fails(d, "agents[3].track: times 5 .. 5 s lie outside the scene (0 .. 1.91667 s)")
    d = base_dict()
    d["pedestrians"][0]["id"] = "car1"
    fails(d, "pedestrians[0].id: id 'car1' is used twice (also agents[1]); ids must be unique")
    d = base_dict()
    d["frame_rate"] = 5
    fails(d, "frame_rate: must be a multiple of keyframe_rate=2, got 5")


def test_length_limit_and_file_errors(tmp_path):
    s = scene_from_dict(base_dict())
    path = save_scene(s, tmp_path / "s.json")
    assert load_scene(path, max_seconds=2.0) == s
    with pytest.raises(ConfigError, match=r"s\.json: duration: 2 s is longer than the 1\.5 s the models generate without rollout"):
        load_scene(path, max_seconds=1.5)
    (tmp_path / "broken.yaml").write_text("agents: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_scene(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match=r"unknown scene file type '\.txt'"):
        save_scene(s, tmp_path / "s.txt")
    assert not (tmp_path / "s.txt").exists()
    with pytest.raises(ConfigError, match="scene file not found"):
        load_scene(tmp_path / "missing.yaml")
    d = copy.deepcopy(base_dict())
    d["format"] = "genesis-drive/scene/v0"
    fails(d, "format: expected 'genesis-drive/scene/v1', got 'genesis-drive/scene/v0'")


def test_pedestrian_presets_kept():
    s = scene_from_dict(base_dict())
    assert isinstance(s.pedestrians[0], Pedestrian) and s.pedestrians[0].pose == "walk" and s.pedestrians[0].keypoints is None
    assert scene_to_dict(s)["pedestrians"][1]["pose"][16] == pytest.approx([0.16, 0.32, 1.12])


def test_docs_example_is_a_valid_scene(tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "scene_files.md").read_text()
    path = tmp_path / "example.yaml"
    path.write_text(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    s = load_scene(path)
    assert s.map == TownMap(0, "tiny", 0) and s.get("bus").track[2].z == 1.7 and s.caption.time_of_day == "dusk"
