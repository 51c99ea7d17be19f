"""``camera-dit``: training recipe of the camera branch's multi-view diffusion transformer
(:class:`~genesis_drive.models.camera.dit.MultiViewDiT`) in the latent space of a trained,
frozen camera VAE (:class:`~genesis_drive.models.camera.vae.VideoVAE`, task ``camera-vae``).

Data: clips of ``clips.num_frames`` (``4k + 1``, k >= 1) camera frames of every view of a
nuScenes-format root (:class:`~genesis_drive.train.tasks.clip_task.ClipTask`, optionally only a
DataCrafter manifest's kept clips), resized and centre-cropped to ``image_size``; each sample is
``images`` (uint8 ``v t c h w``) plus every key of
:class:`~genesis_drive.layout.conditions.ConditionTransform` (its ``layout`` video, boxes,
pedestrians, ego, intrinsics for ``image_size``, cam_to_ego, captions). With a manifest the
sample's ``caption_embedding`` ``(d,)`` becomes the DiT's ``caption_global`` (mask True).

Loss per micro-batch (rectified flow of :mod:`genesis_drive.diffusion.flow`, ``t = 0`` data)::

    x0 = VAE.encode(images), l = VAE.encode(layout)       # b v t' c h' w', normalised, no grad
    t ~ time (logit-normal), eps ~ N(0, 1), x_t = (1 - t) x0 + t eps
    given[:, 0] ~ Bernoulli(first_frame_prob)             # latent frame 0 kept clean in x_t
    drop[g] ~ Bernoulli(drop.<g>) | Bernoulli(drop.all)   # classifier-free guidance dropout
    loss = mean over non-given latent frames of |DiT(x_t, t, cond, layout=l, given, drop) - (eps - x0)|^2

With ``detail_weight`` w > 0 the mean is weighted: latent cells that the layout's lines, boxes
and skeletons cover (:func:`~genesis_drive.layout.camera.frame_detail_mask`, any covered pixel
of the cell's 8 x 8 pixels and camera frames) weigh ``1 + w``, the rest 1; the mask
(``detail_mask``, ``v t' h' w'``) is made with the sample and kept in the latent cache.

With ``latent_cache`` set (a folder), the training clips go through a latent cache that fills as
it is read (:class:`~genesis_drive.data.latent_cache.FillingLatentDataset`): a clip's image and
layout latents and condition tensors are computed once (JPEG decoding, layout rendering, VAE) and
read from one safetensors file on every later visit; the batch then carries ``latents`` and
``layout_latents`` instead of ``images`` and ``layout``, and the loss is the same. The cache is
keyed by the VAE's version and a fingerprint of the clip spec and condition config (a cache of
another VAE or spec is refused). It fills on the VAE's device in the process that reads, so with
``train.num_workers > 0`` on a GPU fill it in a first run with ``num_workers=0``.

The VAE is a frozen helper (:meth:`Task.frozen_modules`): moved to the device by the loop, never
saved in the DiT's checkpoints; it is loaded from ``vae`` (a camera-vae run or checkpoint
directory, EMA weights) when the task is built.

Preview (:meth:`CameraDiTTask.preview`): the first sample of the fixed batch generated from noise
(seed 0, ``preview_steps`` Heun steps, every condition kept, no given frame) and decoded by the
VAE; an MP4 (``t h w 3``) of its first view: the real frames above the layout video above the
generated frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ...data.clips import ClipSpec
from ...data.latent_cache import FillingLatentDataset, LatentCache, encode_clip_item, fingerprint
from ...data.nuscenes import NuScenesReader
from ...data.schema import CAMERA_CHANNELS, Clip
from ...diffusion.flow import add_noise, flow_loss, sample_time, velocity_target
from ...diffusion.samplers import sample
from ...errors import ConfigError
from ...layout import conditions as condition_presets
from ...layout.camera import frame_detail_mask
from ...layout.conditions import ConditionConfig, ConditionTransform
from ...models.camera import dit as dit_presets
from ...models.camera.conditions import CONDITION_GROUPS, latent_frame_groups, random_drop
from ...models.camera.dit import MultiViewDiT, MultiViewDiTConfig
from ...models.camera.vae import VideoVAE
from ..checkpoint import load_run_model
from ..config import TrainConfig
from ..task import TaskDef
from .camera_vae import RATE_HZ, CameraVAEConfig
from .clip_task import ClipCut, ClipTask

__all__ = [
    "DropConfig",
    "TimeConfig",
    "CameraDiTConfig",
    "DiTSamples",
    "CameraDiTTask",
    "to_latents",
    "sample_drop",
    "latent_cell_mask",
    "tiny",
    "paper",
    "test",
    "CAMERA_DIT_PRESETS",
    "CAMERA_DIT_TASK",
]


@dataclass(frozen=True)
class DropConfig:
    """Condition dropout probabilities per sample (classifier-free guidance): one per condition
    group of :data:`~genesis_drive.models.camera.conditions.CONDITION_GROUPS` (independent), and
    ``all``: the probability that every group is dropped together (the unconditional sample)."""

    caption: float = 0.1
    ego: float = 0.1
    boxes: float = 0.1
    pedestrians: float = 0.1
    layout: float = 0.1
    all: float = 0.1

    def __post_init__(self) -> None:
        for name in (*CONDITION_GROUPS, "all"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"drop.{name} must be a probability in [0, 1], got {p}")

    def group_probs(self) -> dict[str, float]:
        """group -> independent drop probability."""
        return {g: float(getattr(self, g)) for g in CONDITION_GROUPS}


@dataclass(frozen=True)
class TimeConfig:
    """Training time distribution (:func:`~genesis_drive.diffusion.flow.sample_time`): ``kind``
    "logit_normal" (mean, std of the logit) or "uniform", then the resolution ``shift`` (1 = none)."""

    kind: str = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("logit_normal", "uniform"):
            raise ConfigError(f"time.kind must be 'logit_normal' or 'uniform', got {self.kind!r}")
        if not self.std > 0 or not self.shift > 0:
            raise ConfigError(f"time.std and time.shift must be > 0, got {self.std}, {self.shift}")


@dataclass(frozen=True)
class CameraDiTConfig:
    """Run config of the ``camera-dit`` task.

    model: the DiT (its ``latent_channels``, ``spatial_compression`` and
    ``conditions.temporal_compression`` must be the VAE's). conditions: the condition transform
    (its ``image_size`` must be ``image_size``). clips: clip cutting (``num_frames`` = 4k + 1 with
    k >= 1 for the VAE's temporal factor 4: at least two latent frames). vae: camera-vae run or
    checkpoint directory. views: cameras of a clip, rig order. image_size: (width, height) pixels
    the frames are resized and centre-cropped to (multiples of the VAE's spatial factor).
    first_frame_prob: probability that latent frame 0 is given clean (first-frame mode).
    drop: condition dropout. time: training time distribution. preview_steps: Heun steps of the
    preview sample. latent_cache: folder of the training clips' latent cache ("" = encode every
    step; module docstring). detail_weight: extra flow-loss weight on the latent cells the
    layout's lines, boxes and skeletons cover (0 = uniform; module docstring).
    """

    model: MultiViewDiTConfig = field(default_factory=lambda: dit_presets.tiny(16))
    conditions: ConditionConfig = field(default_factory=condition_presets.tiny)
    clips: ClipCut = field(default_factory=lambda: ClipCut(num_frames=9, frame_stride=1, window_stride=1, rate="camera"))
    vae: str = "runs/camera-vae-tiny"
    views: tuple[str, ...] = CAMERA_CHANNELS
    image_size: tuple[int, int] = (128, 72)
    first_frame_prob: float = 0.3
    drop: DropConfig = field(default_factory=DropConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    preview_steps: int = 10
    latent_cache: str = ""
    detail_weight: float = 0.0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.vae:
            raise ConfigError("vae must name a trained camera-vae run or checkpoint directory")
        if not self.views:
            raise ConfigError("views must name at least one camera channel")
        if tuple(self.conditions.image_size or ()) != tuple(self.image_size):
            raise ConfigError(f"conditions.image_size {self.conditions.image_size} must equal image_size {self.image_size} "
                              "(the layout video and intrinsics are for the images the VAE encodes)")  # fmt: skip
        w, h = self.image_size
        sf, tf = self.model.spatial_compression, self.model.conditions.temporal_compression
        if w % sf or h % sf or min(w, h) < sf:
            raise ConfigError(f"image_size {self.image_size} must be multiples of model.spatial_compression {sf}")
        n = self.clips.num_frames
        if n < tf + 1 or (n - 1) % tf:
            raise ConfigError(f"clips.num_frames must be {tf}k+1 with k >= 1 ({tf + 1}, {2 * tf + 1}, ...) for at least two "
                              f"latent frames, got {n}")  # fmt: skip
        if not 0.0 <= self.first_frame_prob <= 1.0:
            raise ConfigError(f"first_frame_prob must be in [0, 1], got {self.first_frame_prob}")
        if self.preview_steps < 1:
            raise ConfigError(f"preview_steps must be >= 1, got {self.preview_steps}")
        if not self.detail_weight >= 0:
            raise ConfigError(f"detail_weight must be >= 0, got {self.detail_weight}")
        if self.model.conditions.num_classes != len(self.conditions.tokens.classes):
            raise ConfigError(f"model.conditions.num_classes {self.model.conditions.num_classes} must equal the "
                              f"{len(self.conditions.tokens.classes)} box classes of conditions.tokens.classes")  # fmt: skip
        if self.model.conditions.caption_dim != self.conditions.caption_dim:
            raise ConfigError(f"model.conditions.caption_dim {self.model.conditions.caption_dim} must equal "
                              f"conditions.caption_dim {self.conditions.caption_dim}")  # fmt: skip


# ----------------------------------------------------------------------------- helpers


def to_latents(vae: VideoVAE, video: torch.Tensor) -> torch.Tensor:
    """uint8 videos ``b v t c h w`` -> normalised VAE latents ``b v t' c' h' w'`` (posterior mean,
    float32, contiguous: ``randn_like`` noise then depends on the values only, not on where the
    latents came from); the views are folded into the VAE's batch (``(b v) c t h w``)."""
    b = video.shape[0]
    x = rearrange(video, "b v t c h w -> (b v) c t h w").float() / 127.5 - 1.0
    z = vae.encode(x).float()
    return rearrange(z, "(b v) c t h w -> b v t c h w", b=b).contiguous()


def sample_drop(b: int, drop: DropConfig, device: torch.device | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Condition drop masks ``group -> (b,)`` bool: each group independently with its own
    probability, and all groups together with probability ``drop.all``."""
    out = random_drop(b, drop.group_probs(), generator=generator, device=device)
    every = torch.rand(b, generator=generator, device=device) < drop.all
    return {g: m | every for g, m in out.items()}


def latent_cell_mask(mask: torch.Tensor, spatial: int, temporal: int) -> torch.Tensor:
    """Pixel mask ``v t h w`` (bool, ``t = temporal k + 1`` camera frames) -> latent-cell mask
    ``v t' h' w'``: a cell is True when any pixel of its ``spatial x spatial`` block is, in any of
    the camera frames its latent frame encodes (latent 0 = frame 0, latent j = frames
    ``temporal (j - 1) + 1 .. temporal j``: the causal VAE's grouping)."""
    v, t, h, w = mask.shape
    if h % spatial or w % spatial:
        raise ValueError(f"mask of {h} x {w} pixels does not tile into {spatial} x {spatial} cells")
    index, valid = latent_frame_groups(t, temporal, device=mask.device)
    grouped = (mask[:, index] & valid[None, :, :, None, None]).any(dim=2)  # v t' h w
    return rearrange(grouped, "v t (y sy) (x sx) -> v t y x (sy sx)", sy=spatial, sx=spatial).any(dim=-1)


class DiTSamples:
    """Clip -> ``{"images": uint8 v t c h w, **ConditionTransform(clip)}``, plus ``detail_mask``
    (bool ``v t' h' w'``, :func:`latent_cell_mask` of :func:`frame_detail_mask`) when
    ``detail_cells`` = (spatial, temporal compression) is given. Picklable."""

    def __init__(self, conditions: ConditionConfig, detail_cells: tuple[int, int] | None = None):
        self.transform = ConditionTransform(conditions)
        self.detail_cells = detail_cells

    def __call__(self, clip: Clip) -> dict[str, torch.Tensor]:
        out = self.transform(clip)
        out["images"] = torch.from_numpy(rearrange(clip.images, "t v h w c -> v t c h w").copy())
        if self.detail_cells is not None:
            cfg = self.transform.config
            pixels = np.stack([frame_detail_mask(clip, t, cfg.camera_layout, cfg.image_size)
                               for t in range(clip.num_frames)], axis=1)  # v t h w
            out["detail_mask"] = latent_cell_mask(torch.from_numpy(pixels), *self.detail_cells)
        return out


#: Batch keys that are not DiT conditions (the images are the data; the layout video is encoded).
_NOT_CONDITIONS = ("images", "layout", "latents", "layout_latents", "caption", "clip_id", "caption_embedding",
                   "detail_mask")


# ----------------------------------------------------------------------------- task


class CameraDiTTask(ClipTask):
    """Trains :class:`MultiViewDiT` on VAE latents of the camera clips of a root (module docstring)."""

    name = "camera-dit"
    root_needs = "a nuScenes-format root with the cameras of `views`"
    cfg: CameraDiTConfig

    def __init__(self, cfg: CameraDiTConfig, data_root: Path | None):
        super().__init__(cfg, data_root)
        self.vae, vae_cfg, self.vae_info = load_run_model(cfg.vae, CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
        self.vae.requires_grad_(False)
        m, vm = cfg.model, vae_cfg.model
        got = (vm.latent_channels, self.vae.spatial_factor, self.vae.temporal_factor)
        want = (m.latent_channels, m.spatial_compression, m.conditions.temporal_compression)
        if got != want:
            raise ConfigError(f"the VAE at {cfg.vae} has (latent channels, spatial, temporal factor) {got}; model has "
                              f"latent_channels, spatial_compression, conditions.temporal_compression {want}")  # fmt: skip
        self.preview_fps = RATE_HZ[cfg.clips.rate] / cfg.clips.frame_stride

    # -- data ---------------------------------------------------------------------------------
    def clip_spec(self) -> ClipSpec:
        return self.clips.spec(self.cfg.views, self.cfg.image_size, lidar="none")

    def make_transform(self, reader: NuScenesReader) -> DiTSamples:
        m = self.cfg.model
        cells = (m.spatial_compression, m.conditions.temporal_compression) if self.cfg.detail_weight > 0 else None
        return DiTSamples(self.cfg.conditions, cells)

    def train_dataset(self):
        """The training clips; through the filling latent cache when ``latent_cache`` is set."""
        base = super().train_dataset()
        if not self.cfg.latent_cache:
            return base
        cfg = self.cfg
        extras = (["detail_mask"] if cfg.detail_weight > 0 else []) + (["layout"] if cfg.model.layout_hint else [])
        cache = LatentCache(cfg.latent_cache, self.vae.version, fingerprint(self.clip_spec(), cfg.conditions, cfg.clips.manifest, *extras))
        ids = [base.index.refs[i].clip_id for i in range(len(base))]
        return FillingLatentDataset(base, ids, cache, self._encode_item)

    def _encode_item(self, item: dict) -> tuple[dict, dict]:
        tensors, extra = encode_clip_item(self.vae, item)
        if self.cfg.model.layout_hint:  # the layout hint encoder reads the layout video itself
            tensors["layout"] = item["layout"]
        return tensors, extra

    def latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``(image latents, layout latents)`` ``b v t' c h' w'`` of a batch: the cached
        ones when the batch has them, else the frozen VAE's encoding of its videos."""
        if "latents" in batch:
            return batch["latents"].float(), batch["layout_latents"].float()
        with torch.no_grad():
            return to_latents(self.vae, batch["images"]), to_latents(self.vae, batch["layout"])

    # -- training -----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return MultiViewDiT(self.cfg.model)

    def frozen_modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    def conditions(self, batch: dict) -> dict[str, torch.Tensor]:
        """The DiT's condition dict of a batch; a manifest's ``caption_embedding`` (b, d) becomes
        ``caption_global`` with ``caption_global_mask`` True."""
        cond = {k: v for k, v in batch.items() if k not in _NOT_CONDITIONS and isinstance(v, torch.Tensor)}
        emb = batch.get("caption_embedding")
        if isinstance(emb, torch.Tensor):
            cond["caption_global"] = emb.float()
            cond["caption_global_mask"] = torch.ones(emb.shape[0], dtype=torch.bool, device=emb.device)
        return cond

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        x0, layout = self.latents(batch)  # b v t c h w
        b, tl, dev = x0.shape[0], x0.shape[2], x0.device
        tc = cfg.time
        t = sample_time(b, kind=tc.kind, mean=tc.mean, std=tc.std, shift=tc.shift, device=dev)
        noise = torch.randn_like(x0)
        given = torch.zeros(b, tl, dtype=torch.bool, device=dev)
        given[:, 0] = torch.rand(b, device=dev) < cfg.first_frame_prob
        g6 = given[:, None, :, None, None, None]
        xt = torch.where(g6, x0, add_noise(x0, noise, t))
        drop = sample_drop(b, cfg.drop, device=dev)
        pred = model(xt, t, self.conditions(batch), layout=layout, given=given, drop=drop,
                     layout_video=self.layout_video(batch))
        weight = (~g6).float()
        if cfg.detail_weight > 0:
            weight = weight * (1.0 + cfg.detail_weight * batch["detail_mask"][:, :, :, None].float())  # b v t' 1 h' w'
        loss = flow_loss(pred.float(), velocity_target(x0, noise), weight)
        return {"loss": loss, "given_frac": given[:, 0].float().mean(), "time": t.mean()}

    def layout_video(self, batch: dict) -> torch.Tensor | None:
        """The layout video ``b v T 3 H W`` uint8 for a DiT with a layout hint encoder, else None."""
        return batch["layout"] if self.cfg.model.layout_hint else None

    @torch.no_grad()
    def preview(self, model: nn.Module, batch: dict) -> dict[str, np.ndarray]:
        """``sample``: uint8 ``t (3 h) w 3`` video of view 0 of the batch's first sample: real frames,
        layout video, frames generated from noise (seed 0) under every condition."""
        one = {k: v[:1] for k, v in batch.items()}  # tensors and lists (ids, captions)
        x0, layout = self.latents(one)
        cond = self.conditions(one)
        gen = torch.Generator(device=x0.device).manual_seed(0)
        video = self.layout_video(one)
        z = sample(lambda x, t: model(x, t, cond, layout=layout, layout_video=video).float(), tuple(x0.shape), steps=self.cfg.preview_steps,
                   method="heun", shift=self.cfg.time.shift, generator=gen, device=x0.device)  # fmt: skip
        fake = self._decode_view0(z)
        real, lay = (self._frames(one, key, z0) for key, z0 in (("images", x0), ("layout", layout)))
        return {"sample": torch.cat([real, lay, fake.to(real.device)], dim=1).cpu().numpy()}

    def _frames(self, one: dict, key: str, latents: torch.Tensor) -> torch.Tensor:
        """uint8 ``t h w c`` frames of view 0 of ``one[key]``, or the VAE's decoding of its latents
        when the batch came from the latent cache."""
        if key in one:
            return rearrange(one[key][0, 0], "t c h w -> t h w c")
        return self._decode_view0(latents)

    def _decode_view0(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``b v t' c h' w'`` -> uint8 ``t h w c`` frames of sample 0, view 0."""
        video = self.vae.decode(rearrange(latents[:1, 0], "b t c h w -> b c t h w")).float().clamp(-1, 1)
        return ((rearrange(video[0], "c t h w -> t h w c") + 1.0) * 127.5).round().to(torch.uint8)


# ----------------------------------------------------------------------------- presets


def tiny() -> CameraDiTConfig:
    """CPU size: 128x72 clips of 9 frames (12 Hz, a new clip every 4 frames: 528 clips of the
    24-scene SynthTown split) x 6 views on the tiny VAE's 16 x 9 x 3 latents; a 3.3 M-weight DiT,
    ~2.4 s per step (batch 1, one CPU thread, fp32: on this CPU bf16 autocast makes the DiT step
    *slower*, see docs/benchmarks.md), 1500 steps ~ 1 hour with a latent cache
    (``--set latent_cache=DIR``)."""
    return CameraDiTConfig(
        model=dit_presets.tiny(16),
        conditions=condition_presets.tiny(),
        clips=ClipCut(num_frames=9, frame_stride=1, window_stride=4, rate="camera"),
        vae="runs/camera-vae-tiny",
        image_size=(128, 72),
        train=TrainConfig(steps=1500, batch_size=1, lr=2e-4, warmup_steps=50, schedule="cosine", min_lr=2e-5,
                          ema_decay=0.995, precision="fp32", log_every=20, ckpt_every=500, preview_every=500,
                          preview_samples=1, eval_every=0),
    )  # fmt: skip


def paper() -> CameraDiTConfig:
    """GPU size: 800x448 clips of 17 frames x 6 views, the STDiT3-scale DiT on the paper VAE."""
    return CameraDiTConfig(
        model=dit_presets.paper(16),
        conditions=condition_presets.paper(),
        clips=ClipCut(num_frames=17, frame_stride=1, window_stride=4, rate="camera"),
        vae="runs/camera-vae-paper",
        image_size=(800, 448),
        time=TimeConfig(kind="logit_normal", mean=0.0, std=1.0, shift=3.0),
        train=TrainConfig(steps=200_000, batch_size=32, lr=1e-4, warmup_steps=2000, schedule="cosine", min_lr=1e-5,
                          ema_decay=0.9999, precision="bf16", grad_checkpointing=True, log_every=50, ckpt_every=2000,
                          preview_every=2000, preview_samples=1, eval_every=0, num_workers=8),
    )  # fmt: skip


def test() -> CameraDiTConfig:
    """Unit-test size: 64x32 clips of 5 frames x 2 views, the ``test`` DiT (4 latent channels),
    fp32, for a VAE with 4 latent channels (its path must be set)."""
    return CameraDiTConfig(
        model=dit_presets.test(4),
        conditions=ConditionConfig(image_size=(64, 32), tokens=condition_presets.tiny().tokens,
                                   bev=condition_presets.tiny().bev, max_pedestrians=4),
        clips=ClipCut(num_frames=5, frame_stride=1, window_stride=4, rate="camera"),
        vae="runs/camera-vae-test",
        views=("CAM_FRONT", "CAM_FRONT_RIGHT"),
        image_size=(64, 32),
        train=TrainConfig(steps=1, batch_size=1, lr=1e-3, warmup_steps=0, schedule="constant", ema_decay=None,
                          precision="fp32", log_every=1, ckpt_every=1000, preview_every=0, preview_samples=0,
                          eval_every=0),
    )  # fmt: skip


CAMERA_DIT_PRESETS: dict[str, Callable[[], CameraDiTConfig]] = {"tiny": tiny, "paper": paper, "test": test}

CAMERA_DIT_TASK = TaskDef(
    config_type=CameraDiTConfig,
    presets=CAMERA_DIT_PRESETS,
    build=CameraDiTTask,
    description="multi-view camera DiT (rectified flow on frozen camera-VAE latents, layout control branch)",
)
