"""BEV layout metric: IoU / AP arithmetic by hand, vehicle blobs, loading a run, the CLI on a root against itself."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.eval import learned_cli
from genesis_drive.eval.layout_bev import (
    average_precision,
    detection_map,
    iou_counts,
    iou_from_counts,
    keyframe_samples,
    load_bev_model,
    miou,
    vehicle_blobs,
)
from genesis_drive.layout.bev import BevGrid
from genesis_drive.models.evaluators.bev_layout import BevLayoutNet
from genesis_drive.train.checkpoint import save_checkpoint
from genesis_drive.train.tasks.bev_layout import BEV_LAYOUT_PRESETS, BEV_LAYOUT_TASK

from ..data.handmade import write_handmade


def test_iou_arithmetic_on_hand_built_masks():
    pred = np.zeros((2, 2, 4, 4), bool)
    tgt = np.zeros((2, 2, 4, 4), bool)
    pred[0, 0, :2, :2] = True          # 4 cells
    tgt[0, 0, :2, :3] = True           # 6 cells, 4 shared -> 4 / 6
    pred[1, 0, 3, 3] = True            # 1 false positive in sample 1
    tgt[1, 1, 0, :] = True             # class 1 never predicted: 0 / 4
    inter, union = iou_counts(pred, tgt)
    assert inter.tolist() == [[4, 0], [0, 0]] and union.tolist() == [[6, 0], [1, 4]]
    np.testing.assert_allclose(iou_from_counts(inter, union), [4 / 7, 0.0])  # summed over samples
    assert miou(inter, union) == pytest.approx((4 / 7) / 2)
    only_bg = iou_from_counts(np.zeros((1, 2), int), np.array([[3, 0]]))
    assert only_bg[0] == 0.0 and np.isnan(only_bg[1])  # a class absent everywhere is NaN, not 0 or 1


def test_average_precision_by_hand():
    dets = [np.array([[0.2, 0.0, 0.9], [5.0, 5.0, 0.8], [10.0, 0.3, 0.7]]), np.zeros((0, 3))]
    truths = [np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[50.0, 50.0]])]
    # recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3 -> envelope 1, 2/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 2/3
    assert average_precision(dets, truths, 1.0) == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision(dets, truths, 0.1) == 0.0
    assert np.isnan(average_precision(dets, [np.zeros((0, 2))] * 2, 1.0))
    # a duplicate detection of a matched truth is a false positive
    dup = [np.array([[0.0, 0.0, 0.9], [0.1, 0.0, 0.8]])]
    assert average_precision(dup, [np.array([[0.0, 0.0]])], 1.0) == pytest.approx(1.0)
    assert average_precision(dup[::-1], [np.array([[0.0, 0.0]])], 1.0) == pytest.approx(1.0)
    res = detection_map(dets, truths, thresholds=(0.1, 1.0))
    assert res["mAP"] == pytest.approx((0 + 1 / 3 + 2 / 9) / 2)


def test_vehicle_blobs_centroid_and_score():
    grid = BevGrid((-4.0, 4.0), (-4.0, 4.0), 1.0)
    prob = np.zeros((8, 8))
    prob[1:3, 5:7] = [[0.9, 0.7], [0.7, 0.9]]   # rows 1-2 -> x 2.5, 1.5; cols 5-6 -> y -1.5, -2.5
    prob[6, 0] = 0.6
    prob[6, 1] = 0.4                             # below threshold: not part of the blob
    det = vehicle_blobs(prob, grid, threshold=0.5)
    order = np.argsort(-det[:, 2])
    np.testing.assert_allclose(det[order[0]], [2.0, -2.0, 0.8])
    np.testing.assert_allclose(det[order[1]], [-2.5, 3.5, 0.6])
    assert len(vehicle_blobs(prob, grid, threshold=0.5, min_cells=2)) == 1


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


def test_evaluation_reads_keyframes_whatever_the_training_rate(root):
    cfg = BEV_LAYOUT_PRESETS["tiny"]()
    cfg = replace(cfg, clips=replace(cfg.clips, rate="camera"))
    assert len(BEV_LAYOUT_TASK.build(cfg, root).clip_index()) > 4  # 12 Hz frames for training
    index, make = keyframe_samples(cfg, root)
    assert len(index) == 4 and all(index.load(i).is_key_frame[0] for i in range(len(index)))
    sample = make(index.load(0))
    w, h = cfg.model.image_size
    assert sample["images"].shape == (6, 3, h, w) and sample["target"].shape == (5, *cfg.model.grid.shape)


def test_layout_cli_gen_equals_ref(root, tmp_path):
    torch.manual_seed(0)
    cfg = BEV_LAYOUT_PRESETS["tiny"]()
    model = BevLayoutNet(cfg.model)
    run = tmp_path / "run"
    save_checkpoint(run, 5, model=model.state_dict(), optimizer={}, ema=None, state={"task": "bev_layout", "config": config_to_dict(cfg)}, keep_last=1)
    _loaded, cfg2, info = load_bev_model(run)
    assert cfg2 == cfg and info["step"] == 5
    parser = argparse.ArgumentParser()
    learned_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["layout", "--gen", str(root), "--ref", str(root), "--model", str(run), "--out", str(out), "--bootstrap", "10"])
    assert args.func(args) == 0
    rows = {r["metric"]: r for r in json.loads((out / "layout.json").read_text())["rows"]}
    assert rows["mIoU (gen)"]["value"] == rows["mIoU (ref)"]["value"]
    assert rows["mIoU gen - ref (paired)"]["value"] == 0.0 and rows["mIoU gen - ref (paired)"]["counts"]["pairs"] == 4
    assert rows["mIoU (gen)"]["counts"] == {"frames": 4, "scenes": 1}
    assert "BEV vehicle mAP (gen)" in rows and (out / "layout.md").is_file()
