"""Training-engine extensions of the task contract: on_step, frozen helper modules, parameter
groups, a second optimizer (checkpointed and resumed exactly), video previews."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from genesis_drive.errors import ConfigError, DataError
from genesis_drive.train import checkpoint as ckpt
from genesis_drive.train.loop import train
from genesis_drive.train.task import Task

from .conftest import fast_config, max_abs_diff


class GenDisc(nn.Module):
    """A generator and a 'discriminator' in one model (as a VAE with its adversary)."""

    def __init__(self):
        super().__init__()
        self.gen = nn.Linear(4, 4)
        self.disc = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.gen(x)


class ToyTask(Task):
    """Regression to a fixed linear map; options switch each extension on."""

    def __init__(self, *, adv_weight=0.1, aux=False, aux_uses_gen=True, groups=None, frozen=None, video=False):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=g)
        self.w = torch.randn(4, 4, generator=g)
        self.adv_weight, self.aux, self.aux_uses_gen, self.groups, self.video = adv_weight, aux, aux_uses_gen, groups, video
        self.frozen = frozen
        self.steps_seen: list[int] = []
        self.weight = 0.0

    def build_model(self):
        return GenDisc()

    def train_dataset(self):
        return [{"x": self.x[i], "y": self.x[i] @ self.w} for i in range(len(self.x))]

    def on_step(self, step):
        self.steps_seen.append(step)
        self.weight = min(1.0, step / 4)  # a warm-up, a pure function of the step

    def frozen_modules(self):
        return {} if self.frozen is None else {"helper": self.frozen}

    def param_groups(self, model):
        return self.groups(model) if self.groups is not None else None

    def aux_param_groups(self, model):
        return [{"params": list(model.disc.parameters()), "lr_scale": 2.0}] if self.aux else None

    def loss(self, model, batch):
        x = batch["x"]
        if self.frozen is not None:
            assert not self.frozen.training and not any(p.requires_grad for p in self.frozen.parameters())
            x = x + self.frozen(x).detach()
        y = model(x)
        rec = (y - batch["y"]).square().mean()
        adv = -model.disc(y).mean()
        return {"loss": rec + self.adv_weight * self.weight * adv, "rec": rec}

    def aux_loss(self, model, batch):
        y = model(batch["x"])
        if not self.aux_uses_gen:
            y = y.detach()
        fake = model.disc(y).mean()
        real = model.disc(batch["y"]).mean()
        return {"loss": (fake - 1).square() + (real + 1).square()}

    def preview(self, model, batch):
        img = np.zeros((8, 10, 3), np.uint8)
        out = {"img": img}
        if self.video:
            out["vid"] = np.stack([np.full((8, 10, 3), 40 * i, np.uint8) for i in range(5)])
        return out


def _run(task, run_dir, *overrides, resume=False):
    cfg = fast_config("train.lr=1e-2", "train.batch_size=4", *overrides)
    return train(task, cfg, run_dir, task_name="toy", resume=resume)


def _init_weights():
    """The model as the loop initialises it (seeded with train.seed before build_model)."""
    torch.manual_seed(fast_config().train.seed)
    return {k: v.clone() for k, v in GenDisc().state_dict().items()}


def _w(result):
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}


def test_on_step_sees_every_step_and_the_checkpoint_step_on_resume(tmp_path):
    t = ToyTask()
    _run(t, tmp_path / "a", "train.steps=3")
    assert t.steps_seen == [0, 1, 2]
    t2 = ToyTask()
    _run(t2, tmp_path / "a", "train.steps=6", resume=True)
    assert t2.steps_seen == [3, 4, 5]
    straight = _w(_run(ToyTask(), tmp_path / "b", "train.steps=6"))
    resumed = _w(_run(ToyTask(), tmp_path / "a", "train.steps=6", resume=True))  # already done: loads step 6
    assert max_abs_diff(straight, resumed) == 0.0


def test_frozen_modules_are_moved_frozen_and_never_checkpointed(tmp_path):
    torch.manual_seed(3)
    helper = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    before = {k: v.clone() for k, v in helper.state_dict().items()}
    res = _run(ToyTask(frozen=helper), tmp_path / "run", "train.steps=3")
    assert not helper.training and all(not p.requires_grad for p in helper.parameters())
    assert all(torch.equal(before[k], v) for k, v in helper.state_dict().items())
    saved = ckpt.read_checkpoint(res.checkpoint)
    assert set(saved.model) == set(GenDisc().state_dict()) and set(saved.ema) == set(saved.model)
    # a new helper with other weights resumes fine: it is not checked against the checkpoint
    assert _run(ToyTask(frozen=nn.Sequential(nn.Linear(4, 4))), tmp_path / "run", "train.steps=4", resume=True).step == 4

    class Sharing(ToyTask):
        def build_model(self):
            m = GenDisc()
            self.frozen = m.gen
            return m

    with pytest.raises(ConfigError, match="shares parameters"):
        _run(Sharing(), tmp_path / "share", "train.steps=1")


def test_param_groups_scale_the_lr_and_must_cover_the_model(tmp_path):
    init_w = _init_weights()
    groups = lambda m: [{"params": m.gen.parameters(), "lr_scale": 0.0},  # noqa: E731
                        {"params": m.disc.parameters(), "weight_decay": 0.0}]
    res = _run(ToyTask(groups=groups), tmp_path / "g", "train.steps=4", "train.ema_decay=null")
    w = _w(res)
    assert torch.equal(w["gen.weight"], init_w["gen.weight"])  # lr 0: frozen in place (same seed, same init)
    assert not torch.equal(w["disc.0.weight"], init_w["disc.0.weight"])
    with pytest.raises(ConfigError, match="in no group"):
        _run(ToyTask(groups=lambda m: [{"params": m.gen.parameters()}]), tmp_path / "h", "train.steps=1")
    with pytest.raises(ConfigError, match="more than one group"):
        _run(ToyTask(groups=lambda m: [{"params": m.parameters()}, {"params": m.gen.parameters()}]),
             tmp_path / "i", "train.steps=1")


def test_second_optimizer_trains_only_its_parameters(tmp_path):
    base = _w(_run(ToyTask(aux=True, aux_uses_gen=False), tmp_path / "a", "train.steps=1", "train.ema_decay=null"))
    # the aux loss's gradients on the generator are discarded ...
    leak = _w(_run(ToyTask(aux=True, aux_uses_gen=True), tmp_path / "b", "train.steps=1", "train.ema_decay=null"))
    assert torch.equal(base["gen.weight"], leak["gen.weight"])
    # ... and so are the main loss's on the discriminator (the adversarial term)
    no_adv = _w(_run(ToyTask(aux=True, aux_uses_gen=False, adv_weight=0.0), tmp_path / "c", "train.steps=1",
                     "train.ema_decay=null"))
    assert torch.equal(base["disc.0.weight"], no_adv["disc.0.weight"])
    assert not torch.equal(base["disc.0.weight"], _init_weights()["disc.0.weight"])  # the aux step did train it
    rows = [json.loads(r) for r in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert "aux/loss" in rows[-1] and "aux/grad_norm" in rows[-1] and "rec" in rows[-1]


def test_second_optimizer_state_resumes_exactly(tmp_path):
    straight = _w(_run(ToyTask(aux=True), tmp_path / "s", "train.steps=6"))
    _run(ToyTask(aux=True), tmp_path / "r", "train.steps=3")
    saved = ckpt.read_checkpoint(ckpt.latest_checkpoint(tmp_path / "r"))
    assert any(k.startswith("aux_optimizer:disc.") for k in saved.optimizer) and "aux_optimizer" in saved.state
    resumed = _w(_run(ToyTask(aux=True), tmp_path / "r", "train.steps=6", resume=True))
    assert max_abs_diff(straight, resumed) == 0.0
    # (checked: skipping the second optimizer's state on resume makes the comparison above fail)
    # a checkpoint without a second optimizer cannot resume a task that has one
    _run(ToyTask(aux=False), tmp_path / "plain", "train.steps=3")
    with pytest.raises(DataError, match="lacks a second optimizer"):
        _run(ToyTask(aux=True), tmp_path / "plain", "train.steps=6", resume=True)


def test_video_previews_are_written_as_mp4_beside_png(tmp_path):
    _run(ToyTask(video=True), tmp_path / "v", "train.steps=2", "train.preview_samples=2", "train.preview_every=1")
    prev = tmp_path / "v" / "previews"
    assert (prev / "step_00000001_img.png").is_file() and (prev / "step_00000002_img.png").is_file()
    cap = cv2.VideoCapture(str(prev / "step_00000002_vid.mp4"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    frames = np.stack(frames)
    assert frames.shape[0] == 5 and frames.shape[1:3] == (8, 10)
    assert abs(float(frames[4].mean()) - 160) < 4 and abs(float(frames[1].mean()) - 40) < 4


def test_second_optimizer_without_its_loss_is_refused_before_training(tmp_path):
    class NoAuxLoss(ToyTask):
        aux_loss = Task.aux_loss  # declares aux_param_groups, keeps the base aux_loss

    from genesis_drive.errors import ConfigError

    with pytest.raises(ConfigError, match="does not override aux_loss"):
        _run(NoAuxLoss(aux=True), tmp_path / "a", "train.steps=1")
    assert not (tmp_path / "a" / "checkpoints").exists()
