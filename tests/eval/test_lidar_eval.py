"""LiDAR evaluation over files: pairing with a nuScenes root, frames, CLI end to end."""

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest

from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.errors import DataError
from genesis_drive.eval import cli
from genesis_drive.data.chamfer import CHAMFER_PROTOCOLS, chamfer_distance
from genesis_drive.eval.lidar import LidarEvaluator, scan_generated_sweeps

from .fixtures import EGO_SPEED, KEY_US, sweep_points, world_points, write_nuscenes_root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_nuscenes_root(tmp_path_factory.mktemp("lidar") / "nusc", num_keyframes=8)


@pytest.fixture(scope="module")
def reader(root):
    return NuScenesReader(root)


def write_gen(base, reader, starts=(0, 1), offsets=range(1, 7), transform=None):
    """GEN/<sample_token>/<k>.pcd.bin; by default the ground-truth sweeps themselves."""
    tokens = reader.sample_tokens(reader.scene_tokens()[0])
    for s in starts:
        for k in offsets:
            pts = sweep_points(s + k, world_points())
            if transform is not None:
                pts = transform(pts, s, k)
            path = base / tokens[s] / f"{k}.pcd.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            pts.astype(np.float32).tofile(path)
    return base


def rows_by_name(rows):
    return {r.metric: r for r in rows}


def test_perfect_prediction_scores_zero(tmp_path, reader):
    gen = write_gen(tmp_path / "gen", reader, starts=(0,))
    rows, meta = LidarEvaluator(reader, CHAMFER_PROTOCOLS["vidar"]).evaluate(scan_generated_sweeps(gen), num_resamples=20)
    r = rows_by_name(rows)
    for h in ("1s", "2s", "3s"):
        assert r[f"Chamfer@{h} (vidar)"].value == pytest.approx(0.0, abs=1e-12)
        assert r[f"Chamfer@{h} (vidar)"].counts == {"frames": 1}
    assert r["MMD"].value == pytest.approx(0.0, abs=1e-12) and r["JSD_distance"].value == pytest.approx(0.0, abs=1e-7)
    assert r["MMD"].counts == {"gen sweeps": 6, "ref sweeps": 6}
    assert meta["chamfer_per_frame"] == pytest.approx({2: 0.0, 4: 0.0, 6: 0.0}, abs=1e-12)  # vidar scores 2, 4, 6 only
    # two starts share future keyframes: the reference set holds each ground-truth sweep once
    both = write_gen(tmp_path / "both", reader, starts=(0, 1))
    rows, _ = LidarEvaluator(reader, CHAMFER_PROTOCOLS["vidar"], chamfer=False).evaluate(scan_generated_sweeps(both), num_resamples=0)
    assert rows_by_name(rows)["MMD"].counts == {"gen sweeps": 12, "ref sweeps": 7}


def test_shifted_prediction_matches_direct_computation(tmp_path, reader):
    shift = lambda pts, s, k: pts + np.array([0.3 * k, 0, 0, 0, 0], dtype=np.float32)
    gen = write_gen(tmp_path / "gen", reader, starts=(0,), transform=shift)
    rows, _ = LidarEvaluator(reader, CHAMFER_PROTOCOLS["vidar"], generation=False).evaluate(scan_generated_sweeps(gen), num_resamples=0)
    r = rows_by_name(rows)
    # direct: the protocol's filters, then the squared Chamfer distance of keyframe 2
    p = CHAMFER_PROTOCOLS["vidar"]
    from genesis_drive.data.chamfer import filter_points

    def prep(x):
        return filter_points(filter_points(x[:, :3], ego_box=p.ego_box), p.x_range, p.y_range, p.z_range)

    gt = sweep_points(2, world_points())
    expected = chamfer_distance(prep(shift(gt, 0, 2)), prep(gt))
    assert r["Chamfer@1s (vidar)"].value == pytest.approx(expected, rel=1e-9)
    assert r["Chamfer@1s (vidar)"].value > 0 and r["Chamfer@1s (vidar)"].ci is None


