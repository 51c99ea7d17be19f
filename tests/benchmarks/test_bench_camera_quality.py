"""The camera-quality benchmark's baselines (benchmarks/bench_camera_quality.py): the "repeat the
given frame" root holds each scene's first frame in every camera file and leaves its source alone;
PSNR is exact on known images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_camera_quality as bench  # noqa: E402

from genesis_drive.data.nuscenes import NuScenesReader  # noqa: E402
from genesis_drive.data.schema import CAMERA_CHANNELS  # noqa: E402

from ..data.handmade import write_handmade  # noqa: E402


def test_repeat_first_root_holds_the_first_frame_everywhere(tmp_path):
    src = write_handmade(tmp_path / "src")
    reader = NuScenesReader(src)
    scenes = [reader.scene_name(t) for t in reader.scene_tokens()]
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = bench.repeat_first_root(src, tmp_path / "repeat", scenes)
    rep = NuScenesReader(out)
    for scene in scenes:
        for ch in CAMERA_CHANNELS:
            src_paths, paths = bench.camera_frames(reader, scene, ch), bench.camera_frames(rep, scene, ch)
            assert len(paths) == len(src_paths) > 1
            assert len({p.read_bytes() for p in src_paths}) > 1  # the source's frames differ ...
            assert {p.read_bytes() for p in paths} == {src_paths[0].read_bytes()}  # ... the copy's are all frame 0
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # source untouched
    assert (out / "v1.0-mini").is_dir()  # the tables travel with it


def test_psnr_of_known_images():
    a = np.zeros((4, 4, 3), np.uint8)
    assert bench.psnr(a, a) == pytest.approx(100.0)  # capped at mse 1e-10
    b = np.full_like(a, 255)
    assert bench.psnr(a, b) == pytest.approx(0.0)
    c = np.full_like(a, 51)  # mse (51/255)^2 = 0.04 -> 13.98 dB
    assert bench.psnr(a, c) == pytest.approx(10 * np.log10(1 / 0.04))


def test_first_frame_psnr_pairs_each_frame_with_the_repeated_one(tmp_path):
    src = write_handmade(tmp_path / "src")
    reader = NuScenesReader(src)
    scenes = [reader.scene_name(t) for t in reader.scene_tokens()]
    buckets = [(1, 3), (3, 10_000)]
    perfect = bench.first_frame_psnr(src, src, scenes, buckets, num_resamples=50)  # the real frames as "generated"
    for row in perfect.values():
        assert row["generated"] == pytest.approx(100.0)  # identical to the truth (PSNR capped)
        assert row["repeat_first"] < 60 and row["difference"] == pytest.approx(100.0 - row["repeat_first"])
        assert row["difference_ci"][0] > 0
    held = bench.first_frame_psnr(bench.repeat_first_root(src, tmp_path / "repeat", scenes), src, scenes, buckets, num_resamples=50)
    for k, row in held.items():  # the repeated frame scored against itself: no difference, no spread
        assert row["generated"] == pytest.approx(perfect[k]["repeat_first"])
        assert row["difference"] == 0.0 and row["difference_ci"] == [0.0, 0.0]
    assert perfect["1-2"]["frames"] == 2 * len(CAMERA_CHANNELS) * len(scenes)
