"""LiDAR forecasting (`generate --modalities lidar`): the three modes end to end on the hand-made root
with tiny random networks, the output layout `eval lidar` reads, the copy-reference baseline's exact
points, determinism under a seed, checkpoint checks and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genesis_drive.cli import main
from genesis_drive.data.nuscenes import NuScenesReader, read_lidar_points
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.data.chamfer import CHAMFER_PROTOCOLS
from genesis_drive.eval.lidar import LidarEvaluator, scan_generated_sweeps
from genesis_drive.generate.checkpoints import checkpoint_dirs
from genesis_drive.generate.lidar import forecast_root, load_lidar_networks
from genesis_drive.train.tasks.lidar_dit import move_points

from ..data.handmade import write_handmade
from .tiny_checkpoints import save_lidar, save_vae


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")  # 4 keyframes: 2 with 2 after them


@pytest.fixture(scope="module")
def lidar_ckpts(tmp_path_factory):
    """DIR/lidar_ae, DIR/camera_vae, DIR/lidar_dit (random weights, non-zero output) as training writes them."""
    base = tmp_path_factory.mktemp("lckpt")
    return save_lidar(base, save_vae(base / "camera_vae"))


def _clouds(out):
    return {(s.sample_token, s.offset): read_lidar_points(s.path) for s in scan_generated_sweeps(out)}


def test_copy_reference_writes_the_moved_sweep_in_the_eval_layout(root, tmp_path):
    out = forecast_root(root, tmp_path / "copy", nets=None, mode="copy-reference", horizon=2, progress=False)
    clouds = _clouds(out)
    reader = NuScenesReader(root)
    tokens = reader.sample_tokens(reader.scene_tokens()[0])
    assert sorted(clouds) == sorted((tokens[i], k) for i in range(2) for k in (1, 2))
    for (tok, k), pts in clouds.items():
        i = tokens.index(tok)
        sweeps = [reader.lidar_sweep(reader.nusc.get("sample", tokens[j])["data"]["LIDAR_TOP"]) for j in (i, i + k)]
        m = [sw.ego_to_global.matrix() @ sw.sensor_to_ego.matrix() for sw in sweeps]
        np.testing.assert_allclose(pts, move_points(sweeps[0].points, np.linalg.inv(m[1]) @ m[0]), atol=1e-5)
    meta = json.loads((out / "forecast.json").read_text())
    assert meta["mode"] == "copy-reference" and meta["keyframes"] == 2 and meta["horizon"] == 2
    # the evaluator reads it: at offset 0 s the moved sweep is the true sweep up to the scene's motion
    rows, _ = LidarEvaluator(reader, CHAMFER_PROTOCOLS["vidar"], generation=False).evaluate(scan_generated_sweeps(out), num_resamples=10)
    assert rows and all(np.isfinite(r.value) for r in rows)


def test_forecast_and_reconstruct_run_end_to_end_and_are_seeded(root, lidar_ckpts, tmp_path):
    dirs = {n: lidar_ckpts / n for n in ("lidar_ae", "lidar_dit", "camera_vae")}
    nets = load_lidar_networks(dirs)
    a = forecast_root(root, tmp_path / "a", nets=nets, mode="forecast", seed=3, steps=2, progress=False)
    b = forecast_root(root, tmp_path / "b", nets=nets, mode="forecast", seed=3, steps=2, progress=False)
    c = forecast_root(root, tmp_path / "c", nets=nets, mode="forecast", seed=4, steps=2, progress=False)
    ca, cb, cc = _clouds(a), _clouds(b), _clouds(c)
    assert sorted(ca) == sorted(cb) and len(ca) == 2 * 2
    for key in ca:
        assert (a / key[0] / f"{key[1]}.pcd.bin").read_bytes() == (b / key[0] / f"{key[1]}.pcd.bin").read_bytes()
        pts = ca[key]
        assert pts.shape[1] == 5 and len(pts) > 0 and np.isfinite(pts).all()
        assert set(np.unique(pts[:, 4])) <= set(range(32)) and (pts[:, 3] == 0).all()  # rings; no intensity head
    assert any(not np.array_equal(ca[k], cc[k]) for k in ca)  # another seed, other sweeps
    ablated = forecast_root(root, tmp_path / "nocam", nets=nets, mode="forecast", seed=3, steps=2, drop=("camera",), progress=False)
    assert any(not np.array_equal(ca[k], _clouds(ablated)[k]) for k in ca)
    assert json.loads((ablated / "forecast.json").read_text())["drop"] == ["camera"]
    rec = forecast_root(root, tmp_path / "rec", nets=load_lidar_networks(dirs, need_dit=False), mode="reconstruct",
                        horizon=2, progress=False)  # fmt: skip
    assert sorted(_clouds(rec)) == sorted(ca)


def test_the_generate_command(root, lidar_ckpts, tmp_path, capsys):
    out = tmp_path / "gen"
    code = main(["generate", "--from", str(root), "--out", str(out), "--modalities", "lidar", "--checkpoints", str(lidar_ckpts),
                 "--steps", "1", "--guidance", "1.0", "--no-progress"])  # fmt: skip
    assert code == 0 and "LiDAR forecast" in capsys.readouterr().out
    assert len(scan_generated_sweeps(out)) == 4
    # a root without LIDAR_TOP, an unknown mode, a missing network: one line, nothing written
    assert main(["generate", "--from", str(root), "--out", str(tmp_path / "x"), "--modalities", "lidar", "--mode", "free"]) == 1
    assert "unknown lidar mode 'free'" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "lidar_ae").symlink_to(lidar_ckpts / "lidar_ae")
    assert main(["generate", "--from", str(root), "--out", str(tmp_path / "y"), "--modalities", "lidar",
                 "--checkpoints", str(tmp_path / "half")]) == 1  # fmt: skip
    assert "no camera_vae/ folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_checks(root, lidar_ckpts, tmp_path):
    dirs = {n: lidar_ckpts / n for n in ("lidar_ae", "lidar_dit", "camera_vae")}
    with pytest.raises(DataError, match="is a checkpoint of task 'camera-vae', expected 'lidar-ae'"):
        load_lidar_networks(dict(dirs, lidar_ae=dirs["camera_vae"]))
    other_vae = save_vae(tmp_path / "other_vae", seed=9)
    with pytest.raises(DataError, match="is not the vae the LiDAR DiT was trained with"):
        load_lidar_networks(dict(dirs, camera_vae=other_vae))
    with pytest.raises(ConfigError, match="unknown group"):
        forecast_root(root, tmp_path / "z", nets=None, mode="copy-reference", drop=("radar",))
    with pytest.raises(ConfigError, match="needs the LiDAR networks"):
        forecast_root(root, tmp_path / "z", nets=None, mode="forecast")
    with pytest.raises(DataError, match="unknown scene"):
        forecast_root(root, tmp_path / "z", nets=None, mode="copy-reference", scenes=["scene-9"])
    assert checkpoint_dirs(lidar_ckpts, "lidar")["lidar_dit"] == lidar_ckpts / "lidar_dit"
    assert not (tmp_path / "z").exists()
