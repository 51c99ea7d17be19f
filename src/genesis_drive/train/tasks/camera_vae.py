"""``camera-vae``: training recipe of the camera branch's causal video VAE
(:class:`~genesis_drive.models.camera.vae.VideoVAE`).

Data: clips of ``clips.num_frames`` (4k+1) camera frames of every view of a nuScenes-format root
(:class:`~genesis_drive.train.tasks.clip_task.ClipTask`: optionally only a DataCrafter manifest's
kept clips), resized and centre-cropped to ``image_size``; the views of a clip are folded into the
batch (``b v c t h w -> (b v) c t h w``), so one clip is six videos. The last ``val_scenes``
scenes of the root (sorted by name) are left out of training and used by :meth:`evaluate`.

Loss per micro-batch (``x`` in [-1, 1], ``x_hat`` decoded from a posterior draw)::

    loss = l1 * |x_hat - x|  +  ssim * (1 - SSIM(x_hat, x))  +  kl_weight(step) * KL

with |.| and KL averaged over elements (KL in nats per latent element against N(0, 1)), SSIM the
Gaussian-window SSIM of pytorch-msssim per frame on [0, 1] (computed in fp32, outside autocast),
and ``kl_weight(step)`` rising linearly from 0 to ``loss.kl`` over ``loss.kl_warmup_steps``
(:func:`kl_weight_at`, set by :meth:`CameraVAETask.on_step`). No adversarial term (see
docs/camera.md "Video VAE").

Evaluation (held-out scenes of the root, non-overlapping clips, posterior mean): PSNR (dB on the
[0, 1] scale, per image = one view-frame, averaged), SSIM (same window), L1, and the mean / std of
the raw latents (what ``model.scaling_factor`` / ``shift_factor`` are set from after training,
:func:`genesis_drive.train.calibration.calibrate_camera_vae`).
Previews: input above reconstruction for every view, as an MP4 (``t h w 3``) and a PNG of the
first and last frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from pytorch_msssim import ssim
from torch import nn

from ...data.clips import ClipIndex, ClipSpec
from ...data.nuscenes import NuScenesReader
from ...data.schema import CAMERA_CHANNELS, Clip
from ...errors import ConfigError, DataError
from ...models.camera import vae as vae_presets
from ...models.camera.vae import VideoVAE, VideoVAEConfig
from ...models.codec import kl_divergence
from ..config import TrainConfig
from ..distributed import DistEnv, all_reduce_sum, shard_indices
from ..task import TaskDef
from .clip_task import ClipCut, ClipTask, scene_split, spread
from .frame_ae import image_grid

__all__ = [
    "VAELossConfig",
    "CameraVAEConfig",
    "CameraVAETask",
    "VideoSamples",
    "kl_weight_at",
    "to_videos",
    "reconstruction_scores",
    "clip_spec_of",
    "evaluate_codec",
    "score_clip",
    "CAMERA_VAE_PRESETS",
    "CAMERA_VAE_TASK",
]

#: Frames per second of the clip rates (SynthTown and nuScenes cameras run at 12 Hz, keyframes at 2 Hz).
RATE_HZ = {"camera": 12.0, "keyframe": 2.0}


@dataclass(frozen=True)
class VAELossConfig:
    """Loss weights. l1: pixel L1 on [-1, 1]. ssim: weight of ``1 - SSIM`` (per frame, [0, 1]).
    ssim_window: odd Gaussian-window size (pixels) of SSIM in the loss and the evaluation.
    kl: KL weight (per latent element) after the warm-up; kl_warmup_steps: optimizer steps of the
    linear warm-up from 0 (0 = full weight from the start). sample_posterior: decode a posterior
    draw (True) or the mean (False) during training."""

    l1: float = 1.0
    ssim: float = 0.5
    ssim_window: int = 11
    kl: float = 1e-4
    kl_warmup_steps: int = 500
    sample_posterior: bool = True

    def __post_init__(self) -> None:
        for name in ("l1", "ssim", "kl"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise ConfigError(f"loss.{name} must be a finite number >= 0, got {v}")
        if self.l1 == 0 and self.ssim == 0:
            raise ConfigError("loss.l1 and loss.ssim cannot both be 0 (nothing to reconstruct)")
        if self.ssim_window < 3 or self.ssim_window % 2 == 0:
            raise ConfigError(f"loss.ssim_window must be an odd number >= 3, got {self.ssim_window}")
        if self.kl_warmup_steps < 0:
            raise ConfigError(f"loss.kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")


@dataclass(frozen=True)
class CameraVAEConfig:
    """Run config of the ``camera-vae`` task.

    image_size: (width, height) pixels the frames are resized and centre-cropped to.
    views: cameras of a clip (all folded into the batch). clips: clip cutting (``num_frames`` must
    be ``tf k + 1``). val_scenes: last scenes of the root (by name) kept out of training for
    :meth:`CameraVAETask.evaluate`; eval_clips: at most this many of their clips are evaluated.
    """

    model: VideoVAEConfig = field(default_factory=vae_presets.tiny)
    image_size: tuple[int, int] = (128, 72)
    views: tuple[str, ...] = CAMERA_CHANNELS
    clips: ClipCut = field(default_factory=lambda: ClipCut(num_frames=9, frame_stride=1, window_stride=4, rate="camera"))
    loss: VAELossConfig = field(default_factory=VAELossConfig)
    val_scenes: int = 1
    eval_clips: int = 8
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        w, h = self.image_size
        sf, tf = self.model.spatial_factor, self.model.temporal_factor
        if w % sf or h % sf or min(w, h) < sf:
            raise ConfigError(f"image_size {self.image_size} must be multiples of the VAE's spatial factor {sf}")
        if (self.clips.num_frames - 1) % tf:
            raise ConfigError(f"clips.num_frames must be {tf}k+1 for the VAE's temporal factor {tf} "
                              f"(1, {tf + 1}, {2 * tf + 1}, ...), got {self.clips.num_frames}")
        if not self.views:
            raise ConfigError("views must name at least one camera channel")
        if self.val_scenes < 0 or self.eval_clips < 1:
            raise ConfigError(f"val_scenes must be >= 0 and eval_clips >= 1, got {self.val_scenes}, {self.eval_clips}")


# ----------------------------------------------------------------------------- helpers


def kl_weight_at(loss: VAELossConfig, step: int) -> float:
    """KL weight before optimizer step ``step`` (0-based): ``loss.kl * min(1, step / kl_warmup_steps)``."""
    if loss.kl_warmup_steps == 0:
        return loss.kl
    return loss.kl * min(1.0, step / loss.kl_warmup_steps)


def to_videos(video: torch.Tensor) -> torch.Tensor:
    """uint8 ``b v c t h w`` clips -> float ``(b v) c t h w`` videos in [-1, 1]."""
    return rearrange(video, "b v c t h w -> (b v) c t h w").float() / 127.5 - 1.0


def _frames01(x: torch.Tensor) -> torch.Tensor:
    """``n c t h w`` in [-1, 1] -> ``(n t) c h w`` in [0, 1] (fp32)."""
    return rearrange((x.float() + 1.0) * 0.5, "n c t h w -> (n t) c h w")


def _ssim(a: torch.Tensor, b: torch.Tensor, window: int, size_average: bool) -> torch.Tensor:
    """SSIM of ``n c t h w`` videos in [-1, 1] per frame on [0, 1], in fp32 outside autocast."""
    with torch.autocast(a.device.type, enabled=False):
        return ssim(_frames01(a), _frames01(b), data_range=1.0, win_size=window, size_average=size_average)


def reconstruction_scores(x: torch.Tensor, y: torch.Tensor, window: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PSNR (dB, [0, 1] scale) and SSIM of reconstructions ``y`` against ``x``
    (both ``n c t h w`` in [-1, 1]; ``y`` clamped to [-1, 1]); each ``(n t,)``, image = one frame."""
    fx, fy = _frames01(x), _frames01(y.float().clamp(-1.0, 1.0))
    mse = (fx - fy).square().flatten(1).mean(1).clamp_min(1e-10)
    psnr = -10.0 * torch.log10(mse)
    with torch.autocast(x.device.type, enabled=False):
        s = ssim(fx, fy, data_range=1.0, win_size=window, size_average=False)
    return psnr, s


