"""merge_roots: round trips through the reader and the devkit, scene subsets, collisions, atomicity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genesis_drive.data.merge import merge_roots
from genesis_drive.data.nuscenes import NuScenesReader, NuScenesWriter, SceneMeta
from genesis_drive.data.schema import CameraFrame, LidarSweep
from genesis_drive.data.validate import validate_root
from genesis_drive.errors import DataError

from .handmade import (
    KEY_US,
    LIDAR_CALIB,
    MAP,
    T0,
    cam_calibration,
    car_box,
    ego_pose,
    image_for,
    lidar_points,
    ped_box,
    ped_pose,
)

VERSION = "v1.0-mini"


def write_root(root: Path, scene: str, location: str, shade: int) -> Path:
    """One scene ``scene`` of 2 keyframes (6 cameras on keyframes only, LiDAR), a per-scene extra
    file ``extras/<scene>/note.txt``, a shared extra file and an extra table row naming the scene;
    images carry ``shade`` in their blue channel so the two roots' images differ."""
    with NuScenesWriter(root, version=VERSION) as w:
        w.add_map(location, MAP)
        calibs = [cam_calibration(i) for i in range(6)] + [LIDAR_CALIB]
        tok = w.begin_scene(SceneMeta(scene, "merge test scene", location), calibs)
        for k in range(2):
            t = T0 + k * KEY_US
            w.add_sample(tok, t, [car_box(t), ped_box()], [ped_pose()])
            for ci in range(6):
                img = image_for(ci, k)
                img[..., 2] = shade
                c = calibs[ci]
                w.add_camera_frame(tok, CameraFrame(c.channel, img, c.intrinsics, c.sensor_to_ego, ego_pose(t), t, True))
            w.add_lidar_sweep(tok, LidarSweep(lidar_points(seed=k), LIDAR_CALIB.sensor_to_ego, ego_pose(t), t, True))
        w.add_extra_table("test_scene_info", [{"token": f"info-{scene}", "scene_token": tok, "shade": shade}])
        # an extension table without tokens (as generate's generation.json): one row per scene, one shared
        w.add_extra_table("test_flags", [{"scene_token": tok, "shade": shade}, {"flag": "shared"}])
        w.add_extra_file(f"extras/{scene}/note.txt", scene.encode())
        w.add_extra_file("extras/shared.txt", b"same in every root")
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("merge")
    return write_root(base / "a", "scene-a", "town-a", 100), write_root(base / "b", "scene-b", "town-b", 200)


def table(root: Path, name: str) -> list[dict]:
    return json.loads((root / VERSION / f"{name}.json").read_text())


def test_round_trip_reader_and_devkit(roots, tmp_path):
    from nuscenes.nuscenes import NuScenes

    a, b = roots
    out = merge_roots([a, b], tmp_path / "m")
    reader = NuScenesReader(out)
    by_name = {reader.scene_name(t): t for t in reader.scene_tokens()}
    assert sorted(by_name) == ["scene-a", "scene-b"]
    assert validate_root(out) == []
    nusc = NuScenes(version=VERSION, dataroot=str(out), verbose=False)
    assert len(nusc.scene) == 2 and len(nusc.sample) == 4 and len(nusc.sample_annotation) == 8 and len(nusc.instance) == 4
    # shared vocabularies are deduplicated, not doubled
    assert len(nusc.sensor) == 7 and len(nusc.category) == len(table(a, "category"))
    for src in (a, b):
        r = NuScenesReader(src)
        (s,) = r.scene_tokens()
        assert reader.sample_tokens(s) == r.sample_tokens(s)
        for sample in r.sample_tokens(s):
            assert [x.center.tolist() for x in reader.boxes(sample)] == [x.center.tolist() for x in r.boxes(sample)]
            assert len(reader.human_poses(sample)) == 1
        sd = r.channel_tokens(s, "CAM_FRONT")[1]
        np.testing.assert_array_equal(reader.camera_frame(sd).image, r.camera_frame(sd).image)
        np.testing.assert_array_equal(reader.lidar_sweep(r.channel_tokens(s, "LIDAR_TOP")[0]).points,
                                      r.lidar_sweep(r.channel_tokens(s, "LIDAR_TOP")[0]).points)  # fmt: skip
        assert (out / "extras" / r.scene_name(s) / "note.txt").read_text() == r.scene_name(s)
        assert (out / "maps" / "expansion" / f"{r.scene_location(s)}.json").is_file()
    # images of the two roots really are different (blue 100 vs 200, up to JPEG error), so the check above tells them apart
    for name, src, shade in (("scene-a", a, 100), ("scene-b", b, 200)):
        image = reader.camera_frame(NuScenesReader(src).channel_tokens(by_name[name], "CAM_FRONT")[0]).image
        assert abs(int(image[0, 0, 2]) - shade) <= 2
    assert sorted(r["shade"] for r in table(out, "test_scene_info")) == [100, 200]
    # token-less rows: each root's own kept, equal ones collapsed
    assert sorted(json.dumps(r, sort_keys=True) for r in table(out, "test_flags")) == sorted(
        json.dumps(r, sort_keys=True) for r in [{"flag": "shared"}, *[x for src in (a, b) for x in table(src, "test_flags") if "shade" in x]])


