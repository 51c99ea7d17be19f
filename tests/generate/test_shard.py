"""`genesis-drive generate` at scale (:mod:`genesis_drive.generate.shard`): per-scene parts in OUT.parts/,
resume after SIGKILL, `--shard I/N` + `--merge-only`, fingerprints. The final OUT of one uninterrupted run,
of a killed-then-rerun run and of two shards merged are byte-identical (every file). Tiny random networks
on a hand-made root of two scenes (3 keyframes each: one joint LiDAR window of horizon 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genesis_drive.cli import main
from genesis_drive.data.nuscenes import NuScenesWriter, SceneMeta
from genesis_drive.data.schema import CameraFrame, LidarSweep
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.generate.cli import add_arguments, work_split
from genesis_drive.generate.shard import (MARKER, PartStore, Split, fingerprint_diff, parse_shard, parts_dir, run_parts,
                                          shard_scenes, source_identity, torchrun_rank)  # fmt: skip

from ..data import handmade as hm
from .tiny_checkpoints import save_all

SCENES = ("scene-0001", "scene-0002")
RUN = ("--steps", "1", "--guidance", "1.5", "--seed", "3", "--no-progress")


def write_two_scenes(root: Path, num_keyframes: int = 3) -> Path:
    """The hand-made scene twice (names :data:`SCENES`), other images and LiDAR points in the second."""
    key_ts = [hm.T0 + k * hm.KEY_US for k in range(num_keyframes)]
    with NuScenesWriter(root, version="v1.0-mini") as w:
        w.add_map("handmade-town", hm.MAP)
        calibs = [hm.cam_calibration(i) for i in range(6)] + [hm.LIDAR_CALIB]
        for s, name in enumerate(SCENES):
            scene = w.begin_scene(SceneMeta(name, "hand-made test scene", "handmade-town"), calibs)
            for t in key_ts:
                w.add_sample(scene, t, [hm.car_box(t), hm.ped_box()], [hm.ped_pose()])
            cam_ts = sorted({t for k in key_ts[:-1] for t in (k + j * hm.CAM_US for j in range(6))} | set(key_ts))
            for fi, t in enumerate(cam_ts):
                for ci in range(6):
                    c = calibs[ci]
                    w.add_camera_frame(scene, CameraFrame(c.channel, hm.image_for(ci, fi + 20 * s), c.intrinsics, c.sensor_to_ego,
                                                          hm.ego_pose(t), t, t in key_ts))  # fmt: skip
            for li, t in enumerate(range(hm.T0, key_ts[-1] + 1, hm.LIDAR_US)):
                w.add_lidar_sweep(scene, LidarSweep(hm.lidar_points(seed=li + 1000 * s), hm.LIDAR_CALIB.sensor_to_ego,
                                                    hm.ego_pose(t), t, t in key_ts))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_two_scenes(tmp_path_factory.mktemp("shm") / "root")


@pytest.fixture(scope="module")
def nets_dir(tmp_path_factory) -> Path:
    return save_all(tmp_path_factory.mktemp("sckpt"))


def _args(root: Path, out: Path, ckpts: Path, *extra: str) -> list[str]:
    return ["generate", "--from", str(root), "--out", str(out), "--checkpoints", str(ckpts), *RUN, *extra]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def full(root, nets_dir, tmp_path_factory) -> Path:
    """One uninterrupted run with the default --modalities (camera,lidar: joint)."""
    out = tmp_path_factory.mktemp("full") / "out"
    assert main(_args(root, out, nets_dir)) == 0
    assert not parts_dir(out).exists()  # the work folder is removed after the merge
    return out


def test_default_is_joint_and_every_scene_is_there(full):
    meta = json.loads((full / "generated" / "lidar.json").read_text())
    assert sorted(meta["windows"]) == list(SCENES) and meta["windows"]["scene-0002"] == [{"start": 0, "keyframes": [1, 2]}]
    assert sorted(p.name for p in (full / "generated" / "videos").iterdir()) == [f"{n}.mp4" for n in SCENES]
    flags = json.loads((full / "v1.0-mini" / "generation.json").read_text())
    assert len(flags) == 2 * (6 * 13 + 3) and sum(not r["generated"] for r in flags) == 2  # keyframe 0's real sweeps


def test_two_shards_then_merge_only_equal_one_run(root, nets_dir, full, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(root, out, nets_dir, "--shard", "0/2")) == 0
    assert not out.exists() and sorted(p.name for p in parts_dir(out).iterdir()) == ["scene-0001"]
    assert main(_args(root, out, nets_dir, "--merge-only")) == 1  # shard 1 has not run
    assert "no complete part for 1 of 2 scenes (first: scene-0002)" in capsys.readouterr().err
    assert main(_args(root, out, nets_dir, "--shard", "0/2", "--seed", "4")) == 1  # another seed: refused, naming it
    err = capsys.readouterr().err
    assert "part of scene scene-0001 was generated with other arguments (seed: 3 != 4); pass --overwrite" in err
    assert main(_args(root, out, nets_dir, "--shard", "1/2")) == 0
    assert "shard 1/2: parts in" in capsys.readouterr().out and not out.exists()
    assert main(_args(root, out, nets_dir, "--merge-only")) == 0
    assert not parts_dir(out).exists()
    assert _files(out) == _files(full)


def test_sigkill_then_rerun_equals_one_run(root, nets_dir, full, tmp_path, capsys):
    out = tmp_path / "out"
    code = "import sys; from genesis_drive.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *_args(root, out, nets_dir)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    first = parts_dir(out) / SCENES[0] / MARKER
    deadline = time.monotonic() + 120
    while not first.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert running and first.is_file(), proc.stderr.read().decode()[-2000:]
    assert not out.exists() and not (parts_dir(out) / SCENES[1] / MARKER).exists()  # killed while making the second scene
    assert main(_args(root, out, nets_dir)) == 0
    printed = capsys.readouterr().out
    assert f"scene {SCENES[0]}: complete part in" in printed and "1 scene(s) generated, 1 skipped" in printed
    assert not parts_dir(out).exists() and _files(out) == _files(full)


def test_lidar_forecast_shards_equal_one_run(root, nets_dir, tmp_path):
    """Forecast keyframes are seeded by their number among all chosen scenes' keyframes: the same in a shard."""
    lidar = ("--modalities", "lidar", "--mode", "forecast")
    assert main(_args(root, tmp_path / "one", nets_dir, *lidar)) == 0
    for i in range(2):
        assert main(_args(root, tmp_path / "two", nets_dir, *lidar, "--shard", f"{i}/2")) == 0
    assert main(_args(root, tmp_path / "two", nets_dir, *lidar, "--merge-only")) == 0
    one = _files(tmp_path / "one")
    assert len([f for f in one if f.endswith(".pcd.bin")]) == 2 * 2 and one == _files(tmp_path / "two")