def clip_spec_of(cfg: CameraVAEConfig, *, non_overlapping: bool = False) -> ClipSpec:
    """The clips of a run config (all its views at its image size, no LiDAR); ``non_overlapping``
    sets the window stride to the clip span (evaluation clips)."""
    spec = cfg.clips.spec(cfg.views, cfg.image_size, lidar="none")
    return replace(spec, window_stride=cfg.clips.num_frames * cfg.clips.frame_stride) if non_overlapping else spec


class VideoSamples:
    """Clip -> ``{"video": uint8 v c t h w}`` (the views of a clip, RGB). Picklable."""

    def __call__(self, clip: Clip) -> dict[str, torch.Tensor]:
        return {"video": torch.from_numpy(rearrange(clip.images, "t v h w c -> v c t h w").copy())}


# ----------------------------------------------------------------------------- task


class CameraVAETask(ClipTask):
    """Trains :class:`VideoVAE` on the camera clips of a root (see the module docstring)."""

    name = "camera-vae"
    root_needs = "a nuScenes-format root with the cameras of `views`"
    cfg: CameraVAEConfig

    def __init__(self, cfg: CameraVAEConfig, data_root: Path | None):
        super().__init__(cfg, data_root)
        self.kl_weight = kl_weight_at(cfg.loss, 0)
        self.preview_fps = RATE_HZ[cfg.clips.rate] / cfg.clips.frame_stride

    # -- data ---------------------------------------------------------------------------------
    def clip_spec(self) -> ClipSpec:
        return clip_spec_of(self.cfg)

    def make_transform(self, reader: NuScenesReader) -> VideoSamples:
        return VideoSamples()

    def clip_index(self) -> ClipIndex:
        """Training clips of the root's scenes but the last ``val_scenes`` (manifest-filtered)."""
        reader = NuScenesReader(self.data_root)
        train, _ = scene_split(reader, self.cfg.val_scenes)
        index = ClipIndex(reader, self.clip_spec(), manifest=self.clips.manifest, scenes=train)
        if len(index) == 0:
            c = self.clips
            raise DataError(f"no clips of {c.num_frames} frames ({c.rate} rate, frame stride {c.frame_stride}) to train on "
                            f"in the training scenes", self.data_root)  # fmt: skip
        return index

    def val_index(self) -> ClipIndex:
        """Non-overlapping clips of the last ``val_scenes`` scenes (no manifest filter); may be empty."""
        reader = NuScenesReader(self.data_root)
        _, val = scene_split(reader, self.cfg.val_scenes)
        return ClipIndex(reader, clip_spec_of(self.cfg, non_overlapping=True), scenes=val)

    # -- training -----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return VideoVAE(self.cfg.model)

    def on_step(self, step: int) -> None:
        self.kl_weight = kl_weight_at(self.cfg.loss, step)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        lc = self.cfg.loss
        x = to_videos(batch["video"])
        out = model(x, sample=lc.sample_posterior)
        rec = out.recon.float()
        l1 = (rec - x).abs().mean()
        s = _ssim(rec, x, lc.ssim_window, size_average=True)
        kl = kl_divergence(out.mean, out.logvar)
        loss = lc.l1 * l1 + lc.ssim * (1.0 - s) + self.kl_weight * kl
        mse = ((rec.detach().clamp(-1, 1) - x) * 0.5).square().mean().clamp_min(1e-10)
        return {"loss": loss, "l1": l1.detach(), "ssim": s.detach(), "kl": kl.detach(),
                "kl_weight": torch.tensor(self.kl_weight, device=x.device), "psnr": -10.0 * torch.log10(mse)}

    @torch.no_grad()
    def preview(self, model: nn.Module, batch: dict) -> dict[str, np.ndarray]:
        """``reconstruction`` video (t h w 3): per sample a row of input views above a row of
        reconstructions; ``first_last`` PNG: the same grid at the first and the last frame."""
        v = batch["video"].shape[1]
        x = to_videos(batch["video"])
        y = model.decode_raw(model.encode_raw(x)).float().clamp(-1, 1)
        xs, ys = (rearrange(a, "(b v) c t h w -> b t v c h w", v=v) for a in (x, y))
        rows = lambda t: [r for i in range(xs.shape[0]) for r in (xs[i, t], ys[i, t])]  # noqa: E731
        video = np.stack([image_grid(rows(t)) for t in range(xs.shape[1])])
        return {"reconstruction": video, "first_last": np.concatenate([video[0], video[-1]], axis=0)}

    def evaluate(self, model: nn.Module, env: DistEnv) -> dict[str, float]:
        """:func:`evaluate_codec` on up to ``eval_clips`` clips of the held-out scenes ({} without any)."""
        if self.cfg.val_scenes == 0:
            return {}
        index = self.val_index()
        if len(index) == 0:
            return {}
        return evaluate_codec(model, index, spread(len(index), self.cfg.eval_clips), env, self.cfg.loss.ssim_window)


