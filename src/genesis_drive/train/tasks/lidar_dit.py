"""``lidar-dit``: training recipe of the LiDAR branch's diffusion transformer
(:class:`~genesis_drive.models.lidar.dit.LidarDiT`) in the latent space of a trained, frozen LiDAR
AE (task ``lidar-ae``), with camera features from a frozen video VAE (task ``camera-vae``).

Data: clips of ``1 + horizon`` keyframes (2 Hz) of a nuScenes-format root with their keyframe
LIDAR_TOP sweeps and the six camera images (:class:`ClipTask`); keyframe 0 is the reference
(the present), keyframes ``1 .. horizon`` the future to forecast (horizon 6 = 3 s). Per sample
(:class:`ForecastSamples`, picklable, no networks):

* ``occupancy (horizon z H W)`` uint8: each future sweep voxelised in its own sensor frame (the
  AE's grid);
* ``reference_occupancy (horizon z H W)`` uint8: the reference sweep's points moved into each
  future sensor frame by the known ego motion (``sensor_k <- ego_k <- global <- ego_0 <- sensor_0``),
  voxelised: the "copy the past, moved by ego motion" estimate, aligned with the target;
* ``layout (horizon Cl H W)`` float32: the BEV layout raster (:func:`layout.bev.rasterize_bev`:
  map layers, box footprints, headings) of each future keyframe, rasterised in its ego frame and
  resampled at the sensor grid's cell centres (:func:`layout.bev.sample_raster`);
* ``images (v 3 h w)`` uint8: the reference keyframe's camera images (the paper's "gt_img"
  condition), ``intrinsics (v 3 3)`` for ``image_size``, ``cam_to_ego (v 4 4)``, and
  ``grid_to_ego (horizon 4 4)``: each future sensor frame -> the reference keyframe's ego frame
  (where the cameras are), for the lift;
* semantic tokens of the future keyframes: ``box_corners (horizon n 8 3)`` (each keyframe's ego
  frame), ``box_class``, ``box_track``, ``box_mask`` (:func:`layout.tokens.box_tokens`), ``ego
  (horizon 4)``: x, y, yaw in the reference ego frame and speed.

Encoding (frozen networks, :meth:`LidarDiTTask.encode_item`; cached per clip with ``latent_cache``):
``latents = AE.encode(occupancy)``, ``reference = AE.encode(reference_occupancy)`` (normalised,
posterior means) and ``camera`` = the video VAE's latents of the six reference images lifted
into each future sensor grid at the latent resolution (:func:`models.lidar.lift.lift_to_bev`,
mean over the views and heights that see a cell).

Loss (rectified flow, ``t = 0`` data)::

    t ~ time, eps ~ N(0, 1), x_t = (1 - t) latents + t eps
    drop[g] ~ Bernoulli(drop.<g>) | Bernoulli(drop.all)      # groups of LIDAR_DIT_GROUPS
    loss = mean |DiT(x_t, t, cond, drop) - (eps - latents)|^2

Preview: for the batch's first sample, rows k = 1, horizon/2, horizon of BEV height maps (the top
occupied height bin of the AE's occupancy head) of the moved reference | the forecast (sampled
latents) | the real future sweep, all decoded by the AE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...data.clips import ClipIndex, ClipSpec
from ...data.geometry import transform_points
from ...data.latent_cache import FillingLatentDataset, LatentCache, fingerprint
from ...data.nuscenes import NuScenesReader
from ...data.schema import CAMERA_CHANNELS, Clip
from ...diffusion.flow import add_noise, flow_loss, sample_time, velocity_target
from ...diffusion.samplers import sample
from ...errors import ConfigError, DataError
from ...layout.bev import BEV_MAP_LAYERS, BevConfig, BevGrid, rasterize_bev, sample_raster
from ...layout.conditions import ego_speed
from ...layout.frames import clip_cameras, frame_map
from ...layout.tokens import TokenConfig, box_tokens
from ...models.camera.vae import VideoVAE
from ...models.lidar import dit as dit_presets
from ...models.lidar.ae import LidarAE
from ...models.lidar.dit import LIDAR_DIT_GROUPS, LidarDiT, LidarDiTConfig
from ...models.lidar.lift import LiftConfig, lift_to_bev
from ...models.lidar.voxel import BEVGrid, voxelize
from ..checkpoint import load_run_model
from ..config import TrainConfig
from ..task import TaskDef
from .camera_dit import TimeConfig
from .camera_vae import CameraVAEConfig
from .clip_task import ClipCut, ClipTask, scene_split
from .lidar_ae import LIDAR, LidarAERunConfig, bev_image

__all__ = [
    "LidarDropConfig",
    "LidarDiTRunConfig",
    "ForecastSamples",
    "ForecastEncoder",
    "dit_conditions",
    "LidarDiTTask",
    "cell_centres",
    "move_points",
    "sample_lidar_drop",
    "LIDAR_DIT_PRESETS",
    "LIDAR_DIT_TASK",
]


@dataclass(frozen=True)
class LidarDropConfig:
    """Condition dropout per sample: one probability per group of
    :data:`~genesis_drive.models.lidar.dit.LIDAR_DIT_GROUPS`, and ``all`` (every group together)."""

    reference: float = 0.1
    layout: float = 0.1
    camera: float = 0.1
    boxes: float = 0.1
    ego: float = 0.1
    caption: float = 0.1
    all: float = 0.05

    def __post_init__(self) -> None:
        for name in (*LIDAR_DIT_GROUPS, "all"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"drop.{name} must be a probability in [0, 1], got {p}")


def sample_lidar_drop(b: int, drop: LidarDropConfig, device=None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Drop masks ``group -> (b,)`` bool: each group with its own probability, all with ``drop.all``."""
    every = torch.rand(b, generator=generator, device=device) < drop.all
    return {g: (torch.rand(b, generator=generator, device=device) < getattr(drop, g)) | every for g in LIDAR_DIT_GROUPS}


