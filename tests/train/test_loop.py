"""The generic loop on the frame_ae task: learning, determinism, accumulation, precision, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genesis_drive.config import load_config
from genesis_drive.errors import ConfigError
from genesis_drive.train.loop import TrainingDiverged, enable_grad_checkpointing, train
from genesis_drive.train.task import Task
from genesis_drive.train.tasks.frame_ae import FrameAE, FrameAEConfig, FrameAETask, build

from .conftest import fast_config, make_jpeg_root, max_abs_diff


def _train(root, run_dir, *overrides, task_cls=None):
    cfg = fast_config(*overrides)
    task = (task_cls or FrameAETask)(cfg, root)
    return train(task, cfg, run_dir, task_name="frame_ae")


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(result):
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}


def test_loss_falls_when_overfitting_one_batch(tmp_path):
    root = make_jpeg_root(tmp_path / "one", n_per_channel=2)  # 4 images = exactly one batch
    run = tmp_path / "run"
    _train(root, run, "train.steps=40", "train.lr=3e-3", "train.log_every=5")
    losses = [r["loss"] for r in _rows(run) if "loss" in r]
    assert len(losses) == 8
    assert losses[-1] < 0.25 * losses[0]
    assert losses[-1] < 0.05


def test_same_seed_same_weights_other_seed_other_weights(jpeg_root, tmp_path):
    a = _weights(_train(jpeg_root, tmp_path / "a", "train.steps=3"))
    b = _weights(_train(jpeg_root, tmp_path / "b", "train.steps=3"))
    c = _weights(_train(jpeg_root, tmp_path / "c", "train.steps=3", "train.seed=1"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert max_abs_diff(a, c) > 1e-3


def test_gradient_accumulation_matches_the_full_batch(jpeg_root, tmp_path):
    full = _weights(_train(jpeg_root, tmp_path / "full", "train.steps=3"))
    accum = _weights(_train(jpeg_root, tmp_path / "accum", "train.steps=3", "train.grad_accum=4"))
    # gradients (before clipping) agree step by step; Adam alone would hide a wrong loss scale
    g_full = [r["grad_norm"] for r in _rows(tmp_path / "full")]
    g_accum = [r["grad_norm"] for r in _rows(tmp_path / "accum")]
    assert g_full == pytest.approx(g_accum, rel=1e-5)
    assert max_abs_diff(full, accum) < 1e-4


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = fast_config().model
    torch.manual_seed(0)
    plain = FrameAE(cfg)
    ckpt = FrameAE(cfg)
    ckpt.load_state_dict(plain.state_dict())
    assert enable_grad_checkpointing(ckpt) == 4  # one ResBlock per level, encoder + decoder
    x = torch.randn(2, 3, 32, 64)
    for m in (plain, ckpt):
        (m(x) - x).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    with pytest.raises(ConfigError, match="grad_checkpointing"):
        enable_grad_checkpointing(nn.Linear(2, 2))


class _DtypeSpy(FrameAETask):
    seen: list[torch.dtype] = []

    def loss(self, model, batch):
        _DtypeSpy.seen.append(model(batch["image"]).dtype)
        return super().loss(model, batch)


def test_bf16_autocast_is_applied_and_stays_close_to_fp32(jpeg_root, tmp_path):
    _DtypeSpy.seen = []
    bf16 = _train(jpeg_root, tmp_path / "bf16", "train.steps=2", "train.precision=bf16", task_cls=_DtypeSpy)
    fp32 = _train(jpeg_root, tmp_path / "fp32", "train.steps=2", task_cls=_DtypeSpy)
    assert _DtypeSpy.seen == [torch.bfloat16] * 2 + [torch.float32] * 2
    assert bf16.metrics["loss"] != fp32.metrics["loss"]
    assert bf16.metrics["loss"] == pytest.approx(fp32.metrics["loss"], rel=0.05)
    # weights stay fp32 under autocast
    assert {p.dtype for p in bf16.model.parameters()} == {torch.float32}


def test_run_directory_holds_config_metrics_tensorboard_previews_and_eval(jpeg_root, tmp_path):
    run = tmp_path / "run"
    result = _train(jpeg_root, run, "train.steps=4", "train.log_every=2", "train.preview_every=2",
                    "train.preview_samples=3", "train.eval_every=4", "data.val_fraction=0.25",
                    "train.ckpt_every=2", "train.keep_last=1", "train.grad_checkpointing=true")
    assert load_config(FrameAEConfig, run / "config.yaml") == fast_config(
        "train.steps=4", "train.log_every=2", "train.preview_every=2", "train.preview_samples=3",
        "train.eval_every=4", "data.val_fraction=0.25", "train.ckpt_every=2", "train.keep_last=1",
        "train.grad_checkpointing=true")
    rows = _rows(run)
    assert [r["step"] for r in rows if "loss" in r] == [2, 4]
    assert {"loss", "l1", "lr", "grad_norm", "steps_per_s", "samples_per_s"} <= set(rows[0])
    ev = [r for r in rows if "eval/mse" in r]
    assert len(ev) == 1 and ev[0]["step"] == 4
    assert ev[0]["eval/psnr"] == pytest.approx(10 * np.log10(4 / ev[0]["eval/mse"]))
    assert result.metrics["eval/mse"] == ev[0]["eval/mse"]
    pngs = sorted((run / "previews").glob("*.png"))
    assert [p.name for p in pngs] == ["step_00000002_reconstruction.png", "step_00000004_reconstruction.png"]
    grid = np.asarray(Image.open(pngs[-1]))
    assert grid.shape == (2 * (32 + 4), 3 * (64 + 4), 3)  # inputs over reconstructions, 2 px borders
    # top-left input tile equals the first training image (as the dataset delivers it)
    first = ((result_first_image(jpeg_root) + 1) * 127.5).round().numpy().astype(np.int16).transpose(1, 2, 0)
    assert np.abs(grid[2:34, 2:66].astype(np.int16) - first).max() <= 1
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000004"]
    assert json.loads((run / "run.json").read_text())["task"] == "frame_ae"


def result_first_image(root):
    return build(fast_config("data.val_fraction=0.25"), root).train_dataset()[0]["image"]


class _Exploding(FrameAETask):
    def loss(self, model, batch):
        out = super().loss(model, batch)
        return {**out, "loss": out["loss"] * float("nan")}


class _NoLossKey(FrameAETask):
    def loss(self, model, batch):
        return {"mse": super().loss(model, batch)["loss"]}


def test_bad_task_output_and_divergence_are_reported(jpeg_root, tmp_path):
    with pytest.raises(TrainingDiverged, match="loss is nan at step 1"):
        _train(jpeg_root, tmp_path / "nan", "train.steps=3", task_cls=_Exploding)
    with pytest.raises(TypeError, match="'loss' entry"):
        _train(jpeg_root, tmp_path / "nokey", "train.steps=1", task_cls=_NoLossKey)


class _ClipLikeTask(Task):
    """Batches shaped like ``genesis_drive.data.clips.ClipDataset`` output (``b v t c h w`` uint8
    images plus captions and ids), collated by its ``collate_clips``."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.items = [
            {"images": torch.randint(0, 256, (2, 3, 3, 8, 8), generator=g, dtype=torch.uint8),
             "caption": {"global": f"clip {i}"}, "clip_id": f"scene-0001:{i:04d}"}
            for i in range(8)
        ]

    def build_model(self):
        return nn.Conv3d(3, 3, kernel_size=1)

    def train_dataset(self):
        return self.items

    def collate(self, samples):
        from genesis_drive.data.clips import collate_clips

        return collate_clips(samples)

    def loss(self, model, batch):
        assert isinstance(batch["caption"][0]["global"], str) and batch["clip_id"][0].startswith("scene-0001:")
        x = batch["images"].float() / 127.5 - 1.0                  # b v t c h w
        b, v = x.shape[:2]
        y = model(x.flatten(0, 1).transpose(1, 2))                 # (b v) c t h w
        target = x.flatten(0, 1).transpose(1, 2).flip(1)           # learn a channel permutation
        return {"loss": (y.float() - target).square().mean()}


def test_clip_shaped_batches_with_captions_train(tmp_path):
    train(_ClipLikeTask(), fast_config("train.steps=50", "train.lr=3e-2", "train.log_every=10"),
                   tmp_path / "clips", task_name="clip_like")
    losses = [r["loss"] for r in _rows(tmp_path / "clips")]
    assert len(losses) == 5 and losses[-1] < 0.2 * losses[0]
