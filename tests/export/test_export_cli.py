"""`genesis-drive export` on the hand-made root: every format, byte-exact copies, replacing, errors."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from genesis_drive.cli import main
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.export.ply import read_ply
from genesis_drive.export.writer import FORMATS, parse_formats
from genesis_drive.errors import ConfigError
from genesis_drive.viz.video import view_grid
from tests.viz.media import read_frames

SCENE = "scene-0001"
GRID = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")


@pytest.fixture(scope="module")
def exported(hm_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "out"
    assert main(["export", str(hm_root), "--out", str(out)]) == 0
    return NuScenesReader(hm_root), out


def test_every_format_is_written(exported):
    reader, out = exported
    summary = json.loads((out / "export.json").read_text())
    assert summary["formats"] == list(FORMATS)
    assert summary["scenes"] == {SCENE: {"mp4": 1, "frames": 42, "pcd": 11, "ply": 11, "bev": 2, "lidar-on-image": 2, "rrd": 1}}
    s = out / SCENE
    assert (s / f"{SCENE}.mp4").is_file() and (s / f"{SCENE}.rrd").stat().st_size > 0
    assert len(list((s / "bev").glob("*.png"))) == 2 and len(list((s / "lidar_on_image").glob("*.png"))) == 2
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # the hidden build folder is gone


def test_copies_are_byte_exact_and_ply_matches(exported):
    reader, out = exported
    scene = reader.scene_tokens()[0]
    for sd in reader.channel_tokens(scene, "LIDAR_TOP"):
        src = reader.root / reader.sample_data(sd)["filename"]
        assert (out / SCENE / "pcd" / src.name).read_bytes() == src.read_bytes()
        ply = read_ply(out / SCENE / "ply" / src.name.replace(".pcd.bin", ".ply"))
        pts = reader.lidar_sweep(sd).points
        np.testing.assert_array_equal(np.stack([ply[k].astype(np.float32) for k in ply], axis=1), pts)
    for sd in reader.channel_tokens(scene, "CAM_BACK_LEFT"):
        src = reader.root / reader.sample_data(sd)["filename"]
        assert (out / SCENE / "frames" / "CAM_BACK_LEFT" / src.name).read_bytes() == src.read_bytes()


def test_video_and_pictures(exported):
    reader, out = exported
    scene = reader.scene_tokens()[0]
    frames = read_frames(out / SCENE / f"{SCENE}.mp4")
    assert frames.shape == (7, 72, 192, 3)  # 7 frames at 12 Hz, 3 x 2 tiles of 64 x 36
    # frame 3 of the grid shows each camera's frame 3 (flat colours encode channel and frame)
    tokens = {c: reader.channel_tokens(scene, c) for c in GRID}
    images = np.stack([reader.camera_frame(tokens[c][3]).image for c in GRID])
    expected = view_grid(images, GRID)
    assert np.abs(frames[3].astype(int) - expected.astype(int)).mean() < 3.0
    first = reader.sample_tokens(scene)[0]
    data = reader.nusc.get("sample", first)["data"]
    plain = view_grid(np.stack([reader.camera_frame(data[c]).image for c in GRID]), GRID)
    ts = reader.nusc.get("sample", first)["timestamp"]
    overlay = imageio.imread(out / SCENE / "lidar_on_image" / f"000_{ts}.png")
    assert overlay.shape == plain.shape
    changed = np.any(overlay != plain, axis=2)
    assert 0 < changed.mean() < 0.5  # some LiDAR points drawn, the images still there
    bev = imageio.imread(out / SCENE / "bev" / f"000_{ts}.png")
    assert bev.shape[:2] == (800, 800)


def test_subset_replaces_an_earlier_export(hm_root, tmp_path):
    out = tmp_path / "out"
    assert main(["export", str(hm_root), "--out", str(out), "--formats", "pcd,mp4"]) == 0
    assert sorted(p.name for p in (out / SCENE).iterdir()) == ["pcd", f"{SCENE}.mp4"]
    assert main(["export", str(hm_root), "--out", str(out), "--formats", "ply", "--scenes", SCENE]) == 0
    assert sorted(p.name for p in (out / SCENE).iterdir()) == ["ply"]
    assert json.loads((out / "export.json").read_text())["scenes"] == {SCENE: {"ply": 11}}


def test_parse_formats():
    assert parse_formats("rrd, mp4") == ("mp4", "rrd")
    with pytest.raises(ConfigError, match="unknown format.*'gif'"):
        parse_formats("mp4,gif")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenes", "scene-9999"], "no scene named scene-9999; scenes: scene-0001"),
        (["--formats", "mp4,gif"], "unknown format(s) ['gif']"),
    ],
)
def test_errors_are_one_line(hm_root, tmp_path, capsys, args, message):
    assert main(["export", str(hm_root), "--out", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("genesis-drive export: error:")
    assert not (tmp_path / "o").exists()


def test_missing_root_and_foreign_out(tmp_path, hm_root, capsys):
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "dataset root not found" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["export", str(hm_root), "--out", str(foreign), "--formats", "pcd"]) == 1
    assert "not an export folder" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"