def test_files_are_hard_links_or_copies(roots, tmp_path):
    a, b = roots
    rel = table(a, "sample_data")[0]["filename"]
    linked = merge_roots([a, b], tmp_path / "linked")
    copied = merge_roots([a, b], tmp_path / "copied", link=False)
    assert (linked / rel).samefile(a / rel)
    assert not (copied / rel).samefile(a / rel) and (copied / rel).read_bytes() == (a / rel).read_bytes()


def test_scene_subset_keeps_only_what_the_scene_reaches(roots, tmp_path):
    a, b = roots
    out = merge_roots([a, b], tmp_path / "sub", scenes=["scene-b"])
    reader = NuScenesReader(out)
    assert [reader.scene_name(t) for t in reader.scene_tokens()] == ["scene-b"]
    assert validate_root(out) == []
    for name in ("sample", "sample_data", "sample_annotation", "instance", "ego_pose", "calibrated_sensor", "log", "map", "human_pose"):
        assert {r["token"] for r in table(out, name)} == {r["token"] for r in table(b, name)}, name
    assert [r["shade"] for r in table(out, "test_scene_info")] == [200]
    assert sorted(r.get("shade", 0) for r in table(out, "test_flags")) == [0, 200]
    assert not (out / "extras" / "scene-a").exists() and (out / "extras" / "scene-b" / "note.txt").is_file()
    assert (out / "extras" / "shared.txt").is_file()
    assert not (out / "maps" / "expansion" / "town-a.json").exists()
    kept = {r["filename"] for r in table(out, "sample_data")}
    on_disk = {p.relative_to(out).as_posix() for d in ("samples", "sweeps") for p in (out / d).rglob("*") if p.is_file()}
    assert on_disk == kept


def test_same_scene_twice_is_an_error_and_nothing_is_left(roots, tmp_path):
    a, _ = roots
    with pytest.raises(DataError, match=r"scene 'scene-a' \(token [0-9a-f]{32}\) is in both"):
        merge_roots([a, a], tmp_path / "dup")
    assert list(tmp_path.iterdir()) == []


def test_token_naming_different_records_is_an_error(roots, tmp_path):
    a, _ = roots
    c = tmp_path / "c"
    shutil.copytree(a, c)
    scene = table(c, "scene")
    old = scene[0]["token"]
    scene[0]["token"], scene[0]["name"] = "f" * 32, "scene-c"  # another scene, but the same sample tokens
    (c / VERSION / "scene.json").write_text(json.dumps(scene))
    samples = table(c, "sample")
    for s in samples:
        s["scene_token"] = "f" * 32 if s["scene_token"] == old else s["scene_token"]
    (c / VERSION / "sample.json").write_text(json.dumps(samples))
    with pytest.raises(DataError, match=rf"table sample: token {samples[0]['token']} names different records") as e:
        merge_roots([a, c], tmp_path / "m")
    assert "sample.json" in str(e.value)
    assert not (tmp_path / "m").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]


def test_same_path_with_other_bytes_is_an_error(roots, tmp_path):
    a, b = roots
    c = tmp_path / "c"
    shutil.copytree(b, c)
    (c / "extras" / "shared.txt").unlink()
    (c / "extras" / "shared.txt").write_text("not the same")
    with pytest.raises(DataError, match="file extras/shared.txt differs"):
        merge_roots([a, c], tmp_path / "m")


def test_bad_requests(roots, tmp_path):
    a, b = roots
    with pytest.raises(DataError, match=r"scenes \['nope'\] are in none of the roots"):
        merge_roots([a, b], tmp_path / "m", scenes=["scene-a", "nope"])
    (tmp_path / "exists").mkdir()
    with pytest.raises(DataError, match="already exists"):
        merge_roots([a], tmp_path / "exists")
    with pytest.raises(DataError, match="version 'v1.0-trainval' not found"):
        merge_roots([a], tmp_path / "m", version="v1.0-trainval")
    c = tmp_path / "c"
    shutil.copytree(b, c)
    (c / VERSION / "test_flags.json").write_text('{"not": "a list"}')
    with pytest.raises(DataError, match="a table must be a JSON list of records") as e:
        merge_roots([a, c], tmp_path / "m")
    assert "test_flags.json" in str(e.value)
