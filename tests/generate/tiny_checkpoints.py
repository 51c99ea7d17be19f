"""Tiny random checkpoints written exactly as `genesis-drive train camera-vae / camera-dit / lidar-ae /
lidar-dit` writes them (run directories with checkpoints/step_*/), and a helper running
`genesis-drive generate` on them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from genesis_drive.cli import main
from genesis_drive.config import config_to_dict
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.models.camera.dit import MultiViewDiT
from genesis_drive.models.camera.vae import VideoVAE, VideoVAEConfig
from genesis_drive.train import checkpoint as ckpt
from genesis_drive.train.tasks.camera_dit import test as dit_test_preset
from genesis_drive.train.tasks.camera_vae import CameraVAEConfig
from genesis_drive.train.tasks.clip_task import ClipCut

from ..models.camera.test_dit import pretrained_like

SIZE = (64, 32)  # the `test` camera-dit preset's image size (the source is 64 x 36)


def vae_cfg(latent_channels: int = 4) -> VideoVAEConfig:
    return VideoVAEConfig(widths=(8, 8, 8), time_down=(True, True), time_kernels=(3, 3, 3), groups=4, latent_channels=latent_channels,
                          patch_size=2, blocks_per_level=1, decoder_blocks_per_level=1, mid_blocks=1, shortcuts=False)  # fmt: skip


def save_vae(run: Path, latent_channels: int = 4, seed: int = 5) -> Path:
    torch.manual_seed(seed)
    model_cfg = vae_cfg(latent_channels)
    cfg = CameraVAEConfig(model=model_cfg, image_size=SIZE, clips=ClipCut(num_frames=5, rate="camera"))
    ckpt.save_checkpoint(run, 1, model=VideoVAE(model_cfg).state_dict(), optimizer={}, ema=None,
                         state={"task": "camera-vae", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    return run


def save_dit(run: Path, vae_run: Path, seed: int = 0, image_size: tuple[int, int] = SIZE) -> Path:
    cfg = dataclasses.replace(dit_test_preset(), vae=str(vae_run), views=CAMERA_CHANNELS)
    if image_size != SIZE:  # e.g. 16:9 frames of a SynthTown source (128 x 72), for evaluators that need its aspect
        cfg = dataclasses.replace(cfg, image_size=image_size, conditions=dataclasses.replace(cfg.conditions, image_size=image_size))
    torch.manual_seed(seed)
    dit = pretrained_like(MultiViewDiT(cfg.model), seed=seed + 1)  # non-zero output layer: a non-trivial sample
    ema = {k: v.clone() for k, v in dit.state_dict().items()}
    ckpt.save_checkpoint(run, 1, model=dit.state_dict(), optimizer={}, ema=ema,
                         state={"task": "camera-dit", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    return run


def generate(source: Path, out: Path, ckpts: Path, *extra: str) -> int:
    return main(["generate", "--from", str(source), "--out", str(out), "--modalities", "camera", "--checkpoints", str(ckpts),
                 "--steps", "1", "--guidance", "1.5", *extra])  # fmt: skip




def save_lidar(base: Path, vae_run: Path) -> Path:
    """``base/lidar_ae`` (the small test AE, random) and ``base/lidar_dit`` (random, non-zero output
    layer) whose camera features come from ``vae_run``; the DiT records the frozen AE's and VAE's
    versions as the training loop does. Returns ``base``."""
    from genesis_drive.models.lidar.ae import LidarAE
    from genesis_drive.models.lidar.dit import LidarDiT
    from genesis_drive.train.checkpoint import load_run_model
    from genesis_drive.train.tasks.camera_vae import CameraVAEConfig

    from ..train.tasks.test_lidar_ae import small_config
    from ..train.tasks.test_lidar_dit import config as dit_config

    cfg = small_config()
    torch.manual_seed(0)
    ae = LidarAE(cfg.model)
    ckpt.save_checkpoint(base / "lidar_ae", 1, model=ae.state_dict(), optimizer={}, ema=None,
                         state={"task": "lidar-ae", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    dcfg = dit_config((base / "lidar_ae", vae_run))
    torch.manual_seed(1)
    dit = LidarDiT(dcfg.model)
    with torch.no_grad():
        for p in dit.parameters():
            if (p == 0).all():
                p.copy_(torch.randn_like(p) * 0.05)
    vae, _, _ = load_run_model(vae_run, CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
    ckpt.save_checkpoint(base / "lidar_dit", 1, model=dit.state_dict(), optimizer={}, ema=None,
                         state={"task": "lidar-dit", "config": config_to_dict(dcfg), "frozen": {"ae": ae.version, "vae": vae.version}},
                         keep_last=1)  # fmt: skip
    return base


def save_all(base: Path, image_size: tuple[int, int] = SIZE) -> Path:
    """``base/camera_vae``, ``camera_dit`` (generating ``image_size`` frames), ``lidar_ae``, ``lidar_dit``:
    every network of joint generation."""
    vae_run = save_vae(base / "camera_vae")
    save_dit(base / "camera_dit", vae_run, image_size=image_size)
    return save_lidar(base, vae_run)
