"""Joint generation (`generate --modalities camera,lidar`): one nuScenes-format root whose camera files are
the camera-only generation's and whose keyframe LIDAR_TOP sweeps come from the LiDAR DiT fed the generated
video, window after window; loadable by nuscenes-devkit, seeded, atomic, with one-line errors. Tiny random
networks on the hand-made root (4 keyframes; the test LiDAR DiT's horizon is 2: windows at keyframes 0
and 1, the second keeping keyframe 3 only)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from nuscenes.nuscenes import NuScenes

from genesis_drive.cli import main
from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.nuscenes import NuScenesReader, read_lidar_points
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.generate.checkpoints import checkpoint_dirs, load_camera_networks
from genesis_drive.generate.joint import LidarWindow, check_joint_networks, generate_joint_root, plan_windows, window_seed
from genesis_drive.generate.lidar import Forecaster, beams_of_root, load_lidar_networks
from genesis_drive.models.camera.vae import VideoVAE
from genesis_drive.train.checkpoint import load_run_model
from genesis_drive.train.tasks.camera_vae import CameraVAEConfig

from ..data.handmade import write_handmade
from .tiny_checkpoints import save_all, save_vae

LIDAR = "LIDAR_TOP"
RUN = ("--steps", "1", "--guidance", "1.5", "--seed", "3", "--no-progress")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("jhm") / "root", num_keyframes=4)  # 19 frames at 12 Hz, LiDAR at 20 Hz


@pytest.fixture(scope="module")
def joint_ckpts(tmp_path_factory) -> Path:
    """DIR/camera_vae, camera_dit, lidar_ae, lidar_dit (random, non-zero outputs) as training writes them."""
    return save_all(tmp_path_factory.mktemp("jckpt"))


@pytest.fixture(scope="module")
def nets(joint_ckpts):
    dirs = {**checkpoint_dirs(joint_ckpts, "camera"), **checkpoint_dirs(joint_ckpts, "lidar")}
    return load_camera_networks(dirs), load_lidar_networks(dirs)


@pytest.fixture(scope="module")
def runs(root, joint_ckpts, nets, tmp_path_factory):
    """The joint root by the command, again by the API (same seed), with --lidar-reference none, and the
    camera-only root of the same seed."""
    base = tmp_path_factory.mktemp("jruns")
    assert main(["generate", "--from", str(root), "--out", str(base / "joint"), "--modalities", "camera,lidar",
                 "--checkpoints", str(joint_ckpts), *RUN]) == 0  # fmt: skip
    cam, lid = nets
    again = generate_joint_root(root, base / "again", camera=cam, lidar=lid, seed=3, steps=1, guidance=1.5, progress=False)
    assert main(["generate", "--from", str(root), "--out", str(base / "none"), "--modalities", "camera", "lidar",
                 "--lidar-reference", "none", "--checkpoints", str(joint_ckpts), *RUN]) == 0  # fmt: skip
    assert main(["generate", "--from", str(root), "--out", str(base / "camera"), "--modalities", "camera",
                 "--checkpoints", str(joint_ckpts), *RUN]) == 0  # fmt: skip
    return {"joint": base / "joint", "again": again, "none": base / "none", "camera": base / "camera"}


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _table(out: Path, name: str) -> list[dict]:
    return json.loads((out / "v1.0-mini" / f"{name}.json").read_text())


def _keyframe_lidar(reader: NuScenesReader) -> list[dict]:
    scene = reader.scene_tokens()[0]
    return [reader.sample_data(reader.nusc.get("sample", s)["data"][LIDAR]) for s in reader.sample_tokens(scene)]


def test_plan_windows_cover_every_keyframe_after_the_first_once():
    assert plan_windows(13, 6) == (LidarWindow(0, 1), LidarWindow(6, 7))
    assert plan_windows(10, 6) == (LidarWindow(0, 1), LidarWindow(3, 7))
    assert plan_windows(4, 2) == (LidarWindow(0, 1), LidarWindow(1, 3))
    assert plan_windows(7, 6) == (LidarWindow(0, 1),)
    for n in range(3, 40):
        for h in (1, 2, 3, 6):
            if n - 1 < h:
                continue
            ws = plan_windows(n, h)
            kept = [k for w in ws for k in range(w.keep_from, w.start + h + 1)]
            assert kept == list(range(1, n))  # each keyframe once, in order
            assert all(w.start + h <= n - 1 and w.start < w.keep_from for w in ws)
            assert all(b.start < b.keep_from - 1 or b.start == a.start + h for a, b in zip(ws, ws[1:]))  # reference generated before
    with pytest.raises(DataError, match="too short"):
        plan_windows(2, 2)
    assert window_seed(3, "scene-0001", 0) == window_seed(3, "scene-0001", 0) != window_seed(3, "scene-0001", 1)


def test_the_joint_root_loads_in_the_devkit_with_the_source_tokens(root, runs):
    out = runs["joint"]
    nusc = NuScenes(version="v1.0-mini", dataroot=str(out), verbose=False)
    src = NuScenes(version="v1.0-mini", dataroot=str(root), verbose=False)
    assert [s["token"] for s in nusc.sample] == [s["token"] for s in src.sample]
    assert _table(out, "sample_annotation") == _table(root, "sample_annotation")
    # the LiDAR chain: keyframes only, linked directly, walkable by the devkit
    sd = nusc.get("sample_data", nusc.sample[0]["data"][LIDAR])
    chain = [sd["token"]]
    while sd["next"]:
        sd = nusc.get("sample_data", sd["next"])
        chain.append(sd["token"])
    assert chain == [s["data"][LIDAR] for s in nusc.sample] and all(nusc.get("sample_data", t)["is_key_frame"] for t in chain)
    lidar_sds = [r for r in nusc.sample_data if r["channel"] == LIDAR]
    assert len(lidar_sds) == 4 < len([r for r in src.sample_data if r["channel"] == LIDAR])
    assert not (out / "sweeps" / LIDAR).exists()
    assert {r["token"] for r in _table(out, "ego_pose")} == {r["ego_pose_token"] for r in nusc.sample_data}
    flags = {r["sample_data_token"]: r["generated"] for r in _table(out, "generation")}
    assert [flags[t] for t in chain] == [False, True, True, True]
    meta = json.loads((out / "generated" / "lidar.json").read_text())
    assert meta["reference"] == "real" and meta["horizon"] == 2
    assert meta["windows"]["scene-0001"] == [{"start": 0, "keyframes": [1, 2]}, {"start": 1, "keyframes": [3]}]


def test_cameras_are_the_camera_only_generation_and_lidar_is_generated(root, runs):
    joint, cam = _files(runs["joint"]), _files(runs["camera"])
    cam_files = [f for f in cam if f.startswith(("samples/CAM_", "sweeps/CAM_"))]
    assert len(cam_files) == 6 * 19 and all(joint[f] == cam[f] for f in cam_files)
    reader, src = NuScenesReader(runs["joint"]), NuScenesReader(root)
    beams = beams_of_root(src)
    for k, sd in enumerate(_keyframe_lidar(reader)):
        pts, real = read_lidar_points(runs["joint"] / sd["filename"]), read_lidar_points(root / sd["filename"])
        if k == 0:
            assert joint[sd["filename"]] == (root / sd["filename"]).read_bytes()  # the real present
            continue
        assert pts.shape[1] == 5 and len(pts) > 0 and np.isfinite(pts).all() and not np.array_equal(pts, real)
        assert set(np.unique(pts[:, 4]).astype(int)) <= set(range(len(beams.elevations))) and (pts[:, 3] == 0).all()
    # the source is untouched (the generated files replaced hard links, never wrote through them)
    assert all((root / sd["filename"]).read_bytes() != joint[sd["filename"]] for sd in _keyframe_lidar(src)[1:])
    assert NuScenesReader(root).lidar_sweep(_keyframe_lidar(src)[1]["token"]).points.shape == (200, 5)


def test_windows_are_the_forecaster_on_the_generated_images(root, runs, nets):
    """Window 0 = the LiDAR forecaster on keyframe 0 of the camera-only root (the same generated JPEGs, the
    real keyframe-0 sweep); window 1 = the forecaster at keyframe 1 whose reference is the joint root's
    generated keyframe-1 sweep; each with its window seed. An independent path: clips of the camera root."""
    _, lid = nets
    cfg = lid.dit_config
    cam_reader = NuScenesReader(runs["camera"])
    index = ClipIndex(cam_reader, dataclasses.replace(cfg.clips.spec(cfg.views, cfg.image_size, lidar="keyframe"), window_stride=1))
    forecaster = Forecaster(lid, beams_of_root(NuScenesReader(root)), cfg, "forecast", 1, 1.5, (), torch.device("cpu"))
    sds = _keyframe_lidar(NuScenesReader(runs["joint"]))
    got = [read_lidar_points(runs["joint"] / sd["filename"]) for sd in sds]
    w0 = forecaster(index.load(0), window_seed(3, "scene-0001", 0))
    # the same computation on another path: equal up to float32 reassociation (CI's BLAS differs)
    np.testing.assert_allclose(w0[0], got[1], rtol=0, atol=1e-4)
    np.testing.assert_allclose(w0[1], got[2], rtol=0, atol=1e-4)
    clip1 = index.load(1)
    w1 = forecaster(dataclasses.replace(clip1, lidar=[got[1], *clip1.lidar[1:]]), window_seed(3, "scene-0001", 1))
    np.testing.assert_allclose(w1[1], got[3], rtol=0, atol=1e-4)
    assert not np.allclose(w1[0], got[2], rtol=0, atol=1e-2)  # window 1's own keyframe 2 is discarded: window 0's is kept


def test_same_seed_same_bytes_and_the_reference_matters(runs):
    joint, again, none = _files(runs["joint"]), _files(runs["again"]), _files(runs["none"])
    meta = lambda f: {k: v for k, v in json.loads(f["generated/lidar.json"]).items() if k not in ("seconds", "networks")}  # noqa: E731
    assert meta(joint) == meta(again)
    assert {f: h for f, h in joint.items() if f != "generated/lidar.json"} == {f: h for f, h in again.items() if f != "generated/lidar.json"}
    lidar = [f for f in joint if f.startswith(f"samples/{LIDAR}/")]
    assert sorted(lidar) == sorted(f for f in none if f.startswith(f"samples/{LIDAR}/"))
    differ = [f for f in lidar if joint[f] != none[f]]
    assert len(differ) == 3  # every generated keyframe; keyframe 0 is the same real sweep
    assert all(joint[f] == none[f] for f in joint if "/CAM_" in f)
    assert json.loads(none["generated/lidar.json"])["reference"] == "none"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genesis-drive generate: error: "), err
    return err[0]


def _joint(root, out, ckpts, *extra) -> int:
    return main(["generate", "--from", str(root), "--out", str(out), "--modalities", "camera,lidar", "--checkpoints", str(ckpts),
                 *RUN, *extra])  # fmt: skip


def test_errors_are_one_line_and_write_nothing(root, joint_ckpts, ckpts, tmp_path, capsys):
    out = tmp_path / "work" / "out"
    (tmp_path / "work").mkdir()
    assert _joint(root, out, ckpts) == 1  # the camera-only checkpoints
    assert "no lidar_ae/ folder" in _one_error_line(capsys)
    mism = tmp_path / "mism"
    mism.mkdir()
    save_vae(mism / "camera_vae", seed=9)
    for n in ("camera_dit", "lidar_ae", "lidar_dit"):
        (mism / n).symlink_to(joint_ckpts / n)
    assert _joint(root, out, mism) == 1
    assert "field 'frozen.vae': is not the vae the LiDAR DiT was trained with" in _one_error_line(capsys)
    short = write_handmade(tmp_path / "short", num_keyframes=2)
    assert _joint(short, out, joint_ckpts) == 1
    assert "scene scene-0001: a scene of 2 keyframes is too short" in _one_error_line(capsys)
    for extra, match in [(("--lidar-reference", "fake"), "--lidar-reference: unknown 'fake'; expected real | none"),
                         (("--drop-conditions", "camera"), "--drop-conditions applies to --modalities camera or lidar alone"),
                         (("--mode", "forecast"), "--mode: unknown camera mode 'forecast'")]:  # fmt: skip
        assert _joint(root, out, joint_ckpts, *extra) == 1
        assert match in _one_error_line(capsys)
    assert main(["generate", "--from", str(root), "--out", str(out), "--modalities", "lidar", "--lidar-reference", "none"]) == 1
    assert "--lidar-reference applies to --modalities camera,lidar only" in _one_error_line(capsys)
    assert list((tmp_path / "work").iterdir()) == []


def test_network_checks(nets, root, tmp_path):
    cam, lid = nets
    with pytest.raises(DataError, match="uses no camera features"):
        check_joint_networks(cam, dataclasses.replace(lid, vae=None))
    other = load_run_model(save_vae(tmp_path / "v", seed=9), CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")[0]
    with pytest.raises(DataError, match="is not the camera branch's VAE"):
        check_joint_networks(cam, dataclasses.replace(lid, vae=other))
    with pytest.raises(ConfigError, match="needs the LiDAR DiT"):
        check_joint_networks(cam, dataclasses.replace(lid, dit=None))
    with pytest.raises(DataError, match="unknown scenes"):
        generate_joint_root(root, tmp_path / "o", camera=cam, lidar=lid, scenes=["scene-9"], progress=False)
    assert not (tmp_path / "o").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["v"]
