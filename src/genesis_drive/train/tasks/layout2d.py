"""``layout2d``: the per-camera semantic segmentation evaluator (layout faithfulness 2D).

Samples are the keyframe camera images of a SynthTown root that carry camera buffers
(``ROOT/synthtown/buffers/<scene>/<CHANNEL>/<timestamp>.npz``, see ``docs/synthtown.md``). The
truth is the buffers' ``material`` (and ``instance``) map turned into :data:`LAYOUT2D_CLASSES` by
:func:`material_to_class`; the buffers hold the true (fault-free) scene, the JPEGs may carry
injected faults (images of the kinds in ``data.skip_faults`` are left out of training).

Geometry: an image is resized to ``model.image_size`` as :func:`genesis_drive.data.clips.resize_crop`
does (cover, then centre-crop; area interpolation when shrinking; a plain resize for 16:9 inputs at
a 16:9 size); its labels follow the same mapping and are sampled by nearest neighbour at the
centres of the logit cells (:func:`resize_crop_labels`), so labels and pixels stay aligned at any
``output_stride``. Training augmentation: horizontal flip, a random zoom crop, colour jitter and
occasional Gaussian blur (the same crop and flip for image and labels).

Loss: cross-entropy (optional per-class weights) + ``dice_weight`` x (1 - soft Dice averaged over
the classes present in the batch; Dice is computed over the whole micro-batch, as the metric
pools intersections and unions over images). Validation (``evaluate``): per-class IoU and mIoU
over :data:`SCORED_CLASSES` on the held-out scenes of the root (every ``round(1/val_fraction)``-th
scene by name).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ...data.clips import resize_crop
from ...data.nuscenes import NuScenesReader, read_image
from ...data.schema import CAMERA_CHANNELS
from ...errors import ConfigError, DataError
from ...models.evaluators.layout2d import LAYOUT2D_CLASSES, LAYOUT2D_PALETTE, SCORED_CLASSES, Layout2DNet, Layout2DNetConfig
from ...world.generate import buffer_path
from ...world.mesh import Material
from ..config import TrainConfig
from ..distributed import DistEnv, all_reduce_sum, shard_indices
from ..task import Task, TaskDef

__all__ = [
    "LAYOUT2D_TASK",
    "PRESETS",
    "KeyframeCamera",
    "Layout2DAugmentConfig",
    "Layout2DConfig",
    "Layout2DDataConfig",
    "Layout2DFrames",
    "Layout2DLossConfig",
    "Layout2DTask",
    "colorize",
    "confusion_matrix",
    "iou_from_confusion",
    "keyframe_cameras",
    "material_to_class",
    "mean_iou",
    "preview_grid",
    "read_class_map",
    "resize_crop_labels",
    "split_by_scene",
]

NUM_CLASSES = len(LAYOUT2D_CLASSES)
_C = {name: i for i, name in enumerate(LAYOUT2D_CLASSES)}

#: Material -> class; LAMP is decided by the instance id (vehicle head/tail lamps carry their
#: vehicle's instance, street and signal lamps are scenery, instance 0).
_MATERIAL_CLASS: dict[Material, str] = {
    Material.SKY: "other",
    Material.ROAD: "road",
    Material.LANE_MARKING: "lane_marking",
    Material.SIDEWALK: "sidewalk",
    Material.CROSSING: "lane_marking",
    Material.TERRAIN: "other",
    Material.BUILDING: "other",
    Material.VEGETATION: "other",
    Material.POLE: "other",
    Material.VEHICLE_BODY: "vehicle",     # body, trim, tyres
    Material.VEHICLE_GLASS: "vehicle",
    Material.LICENSE_PLATE: "vehicle",
    Material.LAMP: "other",               # scenery lamps; vehicle lamps below
    Material.PEDESTRIAN: "pedestrian",
    Material.CYCLIST: "cyclist",          # the bicycle and its rider
    Material.BARRIER: "other",            # cones and construction barriers
}
_LUT = np.array([_C[_MATERIAL_CLASS[Material(m)]] for m in range(len(Material))], dtype=np.uint8)


def material_to_class(material: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """SynthTown buffers -> class indices into :data:`LAYOUT2D_CLASSES` (uint8, same shape).

    material: uint8 :class:`~genesis_drive.world.mesh.Material` values; instance: instance ids
    (0 = scenery). Vehicle lamps (LAMP with an instance) are ``vehicle``; a material value outside
    the enum raises ValueError.
    """
    material = np.asarray(material)
    instance = np.asarray(instance)
    if material.shape != instance.shape:
        raise ValueError(f"material {material.shape} and instance {instance.shape} maps differ in shape")
    if material.size and int(material.max()) >= len(_LUT):
        raise ValueError(f"material value {int(material.max())} is not a Material (0..{len(_LUT) - 1})")
    out = _LUT[material]
    out[(material == Material.LAMP) & (instance > 0)] = _C["vehicle"]
    return out


def read_class_map(path: str | Path) -> np.ndarray:
    """The class map (H, W) uint8 of one keyframe camera buffer file (``material`` + ``instance``)."""
    path = Path(path)
    try:
        with np.load(path) as data:
            if "material" not in data or "instance" not in data:
                raise DataError(f"buffer lacks {'material' if 'material' not in data else 'instance'} "
                                f"(expected arrays depth, instance, material)", path, "material")  # fmt: skip
            material, instance = data["material"], data["instance"]
    except FileNotFoundError:
        raise DataError("camera buffer file not found (a SynthTown root written with buffers?)", path) from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"unreadable camera buffer ({e})", path) from None
    if material.ndim != 2 or material.shape != instance.shape:
        raise DataError(f"material {material.shape} / instance {instance.shape} must be equal (H, W) maps", path, "material")
    try:
        return material_to_class(material, instance)
    except ValueError as e:
        raise DataError(str(e), path, "material") from None


# ----------------------------------------------------------------------------- keyframe cameras of a root


@dataclass(frozen=True)
class KeyframeCamera:
    """One keyframe camera image of a root and where its buffer would be.

    keyframe: index of the sample within its scene (0-based); num_keyframes: samples in the scene.
    """

    scene: str
    sample_token: str
    channel: str
    sd_token: str
    timestamp: int                 # microseconds
    image: Path
    buffer: Path
    keyframe: int
    num_keyframes: int
    size: tuple[int, int]          # (width, height) pixels of the image, as recorded


def keyframe_cameras(reader: NuScenesReader, channels: Sequence[str] = CAMERA_CHANNELS) -> list[KeyframeCamera]:
    """Every keyframe image of ``channels`` in the root, ordered by scene name, keyframe, channel.

    A sample without one of ``channels`` raises DataError.
    """
    out = []
    root = reader.root
    for scene_token in sorted(reader.scene_tokens(), key=reader.scene_name):
        name = reader.scene_name(scene_token)
        samples = reader.sample_tokens(scene_token)
        for k, sample_token in enumerate(samples):
            data = reader.nusc.get("sample", sample_token)["data"]
            for channel in channels:
                if channel not in data:
                    raise DataError(f"sample {sample_token} of scene {name} has no {channel} image", root / reader.version / "sample.json", "data")
                sd = reader.sample_data(data[channel])
                out.append(KeyframeCamera(name, sample_token, channel, sd["token"], int(sd["timestamp"]), root / sd["filename"],
                                          root / buffer_path(name, channel, int(sd["timestamp"])), k, len(samples),
                                          (int(sd["width"]), int(sd["height"]))))  # fmt: skip
    return out


def split_by_scene(cams: Sequence[KeyframeCamera], val_fraction: float, split: str) -> list[KeyframeCamera]:
    """Deterministic scene split: every ``round(1/val_fraction)``-th scene (sorted names) is validation."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if val_fraction <= 0:
        return list(cams) if split == "train" else []
    k = max(2, round(1.0 / val_fraction))
    scenes = sorted({c.scene for c in cams})
    val = {s for i, s in enumerate(scenes) if i % k == k - 1}
    return [c for c in cams if (c.scene in val) == (split == "val")]


