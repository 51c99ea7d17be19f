"""Layout faithfulness: the BEV layout network (``models/evaluators/bev_layout.py``, trained by the
``bev_layout`` task, ``train/tasks/bev_layout.py``) run on generated scenes of known layouts and on
real data, scored against each root's own annotations and map.

Metrics: per-class IoU = sum of intersections / sum of unions over the evaluated samples (not a mean
of per-sample IoUs), mIoU = mean over classes; and a simple BEV vehicle detection mAP: connected
blobs of the vehicle channel become detections (centroid, mean probability as score), matched
greedily by centre distance to ground-truth vehicle centres at 0.5 / 1 / 2 / 4 m (the nuScenes
thresholds), AP = area under the monotone precision envelope, averaged over thresholds.
A target cell is positive when its coverage is >= 0.5; a prediction when its probability is >= 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.clips import ClipIndex, collate_clips
from ..data.nuscenes import NuScenesReader
from ..data.schema import Clip, clip_scene
from ..errors import DataError
from ..layout.bev import BevGrid
from ..models.blocks import to_model_input
from ..models.evaluators.bev_layout import BEV_CLASSES, VEHICLE_CHANNEL, BevLayoutNet
from ..train.checkpoint import load_run_model
from ..train.tasks.bev_layout import BEV_VEHICLES, BevLayoutConfig, BevLayoutTask, BevSamples

__all__ = [
    "DETECTION_THRESHOLDS",
    "LayoutSamples",
    "average_precision",
    "detection_map",
    "iou_counts",
    "iou_from_counts",
    "keyframe_samples",
    "load_bev_model",
    "miou",
    "paired_indices",
    "predict_root",
    "vehicle_blobs",
    "vehicle_centers",
]

#: Centre-distance thresholds (metres) of the detection mAP, as nuScenes detection uses.
DETECTION_THRESHOLDS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)


# ----------------------------------------------------------------------------- metrics


def iou_counts(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample, per-class intersection and union cell counts (n, K) of boolean masks (n, K, H, W)."""
    p, t = (np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a, dtype=bool) for a in (pred, target))
    if p.shape != t.shape or p.ndim != 4:
        raise ValueError(f"pred and target must both be (n, K, H, W), got {p.shape} and {t.shape}")
    return (p & t).sum(axis=(2, 3)).astype(np.int64), (p | t).sum(axis=(2, 3)).astype(np.int64)


