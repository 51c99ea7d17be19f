"""Write -> devkit load -> our read round trips, and every bad-input case's message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genesis_drive.data.geometry import Pose
from genesis_drive.data.nuscenes import NuScenesReader, NuScenesWriter, SceneMeta
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.data.validate import validate_root
from genesis_drive.errors import DataError

from .handmade import KEY_US, LIDAR_CALIB, MAP, T0, cam_calibration, car_box, ego_pose, image_for, lidar_points, ped_box, ped_pose, write_handmade


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


@pytest.fixture(scope="module")
def reader(root) -> NuScenesReader:
    return NuScenesReader(root)


def test_devkit_loads_and_counts(reader):
    nusc = reader.nusc
    assert len(nusc.scene) == 1 and len(nusc.sample) == 4
    assert len(nusc.instance) == 2 and len(nusc.sample_annotation) == 8
    sample = nusc.sample[0]
    assert set(sample["data"]) == set(CAMERA_CHANNELS) | {"LIDAR_TOP"}
    # devkit's own box API agrees with the annotation we wrote
    _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
    assert {b.name for b in boxes} == {"vehicle.car", "human.pedestrian.adult"}


def test_boxes_roundtrip_global(reader):
    scene = reader.scene_tokens()[0]
    for k, st in enumerate(reader.sample_tokens(scene)):
        t = T0 + k * KEY_US
        got = {b.instance_token: b for b in reader.boxes(st)}
        assert len(got) == 2
        car = next(b for b in got.values() if b.category == "vehicle.car")
        want = car_box(t)
        np.testing.assert_allclose(car.center, want.center, atol=1e-9)
        np.testing.assert_allclose(car.size, want.size)
        np.testing.assert_allclose(abs(np.dot(car.rotation, want.rotation)), 1.0, atol=1e-9)
        assert car.attributes == want.attributes and car.visibility == 4 and car.num_lidar_pts == 42
        # velocity is not stored: the devkit derives it from neighbouring annotations (5 m/s along +x)
        np.testing.assert_allclose(car.velocity[:2], [5.0, 0.0], atol=1e-6)
        ped = next(b for b in got.values() if b.category.startswith("human"))
        assert ped.instance_token != car.instance_token and ped.visibility == 3


def test_poses_calibrations_and_tokens(reader, root):
    scene = reader.scene_tokens()[0]
    st = reader.sample_tokens(scene)[2]
    sample = reader.nusc.get("sample", st)
    for i, ch in enumerate(CAMERA_CHANNELS):
        frame = reader.camera_frame(sample["data"][ch])
        want = cam_calibration(i)
        assert frame.sensor_to_ego == want.sensor_to_ego
        np.testing.assert_allclose(frame.intrinsics, want.intrinsics)
        assert frame.ego_to_global == ego_pose(T0 + 2 * KEY_US)
        assert frame.timestamp == T0 + 2 * KEY_US and frame.is_key_frame and frame.token == sample["data"][ch]
        # JPEG is lossy: flat colours come back within a few levels
        assert np.abs(frame.image.astype(int) - image_for(i, 12).astype(int)).max() <= 3
    sweep = reader.lidar_sweep(sample["data"]["LIDAR_TOP"])
    assert sweep.sensor_to_ego == LIDAR_CALIB.sensor_to_ego
    np.testing.assert_array_equal(sweep.points, lidar_points(seed=20))
    poses = reader.human_poses(st)
    assert len(poses) == 1 and poses[0] == ped_pose().__class__(ped_pose().keypoints, poses[0].instance_token)
    # tokens are deterministic: writing again gives identical tables
    again = write_handmade(root.parent / "again")
    for name in ("sample", "sample_data", "sample_annotation", "instance", "scene"):
        assert (root / "v1.0-mini" / f"{name}.json").read_text() == (again / "v1.0-mini" / f"{name}.json").read_text()
    shutil.rmtree(again)


def test_channel_chains_and_sweeps(reader):
    scene = reader.scene_tokens()[0]
    cams = reader.channel_tokens(scene, "CAM_FRONT")
    lidar = reader.channel_tokens(scene, "LIDAR_TOP")
    assert len(cams) == 19 and len(lidar) == 31
    ts = [reader.sample_data(t)["timestamp"] for t in cams]
    assert ts == sorted(ts)
    assert sum(reader.sample_data(t)["is_key_frame"] for t in cams) == 4
    assert reader.sample_data(cams[1])["filename"].startswith("sweeps/CAM_FRONT/")


def test_map_roundtrip(reader):
    layers = reader.map_layers("handmade-town")
    for name in ("drivable_area", "ped_crossing", "walkway", "lane_divider", "road_edge", "lane_centerline"):
        got, want = getattr(layers, name), getattr(MAP, name)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w)


def test_validate_clean_root(root):
    assert validate_root(root) == []


def test_devkit_render_functions(reader, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    sample = reader.nusc.sample[1]
    out = tmp_path / "cam.png"
    reader.nusc.render_sample_data(sample["data"]["CAM_FRONT"], out_path=str(out), verbose=False)
    reader.nusc.render_sample_data(sample["data"]["LIDAR_TOP"], out_path=str(tmp_path / "lidar.png"), verbose=False)
    assert out.stat().st_size > 1000 and (tmp_path / "lidar.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# bad input


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def _edit_table(root: Path, name: str, fn) -> Path:
    path = root / "v1.0-mini" / f"{name}.json"
    rows = json.loads(path.read_text())
    rows = fn(rows)
    path.write_text(json.dumps(rows) if not isinstance(rows, str) else rows)
    return path


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="dataset root not found"):
        NuScenesReader(tmp_path / "nope")
    assert "dataset root not found" in str(validate_root(tmp_path / "nope")[0])


def test_wrong_version(root):
    with pytest.raises(DataError, match=r"version 'v1.0-trainval' not found; available: \['v1.0-mini'\]"):
        NuScenesReader(root, version="v1.0-trainval")


def test_missing_table(root, tmp_path):
    r = _copy(root, tmp_path)
    (r / "v1.0-mini" / "ego_pose.json").unlink()
    with pytest.raises(DataError, match=r"ego_pose.json.*table file missing"):
        NuScenesReader(r)


def test_corrupt_table(root, tmp_path):
    r = _copy(root, tmp_path)
    _edit_table(r, "sample", lambda rows: json.dumps(rows)[:-20])
    with pytest.raises(DataError, match=r"sample.json.*not valid JSON"):
        NuScenesReader(r)


def test_missing_field(root, tmp_path):
    r = _copy(root, tmp_path)
    _edit_table(r, "calibrated_sensor", lambda rows: [{k: v for k, v in rows[0].items() if k != "rotation"}] + rows[1:])
    with pytest.raises(DataError, match=r"calibrated_sensor.json.*field 'rotation': missing"):
        NuScenesReader(r)


def test_missing_sample_file(root, tmp_path):
    r = _copy(root, tmp_path)
    rows = json.loads((r / "v1.0-mini" / "sample_data.json").read_text())
    victim = next(x for x in rows if x["filename"].endswith(".jpg"))
    (r / victim["filename"]).unlink()
    problems = validate_root(r)
    assert len(problems) == 1 and problems[0].field == "filename" and "not found" in problems[0].message
    assert problems[0].token == victim["token"]
    reader = NuScenesReader(r)
    with pytest.raises(DataError, match=r"camera image file not found"):
        reader.camera_frame(victim["token"])


def test_truncated_lidar_file(root, tmp_path):
    r = _copy(root, tmp_path)
    rows = json.loads((r / "v1.0-mini" / "sample_data.json").read_text())
    victim = next(x for x in rows if x["filename"].endswith(".pcd.bin"))
    p = r / victim["filename"]
    p.write_bytes(p.read_bytes()[:-6])
    assert any("multiple of 20" in str(x) for x in validate_root(r))
    with pytest.raises(DataError, match="not a multiple of 20"):
        NuScenesReader(r).lidar_sweep(victim["token"])


def test_inconsistent_calibration_and_tokens(root, tmp_path):
    r = _copy(root, tmp_path)

    def break_calib(rows):
        rows[0]["rotation"] = [2.0, 0.0, 0.0, 0.0]
        cam = next(x for x in rows if x["camera_intrinsic"])
        cam["camera_intrinsic"] = [[1, 0], [0, 1]]
        return rows

    _edit_table(r, "calibrated_sensor", break_calib)
    _edit_table(r, "sample_annotation", lambda rows: [{**rows[0], "instance_token": "deadbeef"}] + rows[1:])
    problems = validate_root(r)
    text = "\n".join(str(p) for p in problems)
    assert "field 'rotation': must be a unit quaternion" in text
    assert "field 'camera_intrinsic': a camera needs a 3x3 matrix" in text
    assert "field 'instance_token': refers to missing instance 'deadbeef'" in text
    assert len(problems) >= 3


def test_writer_is_atomic_on_error(tmp_path):
    target = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with NuScenesWriter(target) as w:
            w.add_map("m", MAP)
            w.begin_scene(SceneMeta("s", "d", "m"), [LIDAR_CALIB])
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_input_errors(tmp_path):
    w = NuScenesWriter(tmp_path / "ds")
    with pytest.raises(DataError, match="no map added for location 'x'"):
        w.begin_scene(SceneMeta("s", "d", "x"), [LIDAR_CALIB])
    w.add_map("x", MAP)
    scene = w.begin_scene(SceneMeta("s", "d", "x"), [LIDAR_CALIB])
    bad = car_box(T0).__class__.from_yaw([0, 0, 0], [1, 1, 1], 0.0, "vehicle.spaceship", instance_token="a")
    with pytest.raises(DataError, match="unknown category 'vehicle.spaceship'"):
        w.add_sample(scene, T0, [bad])
    with pytest.raises(DataError, match="no camera calibration for channel 'CAM_FRONT'"):
        from genesis_drive.data.schema import CameraFrame

        c = cam_calibration(0)
        w.add_camera_frame(scene, CameraFrame("CAM_FRONT", image_for(0, 0), c.intrinsics, c.sensor_to_ego, Pose.identity(), T0))
    w.abort()
    with pytest.raises(DataError, match="already exists"):
        (tmp_path / "ds2").mkdir()
        NuScenesWriter(tmp_path / "ds2")


def test_root_without_maps_loads_with_warning(root, tmp_path):
    r = _copy(root, tmp_path)
    shutil.rmtree(r / "maps" / "expansion")
    reader = NuScenesReader(r)
    with pytest.warns(UserWarning, match="map conditions will be empty"):
        layers = reader.map_layers("handmade-town")
    assert layers.is_empty()
    _ = ped_box()