# ----------------------------------------------------------------------------- geometry


def resize_crop_labels(labels: np.ndarray, size: tuple[int, int], stride: int = 1) -> np.ndarray:
    """Labels (H, W) following :func:`~genesis_drive.data.clips.resize_crop` to ``size`` (width, height),
    sampled by nearest neighbour at the centres of ``stride`` x ``stride`` cells of the output:
    returns (height / stride, width / stride), cell ``(i, j)`` covering output pixels
    ``[stride i, stride (i + 1)) x [stride j, stride (j + 1))``."""
    h, w = labels.shape[:2]
    tw, th = size
    if tw % stride or th % stride:
        raise ValueError(f"size {size} must be divisible by stride {stride}")
    s = max(tw / w, th / h)
    rw, rh = max(tw, int(round(w * s))), max(th, int(round(h * s)))
    left, top = (rw - tw) // 2, (rh - th) // 2
    xs = np.floor((np.arange(tw // stride) * stride + stride / 2 + left) * (w / rw)).astype(np.int64)
    ys = np.floor((np.arange(th // stride) * stride + stride / 2 + top) * (h / rh)).astype(np.int64)
    return np.ascontiguousarray(labels[np.clip(ys, 0, h - 1)][:, np.clip(xs, 0, w - 1)])


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return resize_crop(image, np.eye(3), size)[0]


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class Layout2DAugmentConfig:
    """Training augmentation (image and labels get the same flip and crop).

    enabled: False switches every augmentation off. flip: horizontal flip with probability 1/2. max_zoom: a random crop of 1/z of the frame's width
    and height, z uniform in [1, max_zoom] (1 = none), placed uniformly. brightness / contrast /
    saturation: factors drawn uniformly in [1 - x, 1 + x]. blur_prob: probability of a Gaussian blur
    with sigma uniform in ``blur_sigma`` (output pixels).
    """

    enabled: bool = True
    flip: bool = True
    max_zoom: float = 1.25
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    blur_prob: float = 0.2
    blur_sigma: tuple[float, float] = (0.4, 1.2)

    def __post_init__(self) -> None:
        if self.max_zoom < 1:
            raise ConfigError(f"data.augment.max_zoom must be >= 1, got {self.max_zoom}")
        if not all(0 <= x < 1 for x in (self.brightness, self.contrast, self.saturation)):
            raise ConfigError("data.augment.brightness, contrast and saturation must lie in [0, 1)")
        if not 0 <= self.blur_prob <= 1 or not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ConfigError("data.augment.blur_prob must lie in [0, 1] and blur_sigma be 0 < low <= high")


@dataclass(frozen=True)
class Layout2DDataConfig:
    """Which images train. channels: camera channels. val_fraction: every round(1/f)-th scene is
    validation (0: none). skip_faults: fault kinds (``synthtown_fault.kind``) whose images are left
    out of training and validation. augment: training augmentation."""

    channels: tuple[str, ...] = CAMERA_CHANNELS
    val_fraction: float = 0.125
    skip_faults: tuple[str, ...] = ("dropped_frame",)
    augment: Layout2DAugmentConfig = field(default_factory=Layout2DAugmentConfig)

    def __post_init__(self) -> None:
        if not self.channels:
            raise ConfigError("data.channels must name at least one camera channel")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must lie in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class Layout2DLossConfig:
    """class_weights: cross-entropy weight per class in LAYOUT2D_CLASSES order (empty: all 1).
    dice_weight: weight of the soft-Dice term (0: cross-entropy only)."""

    class_weights: tuple[float, ...] = ()
    dice_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.class_weights and (len(self.class_weights) != NUM_CLASSES or min(self.class_weights) <= 0):
            raise ConfigError(f"loss.class_weights must be {NUM_CLASSES} positive numbers ({', '.join(LAYOUT2D_CLASSES)}) "
                              f"or empty, got {self.class_weights}")  # fmt: skip
        if self.dice_weight < 0:
            raise ConfigError(f"loss.dice_weight must be >= 0, got {self.dice_weight}")


@dataclass(frozen=True)
class Layout2DConfig:
    model: Layout2DNetConfig = field(default_factory=Layout2DNetConfig)
    data: Layout2DDataConfig = field(default_factory=Layout2DDataConfig)
    loss: Layout2DLossConfig = field(default_factory=Layout2DLossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------- dataset


def _jitter(image: np.ndarray, aug: Layout2DAugmentConfig) -> np.ndarray:
    """Colour jitter and blur of an (h, w, 3) float32 image in [0, 1] (torch's global RNG)."""
    u = torch.rand(5).numpy()
    b = 1 + aug.brightness * (2 * u[0] - 1)
    c = 1 + aug.contrast * (2 * u[1] - 1)
    s = 1 + aug.saturation * (2 * u[2] - 1)
    grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    image = grey[..., None] + s * (image - grey[..., None])
    image = (image - image.mean()) * c + image.mean()
    image = image * b
    if u[3] < aug.blur_prob:
        lo, hi = aug.blur_sigma
        image = cv2.GaussianBlur(image, (0, 0), lo + (hi - lo) * float(u[4]))
    return np.clip(image, 0.0, 1.0)


class Layout2DFrames(Dataset):
    """Keyframe images with their class maps: ``{"image": float32 (3, h, w) in [-1, 1],
    "labels": int64 (h / s, w / s)}`` at ``cfg.image_size`` and stride ``cfg.output_stride``."""

    def __init__(self, cams: Sequence[KeyframeCamera], cfg: Layout2DNetConfig, augment: Layout2DAugmentConfig | None = None):
        self.cams = list(cams)
        self.cfg = cfg
        self.augment = augment if augment is not None and augment.enabled else None

    def __len__(self) -> int:
        return len(self.cams)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        cam = self.cams[i]
        image = read_image(cam.image)
        labels = read_class_map(cam.buffer)
        if image.shape[:2] != labels.shape:
            raise DataError(f"image {image.shape[1]}x{image.shape[0]} and buffer {labels.shape[1]}x{labels.shape[0]} "
                            "differ in size", cam.buffer)  # fmt: skip
        aug = self.augment
        if aug is not None:
            h, w = labels.shape
            z = 1 + (aug.max_zoom - 1) * float(torch.rand(()))
            cw, ch = max(1, int(round(w / z))), max(1, int(round(h / z)))
            x0 = int(torch.randint(0, w - cw + 1, ()))
            y0 = int(torch.randint(0, h - ch + 1, ()))
            image, labels = image[y0 : y0 + ch, x0 : x0 + cw], labels[y0 : y0 + ch, x0 : x0 + cw]
            if aug.flip and bool(torch.rand(()) < 0.5):
                image, labels = image[:, ::-1], labels[:, ::-1]
            image, labels = np.ascontiguousarray(image), np.ascontiguousarray(labels)
        size = self.cfg.image_size
        small = _resize_image(image, size).astype(np.float32) / 255.0
        if aug is not None:
            small = _jitter(small, aug)
        target = resize_crop_labels(labels, size, self.cfg.output_stride)
        chw = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)  # h w c -> c h w
        return {"image": chw * 2.0 - 1.0, "labels": torch.from_numpy(target.astype(np.int64))}


# ----------------------------------------------------------------------------- IoU arithmetic


def confusion_matrix(pred: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(K, K) int64 pixel counts, ``[t, p]`` = pixels of true class t predicted as p."""
    p = torch.as_tensor(pred).reshape(-1).long()
    t = torch.as_tensor(truth).reshape(-1).long()
    if p.shape != t.shape:
        raise ValueError(f"prediction and truth differ in size: {tuple(pred.shape)} vs {tuple(truth.shape)}")
    if p.numel() and (min(int(p.min()), int(t.min())) < 0 or max(int(p.max()), int(t.max())) >= num_classes):
        raise ValueError(f"class indices must lie in [0, {num_classes})")
    counts = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu().numpy().astype(np.int64)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU (K,) from a pooled (K, K) confusion matrix; NaN for a class that is neither
    true nor predicted anywhere."""
    conf = np.asarray(conf, dtype=np.float64)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """mIoU over :data:`SCORED_CLASSES` of a pooled confusion matrix (classes with no union skipped;
    NaN when none has one)."""
    iou = iou_from_confusion(conf)[: len(SCORED_CLASSES)]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def colorize(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Class indices (..., H, W) -> uint8 RGB (..., H, W, 3) in :data:`LAYOUT2D_PALETTE`."""
    return np.asarray(LAYOUT2D_PALETTE, dtype=np.uint8)[np.asarray(torch.as_tensor(labels).cpu())]


# ----------------------------------------------------------------------------- task


def _soft_dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice averaged over the classes present (in truth) in the micro-batch; logits b k h w."""
    prob = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)  # b h w k -> b k h w
    inter = (prob * onehot).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return (1 - dice[present]).mean()


class Layout2DTask(Task):
    """Segment keyframe camera images into :data:`LAYOUT2D_CLASSES`; trains :class:`Layout2DNet`."""

    def __init__(self, cfg: Layout2DConfig, data_root: Path):
        self.cfg = cfg
        reader = NuScenesReader(data_root)
        cams = [c for c in keyframe_cameras(reader, cfg.data.channels) if c.buffer.is_file()]
        if not cams:
            raise DataError("no keyframe camera buffers under synthtown/buffers/ (expected a SynthTown root written with "
                            "buffers: genesis-drive world without --no-buffers)", data_root)  # fmt: skip
        skip = set(cfg.data.skip_faults)
        faulty = {r["sample_data_token"] for r in reader.extra_table("synthtown_fault") if r.get("kind") in skip}
        self.cams = [c for c in cams if c.sd_token not in faulty]
        self.train_cams = split_by_scene(self.cams, cfg.data.val_fraction, "train")
        self.val_cams = split_by_scene(self.cams, cfg.data.val_fraction, "val")
        if not self.train_cams:
            raise DataError(f"no training images left after the validation split ({len({c.scene for c in self.cams})} scene(s))", data_root)
        w = cfg.loss.class_weights
        self._weights = torch.tensor(w, dtype=torch.float32) if w else None

    def build_model(self) -> nn.Module:
        return Layout2DNet(self.cfg.model)

    def train_dataset(self) -> Layout2DFrames:
        return Layout2DFrames(self.train_cams, self.cfg.model, self.cfg.data.augment)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        logits = model(batch["image"]).float()
        target = batch["labels"]
        weight = self._weights.to(logits.device) if self._weights is not None else None
        ce = F.cross_entropy(logits, target, weight=weight)
        out = {"ce": ce.detach()}
        loss = ce
        if self.cfg.loss.dice_weight > 0:
            dice = _soft_dice(logits, target)
            loss = loss + self.cfg.loss.dice_weight * dice
            out["dice"] = dice.detach()
        with torch.no_grad():
            out["pixel_acc"] = (logits.argmax(1) == target).float().mean()
        out["loss"] = loss
        return out

    def preview(self, model: nn.Module, batch: dict) -> dict[str, np.ndarray]:
        return {"segmentation": preview_grid(batch["image"], model(batch["image"]).argmax(1), batch["labels"])}

    def evaluate(self, model: nn.Module, env: DistEnv) -> dict[str, float]:
        if not self.val_cams:
            return {}
        val = Layout2DFrames(self.val_cams, self.cfg.model, None)
        idx, weights = shard_indices(len(val), env)
        conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.float64, device=env.device)
        chunk = max(1, self.cfg.train.batch_size // env.world_size)
        for s in range(0, len(idx), chunk):
            items = [val[i] for i in idx[s : s + chunk]]
            x = torch.stack([it["image"] for it in items]).to(env.device)
            pred = model(x).argmax(1).cpu()
            for it, p, wt in zip(items, pred, weights[s : s + chunk]):
                if wt:
                    conf += torch.from_numpy(confusion_matrix(p, it["labels"])).to(conf)
        conf = all_reduce_sum(conf, env).cpu().numpy()
        iou = iou_from_confusion(conf)
        out = {"miou": mean_iou(conf), "pixel_acc": float(np.trace(conf) / conf.sum())}
        out.update({f"iou_{name}": float(iou[k]) for k, name in enumerate(SCORED_CLASSES)})
        return out


def preview_grid(images: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor, pad: int = 2) -> np.ndarray:
    """Rows of image | prediction | truth (colour-coded, upsampled to the image size) as uint8 RGB."""
    n, _, h, w = images.shape
    rgb = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    rows = []
    for i in range(n):
        tiles = [rgb[i]]
        for lab in (pred[i], truth[i]):
            col = colorize(lab)
            tiles.append(cv2.resize(col, (w, h), interpolation=cv2.INTER_NEAREST) if col.shape[:2] != (h, w) else col)
        row = np.concatenate([np.pad(t, ((pad, pad), (pad, pad), (0, 0)), constant_values=255) for t in tiles], axis=1)
        rows.append(row)
    return np.concatenate(rows, axis=0)


def build(cfg: Layout2DConfig, data_root: Path | None) -> Layout2DTask:
    if data_root is None:
        raise ConfigError("task layout2d needs --data ROOT (a SynthTown root with synthtown/buffers/)")
    return Layout2DTask(cfg, Path(data_root))


# ----------------------------------------------------------------------------- presets


def tiny() -> Layout2DConfig:
    """CPU-sized (about 20-40 min on a shared 2-core CPU, one torch thread): SynthTown's native
    256x144 input, five encoder stages, logits at half resolution (128x72); 3000 steps of 16 images."""
    return Layout2DConfig(
        model=Layout2DNetConfig(image_size=(256, 144), widths=(16, 32, 64, 128, 256), output_stride=2, full_res_width=16),
        train=TrainConfig(steps=3000, batch_size=16, lr=2e-3, warmup_steps=100, schedule="cosine", min_lr=5e-5, weight_decay=1e-4,
                          ema_decay=0.998, log_every=25, ckpt_every=500, preview_every=500, eval_every=500, keep_last=2),
    )  # fmt: skip


def paper() -> Layout2DConfig:
    """GPU-sized: 512x288 input, wider U-Net, logits at full resolution."""
    return Layout2DConfig(
        model=Layout2DNetConfig(image_size=(512, 288), widths=(48, 96, 192, 384, 512), output_stride=1, full_res_width=32),
        train=TrainConfig(steps=40_000, batch_size=64, lr=1e-3, warmup_steps=1000, schedule="cosine", min_lr=1e-5, weight_decay=1e-4,
                          ema_decay=0.999, log_every=50, ckpt_every=2000, preview_every=2000, eval_every=2000, num_workers=8),
    )  # fmt: skip


PRESETS = {"tiny": tiny, "paper": paper}

LAYOUT2D_TASK = TaskDef(
    config_type=Layout2DConfig,
    presets=PRESETS,
    build=build,
    description="per-camera semantic segmentation of SynthTown keyframes (layout faithfulness 2D evaluator)",
)