def test_reference_frame_uses_the_recorded_poses(tmp_path, reader):
    # the prediction is the ground truth without its points beyond x = 40 m (sensor frame). Two
    # keyframes ahead the sensor sits 10 m further along x than at t=0, so in the t=0 LiDAR frame
    # a region ending at x = 50 m cuts the ground truth exactly where the prediction ends.
    def drop_far(pts, s, k):
        return pts[pts[:, 0] <= 40]

    gen = write_gen(tmp_path / "gen", reader, starts=(0,), offsets=(2,), transform=drop_far)
    step = EGO_SPEED * KEY_US / 1e6  # 5 m
    proto = replace(CHAMFER_PROTOCOLS["4docc_nearfield"], x_range=(-200.0, 40.0 + 2 * step), y_range=(-200.0, 200.0), z_range=(-50.0, 50.0))
    rows, _ = LidarEvaluator(reader, proto, generation=False).evaluate(scan_generated_sweeps(gen), num_resamples=0)
    assert rows[0].value == pytest.approx(0.0, abs=1e-9)
    sensor = replace(proto, frame="sensor")
    rows, _ = LidarEvaluator(reader, sensor, generation=False).evaluate(scan_generated_sweeps(gen), num_resamples=0)
    assert rows[0].value > 0.1  # scored in the sensor frame, the ground truth keeps points at 40-50 m


def test_layout_errors(tmp_path, reader):
    bad = tmp_path / "bad" / "tok"
    bad.mkdir(parents=True)
    (bad / "one.pcd.bin").write_bytes(np.zeros(5, np.float32).tobytes())
    with pytest.raises(DataError, match="<k>.pcd.bin"):
        scan_generated_sweeps(tmp_path / "bad")
    unknown = tmp_path / "unknown" / "no-such-token"
    unknown.mkdir(parents=True)
    np.zeros((3, 5), np.float32).tofile(unknown / "1.pcd.bin")
    with pytest.raises(DataError, match="not in the reference root"):
        LidarEvaluator(reader, CHAMFER_PROTOCOLS["vidar"]).evaluate(scan_generated_sweeps(tmp_path / "unknown"), num_resamples=0)
    tokens = reader.sample_tokens(reader.scene_tokens()[0])
    far = tmp_path / "far" / tokens[5]
    far.mkdir(parents=True)
    np.zeros((3, 5), np.float32).tofile(far / "4.pcd.bin")
    with pytest.raises(DataError, match="no keyframe 4 steps ahead"):
        LidarEvaluator(reader, CHAMFER_PROTOCOLS["vidar"]).evaluate(scan_generated_sweeps(tmp_path / "far"), num_resamples=0)
    np.zeros(7, np.float32).tofile(far / "4.pcd.bin")
    with pytest.raises(DataError, match="multiple of 5"):
        LidarEvaluator(reader, CHAMFER_PROTOCOLS["vidar"]).evaluate(scan_generated_sweeps(tmp_path / "far"), num_resamples=0)


def test_cli_lidar_end_to_end(tmp_path, root, reader):
    gen = write_gen(tmp_path / "gen", reader, transform=lambda p, s, k: p + np.float32(0.1))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "report"
    args = parser.parse_args(["eval", "lidar", "--gen", str(gen), "--ref", str(root), "--out", str(out), "--bootstrap", "50", "--protocol", "4docc"])
    assert args.func(args) == 0
    report = json.loads((out / "lidar.json").read_text())
    names = [r["metric"] for r in report["rows"]]
    assert names == ["Chamfer@1s (4docc)", "Chamfer@2s (4docc)", "Chamfer@3s (4docc)", "MMD", "JSD_distance", "JS_divergence"]
    first = report["rows"][0]
    assert first["unit"] == "m^2" and first["ci"]["method"] == "percentile" and first["value"] > 0
    assert report["meta"]["chamfer_protocol"]["frame"] == "reference"
    assert "| Chamfer@1s (4docc) |" in (out / "lidar.md").read_text()
