"""FD_synth metric: saved extractors match the network, a trained run gives a working FD, the CLI."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.errors import DataError
from genesis_drive.eval import learned_cli
from genesis_drive.eval.fd_metric import FrechetDistance
from genesis_drive.eval.synth_features import load_synth_extractor
from genesis_drive.models.evaluators.synth_features import SynthFeatureNet
from genesis_drive.train.checkpoint import save_checkpoint
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.synth_features import SYNTH_FEATURE_PRESETS, SYNTH_FEATURES_TASK

from ..data.handmade import write_handmade


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


def test_saved_extractor_matches_the_network(tmp_path):
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    net = SynthFeatureNet(cfg.model).eval()
    save_checkpoint(tmp_path / "run", 7, model=net.state_dict(), optimizer={}, ema=None,
                    state={"task": "synth_features", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    ext = load_synth_extractor(tmp_path / "run", "image")
    vid = load_synth_extractor(tmp_path / "run", "video")
    assert ext.num_features == 64 and vid.num_features == 64 and (vid.num_frames, vid.frame_stride) == (4, 2)
    assert ext.protocol()["weights_sha256"] == vid.protocol()["weights_sha256"] and ext.protocol()["step"] == 7
    imgs = torch.randint(0, 256, (3, 3, 36, 64), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(ext(imgs), net.embed_frames(imgs.float() / 127.5 - 1))
        torch.testing.assert_close(vid(imgs[None]), net.embed_clips(imgs[None].float() / 127.5 - 1))
        assert ext(torch.rand(2, 3, 90, 160)).shape == (2, 64)  # any input size is resized to the network's
    with pytest.raises(DataError, match="no checkpoint"):
        load_synth_extractor(tmp_path)
    other = replace(cfg, model=replace(cfg.model, num_features=32))
    save_checkpoint(tmp_path / "bad", 1, model=net.state_dict(), optimizer={}, ema=None,
                    state={"task": "synth_features", "config": config_to_dict(other)}, keep_last=1)  # fmt: skip
    with pytest.raises(DataError, match="weights do not match"):
        load_synth_extractor(tmp_path / "bad")


def test_trained_run_gives_a_working_fd_synth(root, tmp_path):
    """Two optimizer steps through the real training loop, then FD_synth from the run directory."""
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    cfg = replace(cfg, train=replace(cfg.train, steps=2, batch_size=2, ckpt_every=2, log_every=1, device="cpu", precision="fp32"))
    task = SYNTH_FEATURES_TASK.build(cfg, root)
    result = train(task, cfg, tmp_path / "run", task_name="synth_features")
    assert result.step == 2
    ext = load_synth_extractor(tmp_path / "run", "image")
    clip_imgs = torch.from_numpy(task.clip_index().load(0).images)  # t v h w c
    frames = clip_imgs.reshape(-1, *clip_imgs.shape[2:]).permute(0, 3, 1, 2)  # 24 real frames
    same = FrechetDistance(ext, name="FD_synth")
    same.update(frames[::2])
    same.update(frames[1::2], real=True)
    other = FrechetDistance(ext, name="FD_synth")
    other.update(255 - frames[::2])  # colour-inverted frames
    other.update(frames[1::2], real=True)
    assert 0 <= float(same.compute()) < float(other.compute())


def test_fd_synth_cli_same_clips_score_zero(root, tmp_path):
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    net = SynthFeatureNet(cfg.model)
    save_checkpoint(tmp_path / "run", 1, model=net.state_dict(), optimizer={}, ema=None,
                    state={"task": "synth_features", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    parser = argparse.ArgumentParser()
    learned_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["fd-synth", "--gen", str(root), "--ref", str(root), "--model", str(tmp_path / "run"),
                              "--out", str(out), "--bootstrap", "5"])  # fmt: skip
    assert args.func(args) == 0
    report = json.loads((out / "fd_synth.json").read_text())
    rows = {r["metric"]: r for r in report["rows"]}
    assert set(rows) == {"FD_synth", "FD_synth-video"}
    assert rows["FD_synth"]["counts"]["gen frames"] == 2 * 6 * 4  # 2 clips (8-frame windows of 19) x 6 views x 4 frames
    assert rows["FD_synth-video"]["counts"]["gen videos"] == 2 * 6
    for r in rows.values():
        assert abs(r["value"]) < 1e-6  # the same clips on both sides
    ident = report["meta"]["feature_networks"]["FD_synth"]
    assert ident["network"] == "synth_features/frame" and len(ident["weights_sha256"]) == 64
