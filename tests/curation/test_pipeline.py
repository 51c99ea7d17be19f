"""End-to-end curation of a small root: manifest rows and bad inputs, resumption after a kill,
local pool vs Ray, caption embeddings, the lead's ClipIndex reading the manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from genesis_drive.curation.manifest import (
    load_clip_embeddings,
    manifest_metadata,
    read_manifest,
)
from genesis_drive.curation.pipeline import RunOptions, curate, parts_dir_for
from genesis_drive.curation.worker import CurationConfig
from genesis_drive.data.clips import ClipIndex, ClipSpec
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.errors import ConfigError, DataError

from .dataset import write_test_root

SPEC = ClipSpec(num_frames=4, window_stride=4, lidar="none")
CFG = CurationConfig(clip_spec=SPEC, batch_size=1, embed=False)
INLINE = RunOptions(workers=1, report=False, progress=False)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_test_root(tmp_path_factory.mktemp("curation") / "root")


@pytest.fixture(scope="module")
def reference(root, tmp_path_factory) -> list[dict]:
    """The manifest of one uninterrupted in-process run (with its report)."""
    out = tmp_path_factory.mktemp("ref") / "manifest.parquet"
    res = curate(root, out, CFG, replace(INLINE, report=True))
    assert res.report is not None and res.report.is_file()
    assert (res.report.parent / "histograms.png").stat().st_size > 1000
    assert list((res.report.parent / "examples").glob("kept-*.jpg")) and list((res.report.parent / "examples").glob("rejected-*.jpg"))
    assert not parts_dir_for(out).exists()
    return read_manifest(out)


def test_rows_scores_and_bad_inputs(reference):
    by_id = {r["clip_id"]: r for r in reference}
    assert [r["clip_id"] for r in reference] == [
        "scene-good:0000", "scene-good:0004", "scene-good:0008",
        "scene-blur:0000", "scene-blur:0004", "scene-blur:0008",
        "scene-noback:0000", "scene-noback:0004",
        "scene-broken:0000", "scene-broken:0004",
        "scene-short:none",
    ]  # fmt: skip
    assert [r["clip_index"] for r in reference] == list(range(11))
    for i in ("0000", "0004", "0008"):
        r = by_id[f"scene-good:{i}"]
        assert r["status"] == "ok" and r["kept"] and r["total"] >= 0.75 and r["rejection_reasons"] == []
        assert r["caption"]["cameras"]["CAM_FRONT"]["instances"][0]["class"] == "car"
        assert "[CAM_FRONT] A grey car 12 m in front, centre of the frame, moving in the same direction at 6.0 m/s." in r["caption_text"]
        assert len(r["frame_tokens"]) == 4
    assert by_id["scene-blur:0000"]["kept"]  # the blur starts at frame 6
    for i in ("0004", "0008"):
        r = by_id[f"scene-blur:{i}"]
        assert not r["kept"] and "blur" in r["rejection_reasons"] and r["caption_json"] is None
        assert r["score_blur"] < 0.5 < by_id["scene-blur:0000"]["score_blur"]
    for i in ("0000", "0004"):
        r = by_id[f"scene-noback:{i}"]
        assert not r["kept"] and "missing" in r["rejection_reasons"] and r["views"] == [c for c in CAMERA_CHANNELS if c != "CAM_BACK"]
    broken = by_id["scene-broken:0000"]
    assert broken["status"] == "error" and broken["rejection_reasons"] == ["load_error"] and "unreadable image" in broken["error"]
    assert broken["total"] is None and not broken["kept"]
    assert by_id["scene-broken:0004"]["kept"]  # the run went on
    short = by_id["scene-short:none"]
    assert short["status"] == "empty" and short["rejection_reasons"] == ["empty_scene"] and "3 CAM_FRONT frames" in short["error"]


def test_lead_clip_index_reads_the_manifest(root, reference, tmp_path):
    out = tmp_path / "m.parquet"
    curate(root, out, CFG, INLINE)
    views = tuple(c for c in CAMERA_CHANNELS if c != "CAM_BACK")  # every scene has these
    index = ClipIndex(NuScenesReader(root), replace(SPEC, views=views), manifest=out)
    kept = [r["clip_id"] for r in reference if r["kept"]]
    assert [r.clip_id for r in index.refs] == kept
    clip = index.load(0)
    assert clip.caption == reference[0]["caption"]
    meta = manifest_metadata(out)
    assert meta["kept"] == len(kept) and meta["config"]["clip_spec"]["num_frames"] == 4


def test_existing_manifest_and_changed_config(root, tmp_path):
    out = tmp_path / "m.parquet"
    curate(root, out, CFG, replace(INLINE, limit=2))
    with pytest.raises(DataError, match="already exists"):
        curate(root, out, CFG, replace(INLINE, limit=2))
    parts_dir_for(out).mkdir()
    (parts_dir_for(out) / "run.json").write_text('{"schema": "x"}')
    with pytest.raises(ConfigError, match="different inputs"):
        curate(root, out, CFG, replace(INLINE, limit=2))
    res = curate(root, out, CFG, replace(INLINE, limit=2, overwrite=True))
    assert res.clips == 2


_CLI = (
    "import argparse, sys\n"
    "from genesis_drive.curation.cli import register\n"
    "p = argparse.ArgumentParser(); register(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)


def test_killed_run_resumes_without_losing_or_duplicating_rows(root, reference, tmp_path):
    out = tmp_path / "m.parquet"
    args = [sys.executable, "-c", _CLI, "curate", str(root), "--out", str(out), "--num-frames", "4", "--window-stride", "4",
            "--batch-size", "1", "--workers", "1", "--no-embed", "--no-report"]
    proc = subprocess.Popen(args, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = parts_dir_for(out)
    deadline = time.time() + 120
    try:
        while len(list(parts.glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    done_before = len(list(parts.glob("part-*.parquet")))
    assert 3 <= done_before < 11
    res = curate(root, out, CFG, INLINE)
    assert res.resumed_parts == done_before and res.clips == 11
    assert read_manifest(out) == reference


def test_local_pool_and_ray_give_the_same_manifest(root, reference, tmp_path):
    cfg = replace(CFG, batch_size=2)
    run = replace(INLINE, workers=2, limit=5)
    local = read_manifest(curate(root, tmp_path / "local.parquet", cfg, run).manifest)
    ray_rows = read_manifest(curate(root, tmp_path / "ray.parquet", cfg, replace(run, ray=True)).manifest)
    assert local == ray_rows == reference[:5]


def test_caption_embeddings_beside_the_manifest(root, tmp_path):
    out = tmp_path / "m.parquet"
    res = curate(root, out, replace(CFG, embed=True), replace(INLINE, limit=2))
    assert res.embedding_store is not None and res.embedding_store.parent == out.parent
    rows = read_manifest(out)
    for r in rows:
        assert r["embedding_store"] == res.embedding_store.name
        assert r["embedding_segments"] == ["global", *CAMERA_CHANNELS]
        e = load_clip_embeddings(out, r)
        assert e.shape == (7, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # the front-camera sentences of the two clips are the same text: one cached vector
    assert rows[0]["embedding_keys"][1] == rows[1]["embedding_keys"][1]
    e0, e1 = load_clip_embeddings(out, rows[0]), load_clip_embeddings(out, rows[1])
    assert np.array_equal(e0[1], e1[1])
