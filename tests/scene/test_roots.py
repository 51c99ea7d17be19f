"""Scenes from and to nuScenes-format roots (a tiny SynthTown root made once per session)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import argparse

from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.errors import ConfigError, GenesisError
from genesis_drive.scene import cli as scene_cli
from genesis_drive.scene import ExplicitMap, TownMap, load_scene
from genesis_drive.scene.edit import agent
from genesis_drive.scene.from_root import caption_from_description, from_root
from genesis_drive.scene.to_root import to_root

from .conftest import IMAGE_SIZE, first_sample


def annotations(root) -> dict:
    """{track name: [(t, x, y, z, yaw), ...]} of every annotated moving agent, keyframe order."""
    r = NuScenesReader(root)
    scene = r.scene_tokens()[0]
    names = {row["instance_token"]: (row["track"], row["instance_id"]) for row in r.extra_table("synthtown_instance")}
    n_static = r.extra_table("synthtown_scene")[0]["num_static_objects"]
    tokens = r.sample_tokens(scene)
    t0 = r.nusc.get("sample", tokens[0])["timestamp"]
    out: dict = {}
    for tok in tokens:
        t = (r.nusc.get("sample", tok)["timestamp"] - t0) * 1e-6
        for b in r.boxes(tok):
            name, iid = names[b.instance_token]
            if iid > n_static:
                out.setdefault(name, []).append((t, *b.center, b.yaw))
    return out


def test_from_root_tracks_match_annotations(town_root):
    s = from_root(town_root, first_sample(town_root))
    assert s.map == TownMap(0, "tiny", 0)
    assert s.duration == 1.0 and s.keyframe_rate == 2 and s.frame_rate == 12
    ann = annotations(town_root)
    got = {a.id: a for a in s.agents + s.pedestrians}
    assert set(got) == set(ann) and len(ann) >= 2
    for name, rows in ann.items():
        track = got[name].track
        assert [p.t for p in track] == pytest.approx([r[0] for r in rows], abs=1e-6)
        assert np.allclose([(p.x, p.y, p.z, p.yaw) for p in track], [r[1:] for r in rows], atol=1e-9)
    r = NuScenesReader(town_root)
    lidar = r.channel_tokens(r.scene_tokens()[0], "LIDAR_TOP")
    assert len(s.ego) == len(lidar) == 20
    p = r.ego_pose(lidar[7])
    assert (s.ego[7].x, s.ego[7].y) == pytest.approx(tuple(p.translation[:2]), abs=1e-9) and s.ego[7].t == pytest.approx(0.35)
    row = r.extra_table("synthtown_scene")[0]
    assert (s.caption.time_of_day, s.caption.weather) == (row["time_of_day"], row["weather"])


def test_from_root_explicit_map_when_town_unknown(town_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(town_root, root)
    table = root / "v1.0-trainval" / "synthtown_scene.json"
    rows = json.loads(table.read_text())
    rows[0]["preset"] = "unknown-preset"
    table.write_text(json.dumps(rows))
    s = from_root(root, first_sample(root), seconds=0.6)
    # ego poses at 20 Hz below 0.6 s end at 0.55 s: the last 12 Hz frame they cover is 6/12 s
    assert isinstance(s.map, ExplicitMap) and s.duration == pytest.approx(7 / 12)
    layers = NuScenesReader(root).map_layers(NuScenesReader(root).scene_location(NuScenesReader(root).scene_tokens()[0]))
    assert set(dict(s.map.polygons)) <= {"drivable_area", "ped_crossing", "walkway"}
    assert len(s.map.layers().lane_centerline) <= len(layers.lane_centerline) and len(s.map.layers().drivable_area) >= 1
    # without the town, its parked cars / cones / barriers are agents too
    n_static = rows[0]["num_static_objects"]
    r = NuScenesReader(root)
    names = {row["instance_token"]: row for row in r.extra_table("synthtown_instance")}
    toks = r.sample_tokens(r.scene_tokens()[0])[:2]  # keyframes at 0 and 0.5 s
    annotated = {names[b.instance_token]["track"] for tok in toks for b in r.boxes(tok)}
    static = {names[b.instance_token]["track"] for tok in toks for b in r.boxes(tok) if names[b.instance_token]["instance_id"] <= n_static}
    assert set(s.ids()) == annotated and len(static) >= 3 and static <= {a.id for a in s.agents}
    assert not static & set(from_root(town_root, first_sample(town_root)).ids())  # with the town they come with it


def test_caption_from_description():
    c = caption_from_description("Night, rain, parking lot, peds")
    assert (c.time_of_day, c.weather, c.text) == ("night", "rain", "Night, rain, parking lot, peds")
    assert (caption_from_description("Wait at intersection").time_of_day, caption_from_description("foggy dusk").weather) == ("day", "fog")


def test_scene_to_root_to_scene_recovers_positions(town_scene, rendered):
    back = from_root(rendered, first_sample(rendered))
    assert back.map == town_scene.map and back.duration == town_scene.duration
    assert np.allclose([(p.x, p.y, p.yaw) for p in back.ego], [(p.x, p.y, p.yaw) for p in town_scene.ego], atol=1e-4)
    src = {a.id: a for a in town_scene.agents + town_scene.pedestrians}
    matched = 0
    for a in back.agents + back.pedestrians:
        # ids are renumbered by the renderer: match each recovered agent by a shared (time, position)
        def shares(s) -> bool:
            return any(abs(q.t - p.t) < 1e-6 and np.hypot(q.x - p.x, q.y - p.y) < 0.05 for q in s.track for p in a.track)

        cands = [s for s in src.values() if s.category == a.category and shares(s)]
        assert len(cands) == 1, a.id
        s = cands[0]
        for p in a.track:
            q = next((q for q in s.track if abs(q.t - p.t) < 1e-6), None)
            if q is None:  # present one keyframe interval beyond its track ends (held / extrapolated)
                assert s.track[0].t - 0.5 - 1e-6 <= p.t <= s.track[-1].t + 0.5 + 1e-6
                if len(s.track) == 1:
                    assert (p.x, p.y) == pytest.approx((s.track[0].x, s.track[0].y), abs=1e-3)
                continue
            assert (p.x, p.y) == pytest.approx((q.x, q.y), abs=1e-3)
            assert np.cos(p.yaw - q.yaw) > 1 - 1e-6
        matched += 1
    lead = [a for a in back.agents if a.category == "vehicle.car" and np.allclose(a.size, (1.9, 4.6, 1.5))]
    assert matched >= 2 and len(lead) == 1 and len(lead[0].track) == 2
    r = NuScenesReader(rendered)
    sd = r.channel_tokens(r.scene_tokens()[0], "CAM_FRONT")
    frame = r.camera_frame(sd[0])
    assert len(sd) == 12 and frame.image.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3) and frame.image.std() > 5
    assert len(r.lidar_sweep(r.channel_tokens(r.scene_tokens()[0], "LIDAR_TOP")[0]).points) > 500


def test_moving_an_agent_moves_its_annotation(town_scene, rendered, tmp_path):
    kps = tuple((0.0, 0.1 * (k % 2) - 0.05, 0.1 * k) for k in range(17))
    ped = town_scene.pedestrians[0]
    moved = town_scene.move_agent("lead", dx=1.0).remove_agent(ped.id).add_agent(
        type(ped)(ped.id, ped.category, ped.size, ped.track, "keypoints", kps)
    )
    out = to_root(moved, tmp_path / "moved", image_size=IMAGE_SIZE, write_buffers=False)
    assert out.keyframes == 2
    size = (1.9, 4.6, 1.5)

    def lead_boxes(root):
        r = NuScenesReader(root)
        return [b for tok in r.sample_tokens(r.scene_tokens()[0]) for b in r.boxes(tok) if np.allclose(b.size, size)]

    a, b = lead_boxes(rendered), lead_boxes(tmp_path / "moved")
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert y.center - x.center == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    # the keypoint pedestrian holds the given pose (person frame -> world through its box)
    r = NuScenesReader(tmp_path / "moved")
    tok = r.sample_tokens(r.scene_tokens()[0])[0]
    boxes = {x.instance_token: x for x in r.boxes(tok)}
    p0 = ped.track[0]
    hits = [p for p in r.human_poses(tok) if np.hypot(*(boxes[p.instance_token].center[:2] - (p0.x, p0.y))) < 1e-3]
    assert len(hits) == 1
    c, s = np.cos(p0.yaw), np.sin(p0.yaw)
    ground = p0.z - ped.size[2] / 2
    want = np.array([(p0.x + c * x - s * y, p0.y + s * x + c * y, ground + z) for x, y, z in kps])
    assert np.allclose(hits[0].keypoints, want, atol=1e-4)


def test_to_root_refuses_and_writes_nothing(town_scene, tmp_path):
    out = tmp_path / "never"
    far = town_scene.add_agent(agent("far", "vehicle.car", (1.9, 4.6, 1.5), [(0.0, 9000.0, 9000.0, 0.0)]))
    with pytest.raises(ConfigError, match=r"agents\[\d+\]\.track\[0\]: position \(9000, 9000\) is out of the map's range"):
        to_root(far, out)
    cone = town_scene.add_agent(agent("cone", "movable_object.trafficcone", (0.4, 0.4, 0.7), [(0.0, 300.0, 300.0, 0.0)]))
    with pytest.raises(ConfigError, match="SynthTown cannot draw 'movable_object.trafficcone'"):
        to_root(cone, out)
    with pytest.raises(ConfigError, match="duration: 1 s is longer than the 0.5 s"):
        to_root(town_scene, out, max_seconds=0.5)
    assert list(tmp_path.iterdir()) == []


def main(argv: list[str]) -> int:
    """``genesis-drive`` with only the scene subcommand (the full entry point imports every area)."""
    parser = argparse.ArgumentParser(prog="genesis-drive")
    scene_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GenesisError as e:
        print(f"genesis-drive {args.command}: error: {e}", file=__import__("sys").stderr)
        return 1


def test_cli(town_root, town_scene, tmp_path, capsys):
    f = tmp_path / "s.yaml"
    assert main(["scene", "from-root", str(town_root), "--sample", first_sample(town_root), "--out", str(f)]) == 0
    assert load_scene(f) == from_root(town_root, first_sample(town_root))
    assert main(["scene", "from-root", str(town_root), "--sample", first_sample(town_root), "--out", str(f)]) == 1
    assert main(["scene", "validate", str(f)]) == 0
    assert main(["scene", "validate", str(f), "--max-seconds", "0.5"]) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "genesis-drive/scene/v1"}))
    assert main(["scene", "render", str(bad), "--out", str(tmp_path / "r"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "longer than the 0.5 s" in err and f"{bad}: name: missing" in err
    assert not (tmp_path / "r").exists()