def iou_from_counts(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Per-class IoU (K,) = summed intersections / summed unions over samples; NaN where a class never
    occurs in prediction or target."""
    i, u = inter.sum(axis=0).astype(np.float64), union.sum(axis=0).astype(np.float64)
    return np.divide(i, u, out=np.full_like(i, np.nan), where=u > 0)


def vehicle_blobs(prob: np.ndarray, grid: BevGrid, threshold: float = 0.5, min_cells: int = 1) -> np.ndarray:
    """Detections (n, 3) ``x, y, score`` from a vehicle probability map (H, W): 8-connected blobs of
    cells >= ``threshold`` with at least ``min_cells`` cells; centre = probability-weighted centroid
    (ego metres), score = mean probability of the blob."""
    mask = (prob >= threshold).astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    centers = grid.cell_centers()
    out = []
    for k in range(1, n):
        sel = labels == k
        if sel.sum() < min_cells:
            continue
        w = prob[sel]
        xy = (centers[sel] * w[:, None]).sum(0) / w.sum()
        out.append([xy[0], xy[1], float(w.mean())])
    return np.array(out, dtype=np.float64).reshape(-1, 3)


def average_precision(detections: Sequence[np.ndarray], truths: Sequence[np.ndarray], max_distance: float) -> float:
    """AP of centre-point detections over samples: per sample ``detections[i]`` (n, 3) ``x, y, score``
    and ``truths[i]`` (m, 2). Detections, highest score first, take the nearest unmatched truth of
    their sample within ``max_distance`` metres (true positive) or none (false positive). AP = area
    under the monotone (interpolated) precision-recall envelope; NaN when there is no truth."""
    total = sum(len(t) for t in truths)
    if total == 0:
        return float("nan")
    rows = [(d[2], i, d[:2]) for i, dets in enumerate(detections) for d in np.asarray(dets).reshape(-1, 3)]
    rows.sort(key=lambda r: -r[0])
    used = [np.zeros(len(t), dtype=bool) for t in truths]
    tp = np.zeros(len(rows))
    for k, (_, i, xy) in enumerate(rows):
        gt = np.asarray(truths[i]).reshape(-1, 2)
        if len(gt) == 0:
            continue
        d = np.linalg.norm(gt - xy, axis=1)
        d[used[i]] = np.inf
        j = int(np.argmin(d))
        if d[j] <= max_distance:
            used[i][j] = True
            tp[k] = 1
    if len(rows) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / total
    precision = ctp / np.arange(1, len(rows) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    prev = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - prev) * envelope))


def detection_map(detections: Sequence[np.ndarray], truths: Sequence[np.ndarray], thresholds: Sequence[float] = DETECTION_THRESHOLDS) -> dict:
    """Mean AP over centre-distance ``thresholds`` (metres) and the AP at each."""
    aps = {f"AP@{d:g}m": average_precision(detections, truths, d) for d in thresholds}
    vals = [v for v in aps.values() if not math.isnan(v)]
    return {"mAP": float(np.mean(vals)) if vals else float("nan"), **aps}


def vehicle_centers(clip: Clip, t: int, grid: BevGrid) -> np.ndarray:
    """Ego x, y (n, 2) metres of the vehicle boxes of frame ``t`` whose centre lies inside ``grid``."""
    c = np.array([b.center[:2] for b in clip.boxes[t] if b.detection_class in BEV_VEHICLES]).reshape(-1, 2)
    inside = (c[:, 0] >= grid.x_range[0]) & (c[:, 0] < grid.x_range[1]) & (c[:, 1] >= grid.y_range[0]) & (c[:, 1] < grid.y_range[1])
    return c[inside]


def load_bev_model(path: str | Path, *, ema: bool = True) -> tuple[BevLayoutNet, BevLayoutConfig, dict]:
    """The trained BEV layout model (eval mode, CPU), its run config and checkpoint info."""
    return load_run_model(path, BevLayoutConfig, lambda c: BevLayoutNet(c.model), task="bev_layout", ema=ema)


# ----------------------------------------------------------------------------- evaluation over a root


def keyframe_samples(cfg: BevLayoutConfig, root: str | Path) -> tuple[ClipIndex, BevSamples]:
    """Every keyframe of a root (whatever the run's training rate; no manifest) and the training
    sample transform of the run: the model is evaluated on exactly the samples it was trained on."""
    task = BevLayoutTask(cfg, Path(root))
    reader = NuScenesReader(root)
    return ClipIndex(reader, task.clip_spec(rate="keyframe")), task.make_transform(reader)


@dataclass
class LayoutSamples:
    """Per-sample results of the BEV model on one root (n samples)."""

    clip_ids: list[str]
    scenes: list[str]
    inter: np.ndarray            # (n, K) intersection cells
    union: np.ndarray            # (n, K) union cells
    detections: list[np.ndarray] = field(default_factory=list)   # n x (d, 3) x, y, score
    truths: list[np.ndarray] = field(default_factory=list)       # n x (m, 2) x, y


@torch.no_grad()
def predict_root(
    model: BevLayoutNet,
    cfg: BevLayoutConfig,
    root: str | Path,
    *,
    batch_size: int = 8,
    max_samples: int | None = None,
    threshold: float = 0.5,
    device: str | torch.device = "cpu",
    desc: str | None = None,
    images_from: Callable[[list[str]], list[int]] | None = None,
) -> LayoutSamples:
    """Run the model on every keyframe of a nuScenes-format root; IoU counts and detections per frame.

    Ground truth comes from the root's own annotations and map (a generated root carries the layout
    it was generated from). ``images_from(clip ids)`` (optional; the evaluated keyframes' clip ids
    in index order) gives per keyframe the index of the keyframe whose images it is scored with,
    against its own layout (the "layout ignored" control)."""
    from tqdm import tqdm

    index, make = keyframe_samples(cfg, root)
    n = len(index) if max_samples is None else min(len(index), max_samples)
    if n == 0:
        raise DataError("no keyframes to evaluate", root)
    source = images_from([index.refs[i].clip_id for i in range(n)]) if images_from is not None else None
    model = model.to(device).eval()
    out = LayoutSamples([], [], np.zeros((0, len(BEV_CLASSES)), np.int64), np.zeros((0, len(BEV_CLASSES)), np.int64))
    inter, union = [], []
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=desc is None, unit="batch"):
        idx = range(start, min(n, start + batch_size))
        clips = [index.load(i) if source is None else replace(index.load(i), images=index.load(source[i]).images) for i in idx]
        batch = collate_clips([make(c) for c in clips])
        logits = model(to_model_input(batch["images"].to(device)), batch["intrinsics"].to(device), batch["cam_to_ego"].to(device))
        prob = torch.sigmoid(logits.float()).cpu().numpy()
        i, u = iou_counts(prob >= threshold, batch["target"].numpy() >= 0.5)
        inter.append(i)
        union.append(u)
        for c, p in zip(clips, prob):
            out.clip_ids.append(c.clip_id)
            out.scenes.append(clip_scene(c.clip_id))
            out.detections.append(vehicle_blobs(p[VEHICLE_CHANNEL], cfg.model.grid, threshold))
            out.truths.append(vehicle_centers(c, 0, cfg.model.grid))
    out.inter, out.union = np.concatenate(inter), np.concatenate(union)
    return out


def miou(inter: np.ndarray, union: np.ndarray) -> float:
    """Mean over classes of :func:`iou_from_counts` (classes that never occur are left out; NaN if none occurs)."""
    iou = iou_from_counts(inter, union)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def paired_indices(gen: LayoutSamples, ref: LayoutSamples) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(into gen, into ref)`` of the samples whose clip ids both hold (same scene name and
    keyframe index: a generated root that re-renders the reference layouts)."""
    ref_pos = {c: i for i, c in enumerate(ref.clip_ids)}
    pairs = [(i, ref_pos[c]) for i, c in enumerate(gen.clip_ids) if c in ref_pos]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gi, ri = zip(*pairs)
    return np.array(gi), np.array(ri)
