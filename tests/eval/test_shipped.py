"""Shipped evaluator weights: written from a run, verified by sha256, used by default by the eval CLI."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.errors import DataError
from genesis_drive.eval import learned_cli
from genesis_drive.eval.shipped import ASSETS_DIR, manifest_entry, resolve_evaluator, shipped_evaluator, write_shipped
from genesis_drive.eval.synth_features import load_synth_net
from genesis_drive.models.evaluators.synth_features import SynthFeatureNet
from genesis_drive.train.checkpoint import file_sha256, save_checkpoint
from genesis_drive.train.tasks.synth_features import SYNTH_FEATURE_PRESETS

from ..data.handmade import write_handmade


@pytest.fixture()
def shipped_dir(tmp_path) -> tuple[Path, SynthFeatureNet]:
    """A tmp assets dir holding one evaluator shipped from a tiny random run with distinct EMA weights."""
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    net = SynthFeatureNet(cfg.model)
    ema = SynthFeatureNet(cfg.model)
    ema_params = {k: v for k, v in ema.state_dict().items() if k in dict(ema.named_parameters())}
    save_checkpoint(tmp_path / "run", 5, model=net.state_dict(), optimizer={}, ema=ema_params,
                    state={"task": "synth_features", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    assets = tmp_path / "assets"
    entry = write_shipped(tmp_path / "run", "synth_features", version="synth_features-test-v1", command="cmd",
                          data_command="world", wall_time_s=1.5, assets_dir=assets)  # fmt: skip
    assert entry["steps"] == 5 and entry["task"] == "synth_features" and entry["version"] == "synth_features-test-v1"
    return assets, ema


def test_shipped_asset_round_trips_the_ema_weights(shipped_dir):
    assets, ema = shipped_dir
    path = shipped_evaluator("synth_features", assets_dir=assets)
    entry = manifest_entry("synth_features", assets_dir=assets)
    assert entry["files"]["model.safetensors"] == file_sha256(path / "model.safetensors")
    net, _, info = load_synth_net(path)
    assert info["step"] == 5 and info["task"] == "synth_features"
    for k, v in ema.named_parameters():
        torch.testing.assert_close(net.state_dict()[k], v.detach())  # the EMA weights, not the raw ones
    _, record = resolve_evaluator(None, "synth_features", "synth_features", assets_dir=assets)
    assert record["version"] == "synth_features-test-v1" and record["sha256"] == entry["files"]
    assert resolve_evaluator("/x/run", "synth_features", "synth_features", assets_dir=assets)[1]["source"] == "user"


def test_one_flipped_byte_gives_a_clear_error(shipped_dir, tmp_path):
    assets, _ = shipped_dir
    copy = tmp_path / "copy"
    shutil.copytree(assets, copy)
    f = copy / "synth_features" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt or altered.*reinstall genesis-drive or pass --model") as e:
        shipped_evaluator("synth_features", assets_dir=copy)
    assert e.value.path == f and str(f) in str(e.value)
    shipped_evaluator("synth_features", assets_dir=assets)  # the original is untouched


def test_state_of_another_task_gives_a_clear_error(shipped_dir):
    assets, _ = shipped_dir
    state_file = assets / "synth_features" / "state.json"
    state = json.loads(state_file.read_text())
    state["task"] = "depth"
    state_file.write_text(json.dumps(state, indent=1))
    entries = json.loads((assets / "MANIFEST.json").read_text())
    entries["evaluators"]["synth_features"]["files"]["state.json"] = file_sha256(state_file)  # consistent hashes
    (assets / "MANIFEST.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match="checkpoint of task 'depth', expected 'synth_features'"):
        shipped_evaluator("synth_features", assets_dir=assets)
    with pytest.raises(DataError, match="no shipped weights for evaluator 'layout9'"):
        shipped_evaluator("layout9", assets_dir=assets)


def test_fd_synth_uses_the_packaged_weights_by_default(tmp_path):
    entry = manifest_entry("synth_features")  # the weights that ship with the package
    root = write_handmade(tmp_path / "root")
    parser = argparse.ArgumentParser()
    learned_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["fd-synth", "--gen", str(root), "--ref", str(root), "--out", str(out), "--bootstrap", "0"])
    assert args.func(args) == 0
    report = json.loads((out / "fd_synth.json").read_text())
    ev = report["meta"]["evaluator"]
    assert ev["source"] == "shipped" and ev["version"] == entry["version"] == "synth_features-tiny-v4"
    assert ev["sha256"]["model.safetensors"] == file_sha256(ASSETS_DIR / "synth_features" / "model.safetensors")
    # a root against itself: zero up to float rounding (the reversed control of the same root reads ~4)
    assert all(abs(r["value"]) < 1e-4 for r in report["rows"] if r["metric"] in ("FD_synth", "FD_synth-video"))


class _Source:
    def __init__(self, ids):
        self.ids = ids

    def __iter__(self):
        for i, c in enumerate(self.ids):
            yield c, i

    def __len__(self):
        return len(self.ids)

    def describe(self):
        return {"kind": "fake", "clips": len(self.ids), "clip_ids": list(self.ids)}


def test_floor_halves_split_whole_scenes():
    src = _Source(["b:0", "a:0", "c:0", "a:8", "b:8"])
    a, b = learned_cli.SceneHalf(src, 0), learned_cli.SceneHalf(src, 1)
    assert (a.scenes, b.scenes) == (["a", "c"], ["b"])
    assert [c for c, _ in a] == ["a:0", "c:0", "a:8"] and [c for c, _ in b] == ["b:0", "b:8"]
    assert len(a) == 3 and a.describe()["clip_ids"] == ["a:0", "c:0", "a:8"]
    assert learned_cli.fd_floor_rows(None, None, _Source(["a:0", "a:8"]), batch_size=1, num_resamples=0, level=0.9, seed=0)[0] == []


def test_layout_partner_is_another_moment_of_the_same_scene():
    ids = ["a:0000", "a:0006", "a:0012", "b:0000", "b:0006", "c:0000"]
    assert learned_cli.layout_partner(ids) == [1, 2, 0, 4, 3, 5]


def test_layout_uses_the_packaged_weights_and_reports_the_control(tmp_path):
    entry = manifest_entry("bev_layout")
    root = write_handmade(tmp_path / "root")
    parser = argparse.ArgumentParser()
    learned_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["layout", "--gen", str(root), "--ref", str(root), "--out", str(out), "--bootstrap", "0"])
    assert args.func(args) == 0
    report = json.loads((out / "layout.json").read_text())
    assert report["meta"]["evaluator"]["version"] == entry["version"] == "bev_layout-tiny-v2"
    rows = {r["metric"]: r["value"] for r in report["rows"]}
    assert rows["mIoU (gen)"] == rows["mIoU (ref)"]  # the same root on both sides
    assert "mIoU (control: layout ignored)" in rows


def test_consistency_uses_the_packaged_weights(tmp_path):
    entry = manifest_entry("depth")
    root = write_handmade(tmp_path / "root")
    parser = argparse.ArgumentParser()
    learned_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["consistency", "--gen", str(root), "--ref", str(root), "--out", str(out), "--bootstrap", "0"])
    assert args.func(args) == 0
    report = json.loads((out / "consistency.json").read_text())
    ev = report["meta"]["evaluator"]
    assert ev["version"] == entry["version"] == "depth-tiny-v1" and ev["sha256"] == entry["files"]
    rows = {r["metric"]: r["value"] for r in report["rows"]}
    assert "AbsRel (control: other frame's LiDAR)" in rows
    assert rows["AbsRel (paired)"] == rows["AbsRel (ref: real images and LiDAR)"]  # the same root as ceiling