@dataclass(frozen=True)
class LidarDiTRunConfig:
    """Run config of the ``lidar-dit`` task.

    model: the DiT (its channels must match the AE's latents, the layout raster and the camera
    VAE's latents). ae: lidar-ae run or (calibrated) checkpoint directory. vae: camera-vae run or
    checkpoint directory for the camera features ("" = no camera features; then
    ``model.camera_channels`` must be 0). horizon: future keyframes per sample (6 = 3 s at 2 Hz).
    views / image_size: cameras and the (width, height) their images are resized to for the
    VAE. map_layers / classes: BEV raster channels. max_boxes: box token slots per keyframe.
    lift: the camera -> BEV lift. drop: condition dropout. time: training time distribution.
    sample_steps: Euler steps of previews. latent_cache: folder of the encoded training clips
    ("" = encode every step). val_scenes: last scenes of the root (by name) left out of training.
    """

    model: LidarDiTConfig = field(default_factory=lambda: dit_presets.tiny(8, len(BEV_MAP_LAYERS) + 12, 16))
    ae: str = "runs/lidar-ae-tiny"
    vae: str = "runs/camera-vae-tiny"
    horizon: int = 6
    views: tuple[str, ...] = CAMERA_CHANNELS
    image_size: tuple[int, int] = (128, 72)
    map_layers: tuple[str, ...] = BEV_MAP_LAYERS
    max_boxes: int = 32
    lift: LiftConfig = field(default_factory=LiftConfig)
    drop: LidarDropConfig = field(default_factory=LidarDropConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    sample_steps: int = 20
    latent_cache: str = ""
    val_scenes: int = 1
    clips: ClipCut = field(default_factory=lambda: ClipCut(num_frames=7, rate="keyframe", lidar="keyframe"))
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.ae:
            raise ConfigError("ae must name a trained lidar-ae run or checkpoint directory")
        if self.horizon < 1:
            raise ConfigError(f"horizon must be >= 1 keyframes, got {self.horizon}")
        if self.clips.num_frames != self.horizon + 1 or self.clips.rate != "keyframe" or self.clips.lidar != "keyframe":
            raise ConfigError(f"clips must be {self.horizon + 1} keyframes (rate 'keyframe', lidar 'keyframe') for horizon "
                              f"{self.horizon}, got num_frames={self.clips.num_frames}, rate={self.clips.rate!r}, lidar={self.clips.lidar!r}")  # fmt: skip
        if bool(self.vae) != bool(self.model.camera_channels):
            raise ConfigError(f"model.camera_channels ({self.model.camera_channels}) must be > 0 exactly when vae is set "
                              f"(vae={self.vae!r})")  # fmt: skip
        if self.model.layout_channels != self.bev_config().num_channels:
            raise ConfigError(f"model.layout_channels {self.model.layout_channels} must equal the BEV raster's "
                              f"{self.bev_config().num_channels} channels (map_layers + box classes + 2 headings)")  # fmt: skip
        if self.sample_steps < 1 or self.val_scenes < 0:
            raise ConfigError(f"sample_steps must be >= 1 and val_scenes >= 0, got {self.sample_steps}, {self.val_scenes}")

    def bev_config(self, grid: BevGrid | None = None) -> BevConfig:
        """The layout raster's channels (on ``grid``, or a placeholder grid)."""
        return BevConfig(grid=grid or BevGrid(), map_layers=self.map_layers, line_width=0.5, supersample=2)


# ----------------------------------------------------------------------------- geometry


def move_points(points: np.ndarray, src_to_dst: np.ndarray) -> np.ndarray:
    """Points ``(n, >= 3)`` with x, y, z moved by a 4x4 transform (other columns kept), float32."""
    out = np.array(points, dtype=np.float32, copy=True)
    out[:, :3] = transform_points(src_to_dst, points[:, :3])
    return out


def cell_centres(grid: BEVGrid, z: float = 0.0) -> np.ndarray:
    """Sensor-frame points ``(rows, cols, 3)`` of the BEV cells' centres at height ``z`` metres
    (rows along x, columns along y, :mod:`models.lidar.voxel`)."""
    r = grid.resolution
    x = grid.x_range[0] + (np.arange(grid.rows) + 0.5) * r
    y = grid.y_range[0] + (np.arange(grid.cols) + 0.5) * r
    xx, yy = np.meshgrid(x, y, indexing="ij")
    return np.stack([xx, yy, np.full_like(xx, z)], axis=-1)


class ForecastSamples:
    """Clip of ``1 + horizon`` keyframes -> the sample of the module docstring (of the camera
    images only keyframe 0's are read, so clips loaded with ``image_frames=1`` suffice). Picklable."""

    def __init__(self, grid: BEVGrid, bev: BevConfig, tokens: TokenConfig, horizon: int):
        self.grid, self.tokens, self.horizon = grid, tokens, horizon
        # an ego-frame raster grid that covers the sensor grid wherever the sensor sits on the ego
        half = max(abs(v) for v in (*grid.x_range, *grid.y_range)) + 4.0
        half = np.ceil(half / grid.resolution) * grid.resolution
        self.bev = BevConfig(grid=BevGrid((-half, half), (-half, half), grid.resolution), map_layers=bev.map_layers,
                             classes=bev.classes, line_width=bev.line_width, supersample=bev.supersample, heading=bev.heading)  # fmt: skip

    def __call__(self, clip: Clip) -> dict[str, torch.Tensor]:
        n = self.horizon + 1
        if clip.num_frames != n or len(clip.lidar) != n:
            raise DataError(f"clip {clip.clip_id} has {clip.num_frames} keyframes and {len(clip.lidar)} {LIDAR} sweeps; "
                            f"forecasting needs {n} of each", None, "clips.num_frames")  # fmt: skip
        l2e = np.asarray(clip.lidar_to_ego, dtype=np.float64)
        e2g = np.asarray(clip.lidar_ego_to_global, dtype=np.float64)
        sensor_to_global = [e2g[k] @ l2e for k in range(n)]
        g2s = [np.linalg.inv(m) for m in sensor_to_global]
        ego0_inv = np.linalg.inv(e2g[0])
        future = range(1, n)
        sweeps = [torch.from_numpy(np.ascontiguousarray(clip.lidar[k], dtype=np.float32)) for k in future]
        moved = [torch.from_numpy(move_points(clip.lidar[0], g2s[k] @ sensor_to_global[0])) for k in future]
        out = {
            "occupancy": voxelize(self.grid, sweeps).to(torch.uint8),
            "reference_occupancy": voxelize(self.grid, moved).to(torch.uint8),
        }
        centres = cell_centres(self.grid).reshape(-1, 3)
        layout = []
        for k in future:
            raster = rasterize_bev(frame_map(clip, k), clip.boxes[k], self.bev)
            xy = centres @ l2e[:3, :3].T + l2e[:3, 3]
            layout.append(sample_raster(raster, self.bev.grid, xy[:, :2]).reshape(-1, self.grid.rows, self.grid.cols))
        out["layout"] = torch.from_numpy(np.stack(layout)).float()
        cams = clip_cameras(clip, None)
        out["images"] = torch.from_numpy(np.ascontiguousarray(clip.images[0].transpose(0, 3, 1, 2)))  # v 3 h w
        out["intrinsics"] = torch.from_numpy(np.stack([c.intrinsics for c in cams])).float()
        out["cam_to_ego"] = torch.from_numpy(np.stack([c.cam_to_ego for c in cams])).float()
        out["grid_to_ego"] = torch.from_numpy(np.stack([ego0_inv @ sensor_to_global[k] for k in future])).float()
        boxes = box_tokens(clip, self.tokens)
        for key in ("box_corners", "box_class", "box_track", "box_mask"):
            out[key] = boxes[key][1:]
        traj = np.asarray(clip.ego_trajectory, dtype=np.float64)
        speed = ego_speed(traj[:, :2], clip.timestamps)
        out["ego"] = torch.from_numpy(np.concatenate([traj, speed[:, None]], axis=1)[1:]).float()
        return out


#: Sample keys the DiT reads as conditions (after encoding).
_CONDITIONS = ("reference", "layout", "camera", "box_corners", "box_class", "box_track", "box_mask", "ego")


class ForecastEncoder:
    """The frozen networks' part of a sample: ``encode(batch)`` turns :class:`ForecastSamples`
    batches into the DiT's inputs (``latents``, ``reference``, ``camera``; module docstring).
    Shared by the task and the forecast generator (:mod:`genesis_drive.generate.lidar`)."""

    def __init__(self, ae: LidarAE, vae: VideoVAE | None, lift: LiftConfig):
        self.ae, self.vae = ae, vae
        self.lift_config = replace(lift, out_stride=ae.cfg.down_factor)  # onto the latent grid
        self.grid = ae.cfg.grid

    @property
    def version(self) -> str:
        """The frozen networks' versions (a latent-cache key)."""
        return self.ae.version + ("-" + self.vae.version if self.vae is not None else "")

    @torch.no_grad()
    def encode(self, batch: dict) -> dict[str, torch.Tensor]:
        """Batched samples (``b ...``) -> ``latents``, ``reference``, ``camera`` (``b horizon c h w``,
        float32, normalised) plus the other tensors; already encoded batches are returned as they are."""
        if "latents" in batch:
            return batch
        out = {k: v for k, v in batch.items() if k not in ("occupancy", "reference_occupancy", "images")}
        b, k = batch["occupancy"].shape[:2]
        with torch.autocast(batch["occupancy"].device.type, enabled=False):
            enc = lambda occ: self.ae.encode(occ.flatten(0, 1).float()).unflatten(0, (b, k)).float()  # noqa: E731
            out["latents"] = enc(batch["occupancy"])
            out["reference"] = enc(batch["reference_occupancy"])
            if self.vae is not None:
                out["camera"] = self.lift(batch)
        return out

    def lift(self, batch: dict) -> torch.Tensor:
        """Video VAE latents of the reference images lifted into each future sensor grid:
        ``(b horizon c h w)`` at the LiDAR latent resolution."""
        images = batch["images"]  # b v 3 h w uint8
        b, v = images.shape[:2]
        x = images.flatten(0, 1).float().div(127.5).sub(1.0)[:, :, None]  # (b v) 3 1 h w: one-frame videos
        feats = self.vae.encode(x)[:, :, 0].float().unflatten(0, (b, v))  # b v c fh fw
        k = batch["grid_to_ego"].shape[1]
        rep = lambda t: t[:, None].expand(b, k, *t.shape[1:]).flatten(0, 1)  # noqa: E731
        size = (images.shape[-1], images.shape[-2])
        bev, _ = lift_to_bev(rep(feats), rep(batch["intrinsics"]), rep(batch["cam_to_ego"]), batch["grid_to_ego"].flatten(0, 1),
                             size, self.grid, self.lift_config)  # fmt: skip
        return bev.unflatten(0, (b, k))

    def encode_item(self, item: dict) -> tuple[dict, dict]:
        """One sample -> ``(tensors, extra)`` for the latent cache (its encoded form)."""
        dev = next(self.ae.parameters()).device
        enc = self.encode({k: v[None].to(dev) for k, v in item.items() if isinstance(v, torch.Tensor)})
        tensors = {k: v[0].cpu() for k, v in enc.items()}
        extra = {k: v for k, v in item.items() if not isinstance(v, torch.Tensor) and k != "clip_id" and v is not None}
        return tensors, extra


def dit_conditions(batch: dict) -> dict[str, torch.Tensor]:
    """The DiT's condition dict of an encoded batch (a manifest's caption embedding becomes
    ``caption_global``)."""
    cond = {k: batch[k] for k in _CONDITIONS if k in batch}
    emb = batch.get("caption_embedding")
    if isinstance(emb, torch.Tensor):
        cond["caption_global"] = emb.float()
    return cond


# ----------------------------------------------------------------------------- task


class LidarDiTTask(ClipTask):
    """Trains :class:`LidarDiT` on AE latents of keyframe sweep sequences (module docstring)."""

    name = "lidar-dit"
    root_needs = "a nuScenes-format root with LIDAR_TOP keyframe sweeps and the cameras of `views`"
    cfg: LidarDiTRunConfig
    preview_fps = 2.0

    def __init__(self, cfg: LidarDiTRunConfig, data_root: Path | None):
        super().__init__(cfg, data_root)
        self.ae, ae_cfg, self.ae_info = load_run_model(cfg.ae, LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")
        self.ae.requires_grad_(False)
        if ae_cfg.model.latent_channels != cfg.model.latent_channels or ae_cfg.model.down_factor != cfg.model.layout_stride:
            raise ConfigError(f"the LiDAR AE at {cfg.ae} has {ae_cfg.model.latent_channels} latent channels and down factor "
                              f"{ae_cfg.model.down_factor}; model.latent_channels / layout_stride are "
                              f"{cfg.model.latent_channels} / {cfg.model.layout_stride}")  # fmt: skip
        self.grid = ae_cfg.model.grid
        self.vae = None
        if cfg.vae:
            self.vae, vae_cfg, self.vae_info = load_run_model(cfg.vae, CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
            self.vae.requires_grad_(False)
            if vae_cfg.model.latent_channels != cfg.model.camera_channels:
                raise ConfigError(f"the camera VAE at {cfg.vae} has {vae_cfg.model.latent_channels} latent channels; "
                                  f"model.camera_channels is {cfg.model.camera_channels}")  # fmt: skip
        self.encoder = ForecastEncoder(self.ae, self.vae, cfg.lift)

    # -- data ---------------------------------------------------------------------------------
    def clip_spec(self) -> ClipSpec:
        return self.clips.spec(self.cfg.views, self.cfg.image_size, lidar="keyframe")

    def clip_index(self):
        """Training clips: the root's scenes but the last ``val_scenes`` (by name); camera images
        are read for the reference keyframe only (the only ones :class:`ForecastSamples` uses)."""
        reader = NuScenesReader(self.data_root)
        train, _ = scene_split(reader, self.cfg.val_scenes)
        index = ClipIndex(reader, self.clip_spec(), scenes=train, manifest=self.clips.manifest, image_frames=1)
        if len(index) == 0:
            raise DataError(f"no clips of {self.cfg.horizon + 1} keyframes with sweeps to train on", self.data_root)
        return index

    def make_transform(self, reader: NuScenesReader) -> ForecastSamples:
        cfg = self.cfg
        return ForecastSamples(self.grid, cfg.bev_config(), TokenConfig(max_boxes=cfg.max_boxes), cfg.horizon)

    def train_dataset(self):
        base = super().train_dataset()
        if not self.cfg.latent_cache:
            return base
        cfg = self.cfg
        cache = LatentCache(cfg.latent_cache, self.encoder.version,
                            fingerprint(self.clip_spec(), cfg.bev_config(), cfg.max_boxes, cfg.lift, cfg.clips.manifest))  # fmt: skip
        ids = [base.index.refs[i].clip_id for i in range(len(base))]
        return FillingLatentDataset(base, ids, cache, self.encoder.encode_item)

    # -- training -----------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return LidarDiT(self.cfg.model)

    def frozen_modules(self) -> dict[str, nn.Module]:
        return {"ae": self.ae, **({"vae": self.vae} if self.vae is not None else {})}

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        enc = self.encoder.encode(batch)
        x0 = enc["latents"].float()
        b, dev = x0.shape[0], x0.device
        tc = cfg.time
        t = sample_time(b, kind=tc.kind, mean=tc.mean, std=tc.std, shift=tc.shift, device=dev)
        noise = torch.randn_like(x0)
        drop = sample_lidar_drop(b, cfg.drop, device=dev)
        pred = model(add_noise(x0, noise, t), t, dit_conditions(enc), drop=drop)
        return {"loss": flow_loss(pred.float(), velocity_target(x0, noise)), "time": t.mean()}

    @torch.no_grad()
    def preview(self, model: nn.Module, batch: dict) -> dict[str, np.ndarray]:
        """``forecast`` PNG (module docstring)."""
        enc = self.encoder.encode({k: v[:1] for k, v in batch.items()})
        cond = dit_conditions(enc)
        x0 = enc["latents"].float()
        gen = torch.Generator(device=x0.device).manual_seed(0)
        z = sample(lambda x, t: model(x, t, cond).float(), tuple(x0.shape), steps=self.cfg.sample_steps, method="euler",
                   shift=self.cfg.time.shift, generator=gen, device=x0.device)  # fmt: skip
        k = x0.shape[1]
        rows = []
        for j in sorted({0, k // 2 - 1 if k > 1 else 0, k - 1}):
            imgs = [self._occupied(enc["reference"][:, j]), self._occupied(z[:, j]), self._occupied(x0[:, j])]
            rows.append(np.concatenate([x for im in imgs for x in (im, np.full((im.shape[0], 4), 128, np.uint8))][:-1], axis=1))
        sep = np.full((4, rows[0].shape[1]), 128, np.uint8)
        img = np.concatenate([x for r in rows for x in (r, sep)][:-1], axis=0)
        return {"forecast": np.repeat(img[..., None], 3, axis=-1)}

    def _occupied(self, z: torch.Tensor) -> np.ndarray:
        """BEV height map of the AE occupancy head (logit > 0) on normalised latents ``(1 c h w)``:
        the top occupied height bin per cell, brighter = higher (black = empty); forward up."""
        occ = self.ae.split(self.ae.decode(z.float()))[1][0] > 0  # z H W
        bins = torch.arange(1, occ.shape[0] + 1, device=occ.device).reshape(-1, 1, 1)
        top = (occ * bins).amax(dim=0).float() / occ.shape[0]
        return bev_image(self.grid, top)


# ----------------------------------------------------------------------------- presets


def tiny() -> LidarDiTRunConfig:
    """CPU size: the tiny DiT (width 96) on the tiny AE's 8 x 32 x 32 latents, 6 future keyframes,
    camera features from the tiny video VAE (16 channels) at 128 x 72, batch 2."""
    return LidarDiTRunConfig(
        model=replace(dit_presets.tiny(8, len(BEV_MAP_LAYERS) + 12, 16), width=96, heads=4),
        ae="runs/lidar-ae-tiny",
        vae="runs/camera-vae-tiny",
        train=TrainConfig(steps=1500, batch_size=2, lr=3e-4, warmup_steps=50, schedule="cosine", min_lr=3e-5,
                          ema_decay=0.995, precision="fp32", log_every=20, ckpt_every=250, preview_every=500,
                          preview_samples=1, eval_every=0),
    )  # fmt: skip


def paper() -> LidarDiTRunConfig:
    """GPU size: the paper DiT on the paper AE's 16 x 32 x 32 latents, camera features from the paper
    video VAE at 800 x 448."""
    return LidarDiTRunConfig(
        model=dit_presets.paper(16, len(BEV_MAP_LAYERS) + 12, 16),
        ae="runs/lidar-ae-paper",
        vae="runs/camera-vae-paper",
        image_size=(800, 448),
        max_boxes=64,
        train=TrainConfig(steps=100_000, batch_size=32, lr=1e-4, warmup_steps=2000, schedule="cosine", min_lr=1e-5,
                          ema_decay=0.9999, precision="bf16", log_every=50, ckpt_every=2000, preview_every=2000,
                          preview_samples=1, eval_every=0, num_workers=8),
    )  # fmt: skip


LIDAR_DIT_PRESETS: dict[str, Callable[[], LidarDiTRunConfig]] = {"tiny": tiny, "paper": paper}

LIDAR_DIT_TASK = TaskDef(
    config_type=LidarDiTRunConfig,
    presets=LIDAR_DIT_PRESETS,
    build=LidarDiTTask,
    description="LiDAR DiT (rectified flow on frozen LiDAR-AE latents: forecast future sweeps from a reference sweep, layout, cameras)",
)