@torch.no_grad()
def score_clip(codec: VideoVAE, x: torch.Tensor, window: int = 11) -> dict[str, torch.Tensor]:
    """Reconstruct videos ``x`` (``n 3 t h w`` in [-1, 1], e.g. one clip's views) through the
    posterior mean: ``psnr`` and ``ssim`` averaged over images (view-frames), ``l1`` ([-1, 1]
    scale, reconstruction clamped), and the raw latents ``z``."""
    z = codec.encode_raw(x)
    y = codec.decode_raw(z).float()
    psnr, s = reconstruction_scores(x, y, window)
    return {"psnr": psnr.mean(), "ssim": s.mean(), "l1": (y.clamp(-1, 1) - x).abs().mean(), "z": z}


@torch.no_grad()
def evaluate_codec(codec: VideoVAE, index: ClipIndex, picks: list[int], env: DistEnv, window: int = 11) -> dict[str, float]:
    """:func:`score_clip` on clips ``picks`` of ``index`` (all views), averaged over clips:
    ``psnr`` (dB, [0, 1] scale), ``ssim`` (``window`` px), ``l1``, and ``latent_mean`` /
    ``latent_std`` of the raw latents over all their elements. Clips are shared out over ranks;
    the result is identical on every rank."""
    idx, weights = shard_indices(len(picks), env)
    acc = torch.zeros(6, dtype=torch.float64, device=env.device)  # psnr, ssim, l1, z sum, z^2 sum, z count
    transform = VideoSamples()
    for i, w in zip(idx, weights):
        x = to_videos(transform(index.load(picks[i]))["video"][None].to(env.device))
        r = score_clip(codec, x, window)
        z = r["z"].double()
        acc += w * torch.stack([r["psnr"].double(), r["ssim"].double(), r["l1"].double(), z.sum(), z.square().sum(),
                                z.new_tensor(float(z.numel()))])  # fmt: skip
    acc = all_reduce_sum(acc, env)
    n = len(picks)
    mean = (acc[3] / acc[5]).item()
    std = math.sqrt(max((acc[4] / acc[5]).item() - mean * mean, 0.0))
    return {"psnr": acc[0].item() / n, "ssim": acc[1].item() / n, "l1": acc[2].item() / n,
            "latent_mean": mean, "latent_std": std}


