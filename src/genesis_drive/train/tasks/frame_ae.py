"""``frame_ae``: a small convolutional autoencoder over single camera frames.

The smallest real task the training engine drives end to end: camera key-frame JPEGs of a
nuScenes-format root, resized to ``data.image_size``, are encoded to a latent of
``model.latent_channels`` channels at ``2**(len(channels) - 1)`` times lower resolution and
decoded back; the loss is the pixel MSE (images in [-1, 1]). Previews show inputs above their
reconstructions; evaluation reports validation MSE and PSNR (dB, on the [0, 1] intensity scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...data.schema import CAMERA_CHANNELS
from ...errors import ConfigError
from ..config import TrainConfig
from ..distributed import DistEnv, all_reduce_sum, shard_indices
from ..task import Task, TaskDef
from .frames import CameraFrames, find_camera_jpegs, split_files

__all__ = [
    "FrameAEModelConfig",
    "FrameDataConfig",
    "FrameAEConfig",
    "FrameAE",
    "FrameAETask",
    "PRESETS",
    "TASK",
    "image_grid",
]


@dataclass(frozen=True)
class FrameAEModelConfig:
    channels: tuple[int, ...] = (32, 64)   # width per resolution level; each further level halves h, w
    blocks_per_level: int = 1              # residual blocks per level (encoder and decoder each)
    latent_channels: int = 4
    groups: int = 8                        # GroupNorm groups (must divide every width)

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"model.channels must be positive widths, got {self.channels}")
        bad = [c for c in self.channels if c % self.groups]
        if bad:
            raise ConfigError(f"model.groups={self.groups} must divide every width in model.channels, not {bad}")
        if self.blocks_per_level < 1 or self.latent_channels < 1:
            raise ConfigError("model.blocks_per_level and model.latent_channels must be >= 1")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class FrameDataConfig:
    image_size: tuple[int, int] = (64, 32)          # (width, height) pixels after resizing
    channels: tuple[str, ...] = CAMERA_CHANNELS     # camera channels read from samples/
    val_fraction: float = 0.1                       # every round(1/f)-th image is held out

    def __post_init__(self) -> None:
        if min(self.image_size) < 1:
            raise ConfigError(f"data.image_size must be positive (width, height), got {self.image_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must lie in [0, 1), got {self.val_fraction}")
        if not self.channels:
            raise ConfigError("data.channels must name at least one camera channel")


@dataclass(frozen=True)
class FrameAEConfig:
    model: FrameAEModelConfig = field(default_factory=FrameAEModelConfig)
    data: FrameDataConfig = field(default_factory=FrameDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        w, h = self.data.image_size
        f = self.model.downsample
        if w % f or h % f:
            raise ConfigError(
                f"data.image_size {self.data.image_size} must be divisible by the model's downsampling "
                f"factor {f} (2**(len(model.channels) - 1))"
            )


# ----------------------------------------------------------------------------- model


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice plus a skip path; ``grad_checkpointing`` recomputes it in backward."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.grad_checkpointing = False

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # b c h w -> b c' h w
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class FrameAE(nn.Module):
    """Convolutional autoencoder: ``b 3 h w`` in [-1, 1] -> latent ``b z h/f w/f`` -> ``b 3 h w``."""

    def __init__(self, cfg: FrameAEModelConfig):
        super().__init__()
        self.cfg = cfg
        ch, g, n = cfg.channels, cfg.groups, cfg.blocks_per_level
        enc: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]
        prev = ch[0]
        for i, c in enumerate(ch):
            for _ in range(n):
                enc.append(ResBlock(prev, c, g))
                prev = c
            if i < len(ch) - 1:
                enc.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        enc += [nn.GroupNorm(g, prev), nn.SiLU(), nn.Conv2d(prev, cfg.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch[-1], 3, padding=1)]
        prev = ch[-1]
        for i in reversed(range(len(ch))):
            for _ in range(n):
                dec.append(ResBlock(prev, ch[i], g))
                prev = ch[i]
            if i > 0:
                dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, prev, 3, padding=1)]
        dec += [nn.GroupNorm(g, prev), nn.SiLU(), nn.Conv2d(prev, 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # b 3 h w -> b z h/f w/f
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # b z h/f w/f -> b 3 h w
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def image_grid(rows: list[torch.Tensor], pad: int = 2) -> np.ndarray:
    """Rows of ``n c h w`` images in [-1, 1] -> one uint8 ``H W 3`` grid with ``pad`` px white borders."""
    stacked = torch.stack([r.detach().float().clamp(-1, 1).cpu() for r in rows])  # r n c h w
    stacked = F.pad(stacked, (pad, pad, pad, pad), value=1.0)
    grid = rearrange(stacked, "r n c h w -> (r h) (n w) c")
    return ((grid + 1.0) * 127.5).round().to(torch.uint8).numpy()


# ----------------------------------------------------------------------------- task


class FrameAETask(Task):
    """Reconstruct camera frames; trains :class:`FrameAE`."""

    def __init__(self, cfg: FrameAEConfig, data_root: Path):
        self.cfg = cfg
        self.files = find_camera_jpegs(data_root, cfg.data.channels)

    def build_model(self) -> nn.Module:
        return FrameAE(self.cfg.model)

    def _dataset(self, split: str) -> CameraFrames:
        return CameraFrames(split_files(self.files, self.cfg.data.val_fraction, split), self.cfg.data.image_size)

    def train_dataset(self) -> CameraFrames:
        return self._dataset("train")

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["image"]  # b c h w
        err = model(x).float() - x
        return {"loss": err.square().mean(), "l1": err.abs().mean().detach()}

    def preview(self, model: nn.Module, batch: dict) -> dict[str, np.ndarray]:
        x = batch["image"]
        return {"reconstruction": image_grid([x, model(x)])}

    def evaluate(self, model: nn.Module, env: DistEnv) -> dict[str, float]:
        val = self._dataset("val")
        if len(val) == 0:
            return {}
        idx, weights = shard_indices(len(val), env)
        sq_err = torch.zeros((), dtype=torch.float64, device=env.device)
        chunk = max(1, self.cfg.train.batch_size // env.world_size)
        for s in range(0, len(idx), chunk):
            x = torch.stack([val[i]["image"] for i in idx[s : s + chunk]]).to(env.device)
            w = torch.tensor(weights[s : s + chunk], device=env.device, dtype=torch.float64)
            per_image = (model(x).float() - x).square().flatten(1).mean(1).double()
            sq_err += (per_image * w).sum()
        mse = all_reduce_sum(sq_err, env).item() / len(val)
        psnr = 10.0 * math.log10(4.0 / mse) if mse > 0 else float("inf")  # [-1,1] range 2 -> peak^2 = 4
        return {"mse": mse, "psnr": psnr}

    def fsdp_units(self, model: nn.Module) -> list[nn.Module]:
        return [m for m in model.modules() if isinstance(m, ResBlock)]


def build(cfg: FrameAEConfig, data_root: Path | None) -> FrameAETask:
    if data_root is None:
        raise ConfigError("task frame_ae needs --data ROOT (a nuScenes-format root with samples/CAM_*/*.jpg)")
    return FrameAETask(cfg, Path(data_root))


# ----------------------------------------------------------------------------- presets


def tiny() -> FrameAEConfig:
    """CPU-sized: 64x32 frames, two levels, a few hundred steps (tests, smoke runs, benchmarks)."""
    return FrameAEConfig(
        model=FrameAEModelConfig(channels=(16, 32), blocks_per_level=1, latent_channels=4, groups=8),
        data=FrameDataConfig(image_size=(64, 32)),
        train=TrainConfig(steps=200, batch_size=8, lr=1e-3, warmup_steps=10, schedule="cosine", min_lr=1e-4,
                          ema_decay=0.99, log_every=10, ckpt_every=100, preview_every=100, eval_every=100),
    )


def small() -> FrameAEConfig:
    """One GPU: 256x144 frames, 8x downsampling."""
    return FrameAEConfig(
        model=FrameAEModelConfig(channels=(64, 128, 256, 256), blocks_per_level=2, latent_channels=8, groups=32),
        data=FrameDataConfig(image_size=(256, 144)),
        train=TrainConfig(steps=20_000, batch_size=32, lr=2e-4, warmup_steps=500, schedule="cosine", min_lr=2e-5,
                          ema_decay=0.999, log_every=50, ckpt_every=2000, preview_every=2000, eval_every=2000,
                          num_workers=4),
    )


def large() -> FrameAEConfig:
    """Many GPUs: 512x288 frames, FSDP, gradient checkpointing."""
    return FrameAEConfig(
        model=FrameAEModelConfig(channels=(128, 256, 512, 512), blocks_per_level=3, latent_channels=16, groups=32),
        data=FrameDataConfig(image_size=(512, 288)),
        train=TrainConfig(steps=100_000, batch_size=128, lr=1e-4, warmup_steps=2000, schedule="cosine",
                          min_lr=1e-5, ema_decay=0.9999, parallel="fsdp", grad_checkpointing=True,
                          log_every=100, ckpt_every=5000, preview_every=5000, eval_every=5000, num_workers=8),
    )


PRESETS = {"tiny": tiny, "small": small, "large": large}

TASK = TaskDef(
    config_type=FrameAEConfig,
    presets=PRESETS,
    build=build,
    description="convolutional autoencoder over camera frames (engine smoke task)",
)
