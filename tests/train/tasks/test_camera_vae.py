"""camera-vae task on the hand-made root: samples, KL warm-up, loss falls on one clip, metrics,
previews, config checks, and a few steps through the real training loop (loadable afterwards).
The latent calibration: test_calibration.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genesis_drive.config import apply_overrides
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.models.camera.vae import VideoVAE
from genesis_drive.train.checkpoint import load_run_model
from genesis_drive.train.distributed import DistEnv
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.camera_vae import (
    CAMERA_VAE_PRESETS,
    CAMERA_VAE_TASK,
    CameraVAEConfig,
    evaluate_codec,
    kl_weight_at,
    reconstruction_scores,
)
from genesis_drive.train.tasks.clip_task import spread

from ...data.handmade import image_for
from .overfit import overfit_losses

#: a small model on 32x16 frames of 5 frames (the hand-made scene has 19 camera frames)
SMALL = [
    "image_size=[32, 16]",
    "model.widths=[12, 12, 24]",
    "model.groups=4",
    "model.latent_channels=4",
    "clips.num_frames=5",
    "clips.window_stride=4",
    "val_scenes=0",
    "train.precision=fp32",
]


def small_config(*extra: str) -> CameraVAEConfig:
    return apply_overrides(CAMERA_VAE_PRESETS["tiny"](), [*SMALL, *extra])


def env() -> DistEnv:
    return DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_samples_are_every_view_and_frame_in_order(root):
    task = CAMERA_VAE_TASK.build(small_config(), root)
    ds = task.train_dataset()
    assert len(ds) == 4  # starts 0, 4, 8, 12 of 19 frames
    video = ds[1]["video"]
    assert video.shape == (6, 3, 5, 16, 32) and video.dtype == torch.uint8
    for v in range(6):
        for t in range(5):
            want = torch.tensor(image_for(v, 4 + t)[0, 0].astype(np.int16))
            got = video[v, :, t].to(torch.int16)
            assert (got - want[:, None, None]).abs().max() <= 3, (v, t)
    batch = task.collate([ds[0], ds[1]])
    assert batch["video"].shape == (2, 6, 3, 5, 16, 32)


def test_kl_warm_up_follows_the_step():
    cfg = small_config("loss.kl=0.001", "loss.kl_warmup_steps=100")
    assert [kl_weight_at(cfg.loss, s) for s in (0, 50, 100, 400)] == pytest.approx([0.0, 5e-4, 1e-3, 1e-3])
    assert kl_weight_at(small_config("loss.kl=0.001", "loss.kl_warmup_steps=0").loss, 0) == 1e-3


def test_on_step_sets_the_loss_weight(root):
    task = CAMERA_VAE_TASK.build(small_config("loss.kl=0.001", "loss.kl_warmup_steps=100"), root)
    torch.manual_seed(0)
    model = task.build_model()
    batch = task.collate([task.train_dataset()[0]])
    task.on_step(0)
    assert task.loss(model, batch)["kl_weight"].item() == 0.0
    task.on_step(50)
    out = task.loss(model, batch)
    assert out["kl_weight"].item() == pytest.approx(5e-4)
    parts = 1.0 * out["l1"] + 0.5 * (1 - out["ssim"]) + 5e-4 * out["kl"]
    assert out["loss"].item() == pytest.approx(parts.item(), rel=1e-5)


def test_loss_falls_when_overfitting_one_clip(root):
    task = CAMERA_VAE_TASK.build(small_config("loss.kl_warmup_steps=0"), root)
    batch = task.collate([task.train_dataset()[0]])
    torch.manual_seed(0)
    losses = overfit_losses(task, task.build_model(), batch, 40, 3e-4)
    # recorded: 0.60 at step 0, 0.10 after 40 steps (seed 0, torch 2.13 CPU); the bound leaves a margin
    assert losses[0] > 0.5 and losses[-1] < 0.16, losses[::8]


def test_reconstruction_scores_analytic():
    x = torch.rand(2, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.5  # in [-0.5, 0.5]
    psnr, s = reconstruction_scores(x, x)
    assert psnr.shape == (10,) and torch.allclose(psnr, torch.full_like(psnr, 100.0)) and torch.allclose(s, torch.ones(10))
    psnr, s = reconstruction_scores(x, x + 0.2)  # 0.1 on the [0, 1] scale everywhere: MSE 0.01 -> 20 dB
    torch.testing.assert_close(psnr, torch.full_like(psnr, 20.0), atol=1e-4, rtol=0)
    assert (s < 1).all()
    # the reconstruction is clamped to [-1, 1] before scoring
    psnr, _ = reconstruction_scores(torch.ones(1, 3, 1, 16, 16), torch.full((1, 3, 1, 16, 16), 3.0))
    assert psnr.item() == pytest.approx(100.0)


def test_evaluate_codec_and_preview(root):
    task = CAMERA_VAE_TASK.build(small_config(), root)
    torch.manual_seed(0)
    model = task.build_model().eval()
    index = task.clip_index()
    picks = spread(len(index), 3)
    assert picks == [0, 2, 3] and spread(5, 10) == [0, 1, 2, 3, 4] and spread(0, 3) == []
    metrics = evaluate_codec(model, index, picks, env())
    # the same numbers by hand
    psnrs, zs = [], []
    with torch.no_grad():
        for i in picks:
            x = task.collate([task.train_dataset()[i]])["video"]
            x = x.flatten(0, 1).float() / 127.5 - 1
            z = model.encode_raw(x)
            psnrs.append(reconstruction_scores(x, model.decode_raw(z))[0].mean().item())
            zs.append(z.flatten())
    z = torch.cat(zs).double()
    assert metrics["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-6)
    assert metrics["latent_mean"] == pytest.approx(z.mean().item(), abs=1e-6)
    assert metrics["latent_std"] == pytest.approx(z.std(unbiased=False).item(), rel=1e-5)
    assert 0 < metrics["ssim"] < 1 and metrics["l1"] > 0
    assert task.evaluate(model, env()) == {}  # val_scenes=0
    batch = task.collate([task.train_dataset()[0]])
    with torch.no_grad():
        previews = task.preview(model, batch)
    video = previews["reconstruction"]
    assert video.shape == (5, 2 * (16 + 4), 6 * (32 + 4), 3) and video.dtype == np.uint8
    assert previews["first_last"].shape == (2 * 40, 216, 3)
    assert task.preview_fps == 12.0


def test_config_and_root_checks(root):
    with pytest.raises(ConfigError, match="4k\\+1"):
        small_config("clips.num_frames=8")
    with pytest.raises(ConfigError, match="spatial factor 8"):
        small_config("image_size=[36, 16]")
    with pytest.raises(ConfigError, match="data root"):
        CAMERA_VAE_TASK.build(small_config(), None)
    with pytest.raises(DataError, match="val_scenes"):
        CAMERA_VAE_TASK.build(small_config("val_scenes=1"), root).train_dataset()
    assert set(CAMERA_VAE_PRESETS) == {"tiny", "paper"}
    paper = CAMERA_VAE_PRESETS["paper"]()
    assert paper.model.latent_channels == 16 and paper.model.spatial_factor == 8 and paper.model.temporal_factor == 4


def test_a_few_steps_through_the_training_loop(root, tmp_path):
    cfg = small_config("train.steps=3", "train.log_every=1", "train.ckpt_every=3", "train.preview_every=3",
                       "train.preview_samples=1", "train.eval_every=0", "loss.kl_warmup_steps=4")
    res = train(CAMERA_VAE_TASK.build(cfg, root), cfg, tmp_path / "run", task_name="camera-vae")
    assert res.step == 3 and math.isfinite(res.metrics["loss"]) and res.metrics["kl_weight"] == pytest.approx(5e-5)  # last step: 2 of 4
    assert sorted(p.suffix for p in (tmp_path / "run" / "previews").iterdir()) == [".mp4", ".png"]
    model, loaded_cfg, info = load_run_model(tmp_path / "run", CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
    assert isinstance(model, VideoVAE) and loaded_cfg == cfg and info["step"] == 3
    ema = {k: v for k, v in res.ema.state_dict().items()}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ema.items())