def test_part_store_resume_mismatch_and_overwrite(tmp_path):
    out = tmp_path / "out"
    made = []

    def make(n, tmp):
        made.append(n)
        (tmp / "a" / f"{n}.txt").parent.mkdir()
        (tmp / "a" / f"{n}.txt").write_text(n)
        return {"n": n}

    def merge(store, names):
        out.mkdir()
        for n in names:
            (out / n).write_text(json.dumps([store.files(n), store.marker(n)["rows"]]))

    # a killed writer's leftover temporary folder is discarded; a scene made, one skipped on the rerun
    (parts_dir(out) / ".b.tmp-dead").mkdir(parents=True)
    run_parts(out, ["a", "b"], {"seed": 1}, make, merge, split=Split(1, 2, merge=False))
    assert made == ["b"] and sorted(p.name for p in parts_dir(out).iterdir()) == ["b"]
    run_parts(out, ["a", "b"], {"seed": 1}, make, merge)
    assert made == ["b", "a"] and json.loads((out / "b").read_text()) == [["a/b.txt"], {"n": "b"}] and not parts_dir(out).exists()
    store = PartStore(out, {"seed": 1, "mode": "x"})
    store.write("c", lambda tmp: {})
    with pytest.raises(DataError, match=r"other arguments \(mode: 'x' != 'y'; seed: 1 != 2\)"):
        PartStore(out, {"seed": 2, "mode": "y"}).complete("c")
    again = PartStore(out, {"seed": 2, "mode": "y"}, overwrite=True)
    assert not again.complete("c")
    again.write("c", lambda tmp: {})
    assert again.complete("c") and store.marker("c")["fingerprint"]["seed"] == 2
    with pytest.raises(RuntimeError):  # a failing part leaves nothing but the other complete parts
        again.write("d", lambda tmp: (_ for _ in ()).throw(RuntimeError("boom")))
    assert sorted(p.name for p in parts_dir(out).iterdir()) == ["c"]
    with pytest.raises(DataError, match="cannot name a part folder"):
        store.part("../x")


def test_sharding_rules():
    names = ["c", "a", "d", "b", "e"]
    assert [shard_scenes(names, i, 2) for i in range(2)] == [["a", "c", "e"], ["b", "d"]]
    assert sorted(sum((shard_scenes(names, i, 3) for i in range(3)), [])) == sorted(names)
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
    assert torchrun_rank({}) is None and torchrun_rank({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4, 1)
    with pytest.raises(ConfigError, match="torchrun environment"):
        torchrun_rank({"RANK": "4", "WORLD_SIZE": "4"})
    assert fingerprint_diff({"a": 1, "n": {"x": 1}}, {"a": 1, "n": {"x": 2}, "b": 0}) == ["b: '<absent>' != 0", "n.x: 1 != 2"]


def test_work_split_of_the_options(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser.add_subparsers())
    args = lambda *extra: parser.parse_args(["generate", "--from", "r", "--out", "o", *extra])  # noqa: E731
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert work_split(args(), {}, init=False) == (Split(log=True), None)
    assert work_split(args("--shard", "1/3"), {}, init=False)[0] == Split(1, 3, merge=False, log=True)
    assert work_split(args("--merge-only"), {}, init=False)[0] == Split(generate=False, log=True)
    split, local = work_split(args(), torchrun, init=False)
    assert (split.index, split.count, split.merge, local) == (1, 2, False, 1)
    assert work_split(args(), {**torchrun, "RANK": "0", "LOCAL_RANK": "0"}, init=False)[0].merge
    for extra, env, match in ((("--shard", "0/2"), torchrun, "under torchrun"), (("--merge-only", "--shard", "0/2"), {}, "alone"),
                              (("--merge-only",), torchrun, "alone")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            work_split(args(*extra), env, init=False)


def test_source_identity_is_the_tables(root, tmp_path):
    import shutil

    copy = shutil.copytree(root, tmp_path / "copy")
    assert source_identity(copy) == source_identity(root)
    (copy / "v1.0-mini" / "scene.json").write_text((copy / "v1.0-mini" / "scene.json").read_text().replace("hand-made", "other"))
    assert source_identity(copy) != source_identity(root)