# ----------------------------------------------------------------------------- presets


def _tiny() -> CameraVAEConfig:
    """CPU size: 128x72 clips of 9 frames (12 Hz) x 6 views, ~40 minutes on the shared 2-core CPU."""
    return CameraVAEConfig(
        model=vae_presets.tiny(),
        image_size=(128, 72),
        clips=ClipCut(num_frames=9, frame_stride=1, window_stride=4, rate="camera"),
        loss=VAELossConfig(l1=1.0, ssim=0.5, ssim_window=11, kl=1e-4, kl_warmup_steps=500),
        train=TrainConfig(steps=2000, batch_size=1, lr=1e-3, warmup_steps=50, schedule="cosine", min_lr=5e-5,
                          ema_decay=0.995, precision="bf16", log_every=20, ckpt_every=500, preview_every=500,
                          preview_samples=1, eval_every=500),
    )


def _paper() -> CameraVAEConfig:
    """GPU size: 256x144 clips of 17 frames x 6 views, the CogVideoX-like VAE preset."""
    return CameraVAEConfig(
        model=vae_presets.paper(),
        image_size=(256, 144),
        clips=ClipCut(num_frames=17, frame_stride=1, window_stride=8, rate="camera"),
        loss=VAELossConfig(l1=1.0, ssim=0.5, ssim_window=11, kl=1e-5, kl_warmup_steps=5000),
        val_scenes=2,
        eval_clips=32,
        train=TrainConfig(steps=100_000, batch_size=8, lr=1e-4, warmup_steps=1000, schedule="cosine", min_lr=1e-5,
                          ema_decay=0.999, precision="bf16", grad_checkpointing=True, log_every=50, ckpt_every=2000,
                          preview_every=2000, preview_samples=2, eval_every=2000, num_workers=8),
    )


CAMERA_VAE_PRESETS: dict[str, Callable[[], CameraVAEConfig]] = {"tiny": _tiny, "paper": _paper}

CAMERA_VAE_TASK = TaskDef(
    config_type=CameraVAEConfig,
    presets=CAMERA_VAE_PRESETS,
    build=CameraVAETask,
    description="causal 3D video VAE of the camera branch (8x spatial, 4x temporal, KL latent)",
)
