"""The demo end to end on the smallest world, with tiny random networks in place of the shipped ones:
every step's output exists, the page embeds what it says, reruns resume, other settings are refused."""

from __future__ import annotations

import json

import pytest

from genesis_drive.cli import main

from .generate.tiny_checkpoints import save_all


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    ckpts = save_all(tmp_path / "ckpt", image_size=(128, 72))  # SynthTown's 16:9, as the shipped camera DiT
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--scenes", "1", "--seconds", "2", "--modes", "free", "first-frame", "--steps", "1",
            "--checkpoints", str(ckpts)]  # fmt: skip
    assert main(args) == 0
    for rel in ("synthtown/v1.0-trainval/scene.json", "generated/free/generated/lidar.json", "generated/first-frame/generated/lidar.json",
                "eval/free/layout2d.json", "eval/first-frame/layout2d.json", "index.html", "demo_timings.json"):  # fmt: skip
        assert (out / rel).is_file(), rel
    page = (out / "index.html").read_text()
    assert "layout2d mIoU, free" in page and "LiDAR Chamfer, first-frame" in page and "copy reference (control)" in page
    assert page.count("data:video/mp4;base64,") >= 4  # real + generated video per mode
    assert "src='http" not in page and 'src="http' not in page  # self-contained
    lay = json.loads((out / "eval" / "free" / "layout2d.json").read_text())
    assert 0.0 <= lay["miou"] <= 1.0 and lay["real"]["miou"] > lay["control"]["miou"]  # the evaluator's own controls
    # same settings: resumes without redoing steps; other settings: refused with a clear message
    assert main(args) == 0
    assert main([*args[:-2], "--checkpoints", str(ckpts), "--steps", "2"]) == 1
