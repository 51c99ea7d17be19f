"""The demo end to end on the smallest world: every step's output exists and the page links it."""

from __future__ import annotations

import json

import pytest

from genesis_drive.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--scenes", "1", "--train-steps", "4"]) == 0
    for rel in ("synthtown/v1.0-trainval/scene.json", "show/views_boxes.mp4", "show/bev.png", "show/lidar_on_images.png",
                "show/layout.mp4", "curation/manifest.parquet", "runs/frame_ae/metrics.jsonl", "index.html"):
        assert (out / rel).is_file(), rel
    page = (out / "index.html").read_text()
    assert "views_boxes.mp4" in page and "DataCrafter" in page and "injected faults" in page
    assert json.loads((out / "demo_settings.json").read_text())["scenes"] == 1
    # same settings: resumes without redoing steps; other settings: refused with a clear message
    assert main(["demo", "--out", str(out), "--scenes", "1", "--train-steps", "4"]) == 0
    assert main(["demo", "--out", str(out), "--scenes", "2", "--train-steps", "4"]) == 1
