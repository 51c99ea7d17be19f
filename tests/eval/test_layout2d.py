"""Layout faithfulness 2D: IoU arithmetic with known answers, the control pairing, training on a tiny
SynthTown world (loss falls), the metric on a root against itself (real > control), a generated
root (identical / flipped images), the CLI outputs and the bad-input errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genesis_drive.config import apply_overrides
from genesis_drive.errors import DataError
from genesis_drive.eval.layout2d import (
    control_partner,
    evaluate_layout2d,
    load_layout2d_model,
    register_layout2d,
    score_confusions,
)
from genesis_drive.models.evaluators.layout2d import LAYOUT2D_CLASSES, SCORED_CLASSES
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.layout2d import (
    LAYOUT2D_TASK,
    KeyframeCamera,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
    read_class_map,
)
from genesis_drive.world.config import FaultConfig

from ..world.conftest import small_config

K = len(LAYOUT2D_CLASSES)
C = {n: i for i, n in enumerate(LAYOUT2D_CLASSES)}


# ----------------------------------------------------------------------------- arithmetic


def test_iou_on_hand_made_maps():
    truth = np.array([[0, 0, 0, 3],
                      [0, 0, 3, 3],
                      [6, 6, 6, 6]])  # fmt: skip
    pred = np.array([[0, 0, 3, 3],
                     [0, 6, 3, 3],
                     [6, 6, 6, 0]])  # fmt: skip
    conf = confusion_matrix(pred, truth)
    assert conf.sum() == 12 and conf[C["road"], C["vehicle"]] == 1 and conf[C["other"], C["road"]] == 1
    iou = iou_from_confusion(conf)
    # road: inter 3 (of truth 5, pred 4) -> union 6; vehicle: inter 3, truth 3, pred 4 -> 3/4; other: inter 3, truth 4, pred 4 -> 3/5
    assert iou[C["road"]] == pytest.approx(3 / 6) and iou[C["vehicle"]] == pytest.approx(3 / 4) and iou[C["other"]] == pytest.approx(3 / 5)
    assert np.isnan(iou[C["cyclist"]]) and np.isnan(iou[C["sidewalk"]])
    # mIoU over the scored classes that occur; 'other' never counts
    assert mean_iou(conf) == pytest.approx((0.5 + 0.75) / 2)
    # pooling: summed intersections / summed unions, not the mean of per-image IoUs
    conf2 = confusion_matrix(np.zeros((1, 4), int), np.array([[0, 0, 0, 1]]))  # road 3/4; lane marking 0/1
    pooled = iou_from_confusion(conf + conf2)
    assert pooled[C["road"]] == pytest.approx((3 + 3) / (6 + 4)) and pooled[C["lane_marking"]] == 0.0
    with pytest.raises(ValueError, match="class indices"):
        confusion_matrix(np.array([7]), np.array([0]))


def test_scores_and_scene_bootstrap():
    # scene a: perfect road; scene b: road predicted as sidewalk half of the time
    perfect = confusion_matrix(np.zeros(4, int), np.zeros(4, int))
    half = confusion_matrix(np.array([0, 0, 2, 2]), np.zeros(4, int))
    s = score_confusions(np.stack([perfect, perfect, half]), ["a", "a", "b"], num_resamples=50, seed=1)
    assert s.iou["road"] == pytest.approx(10 / 12) and s.iou["sidewalk"] == 0.0 and s.images == 3 and s.scenes == 2
    assert s.miou == pytest.approx((10 / 12 + 0) / 2)
    assert s.miou_ci.low <= s.miou <= s.miou_ci.high and s.miou_ci.num_resamples == 50
    # whole scenes are drawn: an all-'a' draw has no sidewalk union (mIoU 1), an all-'b' one 0.25
    assert s.miou_ci.high == pytest.approx(1.0) and s.miou_ci.low == pytest.approx(0.25)
    off = score_confusions(np.stack([perfect, half]), ["a", "b"], num_resamples=0)
    assert off.miou_ci is None and set(off.iou) == set(SCORED_CLASSES)


def test_control_partner_is_half_the_scene_away():
    def cams(scene, n, channels=("CAM_FRONT", "CAM_BACK")):
        return [KeyframeCamera(scene, f"{scene}{k}", ch, "", 0, Path(), Path(), k, n, (1, 1)) for k in range(n) for ch in channels]

    lst = cams("s3", 3) + cams("s4", 4) + cams("s1", 1)
    p = control_partner(lst)
    for i, c in enumerate(lst):
        if c.num_keyframes == 1:
            assert p[i] == -1
        else:
            o = lst[p[i]]
            assert (o.scene, o.channel) == (c.scene, c.channel) and o.keyframe == (c.keyframe + c.num_keyframes // 2) % c.num_keyframes
    assert sorted(p[:6]) == list(range(6))  # a permutation within a scene


# ----------------------------------------------------------------------------- a tiny world


def _world(seconds: float):
    cfg = small_config(seed=2)
    return dataclasses.replace(cfg, scene_seconds=seconds, faults=FaultConfig(()),
                               camera=dataclasses.replace(cfg.camera, image_size=(256, 144)))  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """1 scene x 1.5 s (3 keyframes x 6 cameras), 256x144, no faults."""
    from genesis_drive.world.generate import generate

    root = tmp_path_factory.mktemp("l2d") / "world"
    generate(_world(1.5), root, progress=False)
    return root


@pytest.fixture(scope="module")
def short_world(tmp_path_factory) -> Path:
    """The same scene cut after 2 keyframes (same names and timestamps, so a subset of the tokens)."""
    from genesis_drive.world.generate import generate

    root = tmp_path_factory.mktemp("l2d") / "short"
    generate(_world(1.0), root, progress=False)
    return root


FAST = ["model.image_size=64,36", "model.widths=16,32,64", "model.output_stride=1", "model.full_res_width=8", "data.val_fraction=0",
        "data.augment.enabled=false", "train.steps=120", "train.batch_size=6", "train.lr=3e-3", "train.warmup_steps=0",
        "train.schedule=constant", "train.precision=fp32", "train.ema_decay=none", "train.log_every=10",
        "train.ckpt_every=1000", "train.preview_every=0", "train.preview_samples=2", "train.eval_every=0"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory) -> Path:
    """An evaluator overfit on the world for a few seconds (one torch thread: module fixtures run
    before the function-scoped thread fixture of conftest.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        cfg = apply_overrides(LAYOUT2D_TASK.presets["tiny"](), FAST)
        run = tmp_path_factory.mktemp("l2d") / "run"
        train(LAYOUT2D_TASK.build(cfg, world), cfg, run, task_name="layout2d")
    finally:
        torch.set_num_threads(threads)
    return run


def test_world_truth_has_the_layout_classes(world):
    maps = [read_class_map(p) for p in sorted((world / "synthtown" / "buffers").rglob("*.npz"))]
    assert len(maps) == 18
    counts = np.bincount(np.concatenate([m.ravel() for m in maps]), minlength=K)
    for name in ("road", "lane_marking", "sidewalk", "vehicle", "other"):
        assert counts[C[name]] > 0, name


def test_training_loss_falls_and_previews(trained):
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.6 * losses[0]
    previews = list((trained / "previews").glob("*segmentation*.png"))
    assert previews
    img = np.asarray(Image.open(previews[0]))
    assert img.shape[0] == 2 * (36 + 4) and img.shape[1] == 3 * (64 + 4)  # 2 samples x (image | prediction | truth)


def test_root_against_itself_real_beats_control(world, trained):
    model, cfg, info = load_layout2d_model(trained)
    res = evaluate_layout2d(model, world, world, num_resamples=20, num_pictures=3)
    assert res.generated is None and res.gap is None and len(res.pairs) == 18
    assert res.real.images == 18 and res.control.images == 18
    assert res.real.miou > 0.45
    assert res.control.miou < res.real.miou - 0.05
    assert len(res.samples) == 3 and res.samples[0][1].shape == (36, 64)
    again = evaluate_layout2d(model, world, world, num_resamples=20, num_pictures=0)
    assert again.real.miou == res.real.miou and again.control.miou == res.control.miou  # deterministic


def _copy_root(src: Path, dst: Path, *, buffers: bool = True) -> Path:
    shutil.copytree(src, dst, ignore=None if buffers else shutil.ignore_patterns("buffers"))
    return dst


def _keyframe_images(root: Path) -> list[Path]:
    return sorted((root / "samples").glob("CAM_*/*.jpg"))


def test_generated_root_identical_and_flipped(world, trained, tmp_path):
    model, _, _ = load_layout2d_model(trained)
    same = _copy_root(world, tmp_path / "same", buffers=False)
    res = evaluate_layout2d(model, same, world, num_resamples=20)
    assert res.generated.miou == res.real.miou and res.gap[0] == 0.0
    flipped = _copy_root(world, tmp_path / "flipped", buffers=False)
    for p in _keyframe_images(flipped):
        Image.fromarray(np.asarray(Image.open(p))[:, ::-1]).save(p, quality=95)
    res = evaluate_layout2d(model, flipped, world, num_resamples=20)
    assert res.generated.miou < res.real.miou - 0.05 and res.gap[0] < 0


def test_cli_writes_json_md_png(world, trained, tmp_path):
    parser = argparse.ArgumentParser()
    register_layout2d(parser.add_subparsers())
    out = tmp_path / "report"
    args = parser.parse_args(["layout2d", "--gen", str(world), "--ref", str(world), "--model", str(trained), "--out", str(out),
                              "--bootstrap", "10", "--samples", "2"])  # fmt: skip
    assert args.func(args) == 0
    rep = json.loads((out / "layout2d.json").read_text())
    for k in ["miou", "miou_ci"] + [f"iou_{c}" for c in SCORED_CLASSES] + [f"iou_{c}_ci" for c in SCORED_CLASSES]:
        assert k in rep, k
    assert "iou_other" not in rep
    assert rep["miou"] == rep["real"]["miou"] and rep["generated"] is None and rep["control"]["miou"] < rep["real"]["miou"]
    assert rep["miou_ci"]["low"] <= rep["miou"] <= rep["miou_ci"]["high"]
    ev = rep["evaluator"]
    assert len(ev["sha256"]) == 64 and ev["step"] == 120 and ev["protocol_version"]
    md = (out / "layout2d.md").read_text()
    assert "real (ceiling)" in md and "control (layout ignored)" in md and "| vehicle |" in md
    png = np.asarray(Image.open(out / "layout2d_samples.png"))
    assert png.ndim == 3 and png.shape[0] == 2 * (36 + 4) + 18


def test_bad_inputs_are_data_errors(world, short_world, trained, tmp_path):
    model, _, _ = load_layout2d_model(trained)
    with pytest.raises(DataError, match="lacks sample"):
        evaluate_layout2d(model, short_world, world, num_resamples=0)
    with pytest.raises(DataError, match="not a sample of the reference"):
        evaluate_layout2d(model, world, short_world, num_resamples=0)
    with pytest.raises(DataError, match="does not have"):
        evaluate_layout2d(model, world, world, scenes=["scene-9-0000"], num_resamples=0)
    holed = _copy_root(world, tmp_path / "holed")
    next(iter(sorted((holed / "synthtown" / "buffers").rglob("*.npz")))).unlink()
    with pytest.raises(DataError, match="buffer not found"):
        evaluate_layout2d(model, world, holed, num_resamples=0)
    squashed = _copy_root(world, tmp_path / "squashed", buffers=False)
    p = _keyframe_images(squashed)[0]
    Image.open(p).resize((192, 144)).save(p)
    with pytest.raises(DataError, match="aspect ratio"):
        evaluate_layout2d(model, squashed, world, num_resamples=0)
    bare = _copy_root(world, tmp_path / "bare", buffers=False)
    with pytest.raises(DataError, match="no keyframe camera buffers"):
        LAYOUT2D_TASK.build(LAYOUT2D_TASK.presets["tiny"](), bare)


def test_half_resolution_evaluator_scores_at_its_output_size(world):
    from genesis_drive.models.evaluators.layout2d import Layout2DNet, Layout2DNetConfig

    torch.manual_seed(0)
    model = Layout2DNet(Layout2DNetConfig(image_size=(64, 36), widths=(8, 16), output_stride=2)).eval()
    res = evaluate_layout2d(model, world, world, num_resamples=0, num_pictures=1)
    image, pred, truth = res.samples[0]
    assert image.shape == (3, 36, 64) and pred.shape == truth.shape == (18, 32)
    assert res.real.confusion.sum() == 18 * 18 * 32  # every label cell of every image is counted once


def test_cli_uses_the_packaged_weights_by_default(world, tmp_path):
    from genesis_drive.eval.shipped import ASSETS_DIR, manifest_entry
    from genesis_drive.train.checkpoint import file_sha256

    entry = manifest_entry("layout2d")  # the weights that ship with the package
    parser = argparse.ArgumentParser()
    register_layout2d(parser.add_subparsers())
    out = tmp_path / "report"
    args = parser.parse_args(["layout2d", "--gen", str(world), "--ref", str(world), "--out", str(out), "--bootstrap", "0",
                              "--samples", "1"])  # fmt: skip
    assert args.func(args) == 0
    rep = json.loads((out / "layout2d.json").read_text())
    ev = rep["evaluator"]
    assert ev["source"] == "shipped" and ev["version"] == entry["version"] == "layout2d-tiny-v1"
    assert ev["sha256"]["model.safetensors"] == file_sha256(ASSETS_DIR / "layout2d" / "model.safetensors")
    # the shipped evaluator reads this unseen tiny world: the real images beat the layout-ignored control
    assert rep["real"]["miou"] > rep["control"]["miou"] + 0.1, (rep["real"]["miou"], rep["control"]["miou"])
