"""Cross-modal consistency: does generated LiDAR agree with the generated images of the same frame?

Two measurements per keyframe (all views), both comparing LiDAR points projected into the images:

1. **Depth agreement** (learned). A small monocular depth network (:class:`DepthNet`), trained on
   SynthTown keyframes with the LiDAR points projected into each image as sparse targets, predicts
   a depth map from each generated image. At every LiDAR point that lands in the image (camera
   depth in ``[min_depth, max_depth]`` metres) the predicted depth ``p`` is read (nearest cell) and
   compared with the point's camera depth ``g`` (along the optical axis):
   ``AbsRel = mean |p - g| / g`` and ``delta1 = fraction with max(p/g, g/p) < 1.25``, pooled over
   all points of all evaluated frames, and again over the points more than ``ground_height``
   metres above the ego ground plane (the ground's depth follows from the camera rig alone, so
   above-ground points carry most of the scene-specific evidence). Images and LiDAR that show the
   same scene score like real data; LiDAR from another frame gives larger AbsRel, lower delta1.
2. **Edge alignment** (model-free). Depth discontinuities of the LiDAR -- a point with a horizontal
   image neighbour (``|du| <= edge_radius`` px, ``|dv| <= 1`` px) more than ``edge_ratio`` times
   farther away, i.e. the silhouette of something in front -- should sit on image edges. Edge
   strength = Sobel gradient magnitude of the grey image, dilated by a 3 x 3 max filter (one pixel
   of slack), divided by the mean edge strength of its image row (discontinuities and edges both
   crowd certain rows -- horizon, lane markings -- in any image). ``EdgeAlign = mean normalised
   edge strength at discontinuity points / mean at all projected points``: about 1 when the LiDAR
   is unrelated to the image, above 1 when object silhouettes coincide with image edges.

The depth network is :class:`~genesis_drive.models.evaluators.depth.DepthNet`, trained by the
``depth`` task (``train/tasks/depth.py``, which also holds the LiDAR-in-image helpers used here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import rearrange
from scipy.spatial import cKDTree

from ..data.clips import ClipIndex, ClipSpec
from ..data.nuscenes import NuScenesReader
from ..data.schema import CAMERA_CHANNELS, clip_scene
from ..errors import DataError
from ..models.blocks import to_model_input
from ..models.evaluators.depth import DepthNet
from ..train.checkpoint import load_run_model
from ..train.tasks.depth import DepthConfig, project_lidar, sample_lidar_ego

__all__ = [
    "ConsistencyScorer",
    "FrameStats",
    "depth_agreement",
    "edge_strength",
    "evaluate_root",
    "frame_consistency",
    "lidar_discontinuities",
    "load_depth_model",
    "pool_stats",
]


# ----------------------------------------------------------------------------- LiDAR against images


def depth_agreement(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """AbsRel, squared relative error, RMSE (m) and delta<1.25 of predicted vs LiDAR depths (m,) metres."""
    p, g = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if p.shape != g.shape or p.ndim != 1 or len(p) == 0 or np.any(g <= 0):
        raise ValueError("depth_agreement needs two equal-length non-empty 1D arrays with positive LiDAR depths")
    ratio = np.maximum(p / g, g / np.maximum(p, 1e-12))
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
    }


def edge_strength(image: np.ndarray) -> np.ndarray:
    """Edge strength (h, w) float32 of an RGB uint8 image: Sobel gradient magnitude of the grey
    image scaled to 0..1, then a 3 x 3 max filter."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.dilate(np.sqrt(gx * gx + gy * gy), np.ones((3, 3), np.uint8))


def lidar_discontinuities(uv: np.ndarray, z: np.ndarray, radius: float, ratio: float) -> np.ndarray:
    """Mask (m,) of projected points that are the near side of a depth discontinuity: some point with
    ``|du| <= radius`` and ``|dv| <= 1`` pixels lies more than ``ratio`` times farther away."""
    out = np.zeros(len(z), dtype=bool)
    if len(z) < 2:
        return out
    tree = cKDTree(np.stack([uv[:, 0] / radius, uv[:, 1]], axis=1))
    pairs = tree.query_pairs(1.0, p=np.inf, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        out[i[z[j] > ratio * z[i]]] = True
        out[j[z[i] > ratio * z[j]]] = True
    return out


@dataclass
class FrameStats:
    """Sums over the LiDAR points of one frame (all views), from which the metrics are pooled.

    Edge sums hold row-normalised edge strength (a point's edge strength divided by the mean edge
    strength of its image row), so the ratio does not reward LiDAR discontinuities for merely
    falling on rows that are busy in every image (horizon, lane markings).
    """

    points: int = 0
    abs_rel: float = 0.0      # sum |p - g| / g
    sq_rel: float = 0.0       # sum (p - g)^2 / g
    sq_err: float = 0.0       # sum (p - g)^2
    delta1: int = 0           # count max(p/g, g/p) < 1.25
    above_points: int = 0     # points higher than ground_height above the ego ground plane
    above_abs_rel: float = 0.0
    above_delta1: int = 0
    edge_all: float = 0.0     # sum of row-normalised edge strength at all projected points
    edge_disc: float = 0.0    # ... at discontinuity points
    disc: int = 0             # discontinuity points

    def add(self, other: FrameStats) -> FrameStats:
        return FrameStats(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))


def frame_consistency(
    depth: np.ndarray,
    edges: np.ndarray,
    intrinsics: np.ndarray,
    cam_to_ego: np.ndarray,
    points_ego: np.ndarray,
    *,
    min_depth: float = 1.0,
    max_depth: float = 80.0,
    ground_height: float = 0.3,
    edge_radius: float = 2.0,
    edge_ratio: float = 1.5,
) -> FrameStats:
    """Consistency sums of one frame.

    depth: predicted depth maps (v, h', w') metres covering images of size (w, h) = edges' size at
    any stride; edges: edge strength (v, h, w) (:func:`edge_strength`); intrinsics (v, 3, 3) for the
    (w, h) images; cam_to_ego (v, 4, 4); points_ego: the frame's LiDAR (N, 3) in its ego frame.
    ground_height: metres; points with ego z above it also count towards the above-ground sums.
    """
    v_n, h, w = edges.shape
    dh, dw = depth.shape[1:]
    st = FrameStats()
    for v in range(v_n):
        uv, z, idx = project_lidar(points_ego, intrinsics[v], cam_to_ego[v], (w, h), min_depth, max_depth)
        if len(z) == 0:
            continue
        col = np.minimum((uv[:, 0] * dw / w).astype(np.int64), dw - 1)
        row = np.minimum((uv[:, 1] * dh / h).astype(np.int64), dh - 1)
        p = depth[v, row, col].astype(np.float64)
        rel = np.abs(p - z) / z
        good = np.maximum(p / z, z / np.maximum(p, 1e-12)) < 1.25
        above = np.asarray(points_ego)[idx, 2] > ground_height
        r, c = np.floor(uv[:, 1]).astype(np.int64), np.floor(uv[:, 0]).astype(np.int64)
        row_mean = edges[v].astype(np.float64).mean(axis=1)
        g = np.divide(edges[v, r, c], row_mean[r], out=np.zeros(len(r)), where=row_mean[r] > 0)
        disc = lidar_discontinuities(uv, z, edge_radius, edge_ratio)
        st = st.add(FrameStats(len(z), float(rel.sum()), float(np.sum((p - z) ** 2 / z)), float(np.sum((p - z) ** 2)), int(good.sum()),
                               int(above.sum()), float(rel[above].sum()), int(good[above].sum()),
                               float(g.sum()), float(g[disc].sum()), int(disc.sum())))  # fmt: skip
    return st


def pool_stats(stats: list[FrameStats]) -> dict[str, float]:
    """Metrics pooled over the points of several frames: AbsRel, SqRel, RMSE (m), delta1, the same
    AbsRel / delta1 over above-ground points, EdgeAlign (NaN where there is nothing to pool)."""
    tot = FrameStats()
    for s in stats:
        tot = tot.add(s)
    nan = float("nan")

    def div(a: float, b: float) -> float:
        return a / b if b else nan

    return {
        "abs_rel": div(tot.abs_rel, tot.points),
        "sq_rel": div(tot.sq_rel, tot.points),
        "rmse": math.sqrt(tot.sq_err / tot.points) if tot.points else nan,
        "delta1": div(tot.delta1, tot.points),
        "abs_rel_above_ground": div(tot.above_abs_rel, tot.above_points),
        "delta1_above_ground": div(tot.above_delta1, tot.above_points),
        "edge_align": div(div(tot.edge_disc, tot.disc), div(tot.edge_all, tot.points)) if tot.disc and tot.edge_all > 0 else nan,
    }


def load_depth_model(path: str | Path, *, ema: bool = True) -> tuple[DepthNet, DepthConfig, dict]:
    """The trained depth network (eval mode, CPU), its run config and checkpoint info."""
    return load_run_model(path, DepthConfig, lambda c: DepthNet(c.model), task="depth", ema=ema)


# ----------------------------------------------------------------------------- evaluation


class ConsistencyScorer:
    """Predicts depth and edge maps of one frame's views (at the network's image size) and scores
    LiDAR point sets against them (:func:`frame_consistency`)."""

    def __init__(self, model: DepthNet, *, ground_height: float = 0.3, edge_radius: float = 2.0, edge_ratio: float = 1.5,
                 device: str | torch.device = "cpu"):  # fmt: skip
        self.model = model.to(device).eval()
        self.device = device
        self.ground_height, self.edge_radius, self.edge_ratio = ground_height, edge_radius, edge_ratio

    @torch.no_grad()
    def maps(self, images: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images (v, h, w, 3) uint8 at the network's image size; intrinsics (v, 3, 3) ->
        depth (v, h/2, w/2) metres and edge strength (v, h, w)."""
        x = to_model_input(torch.from_numpy(rearrange(images, "v h w c -> v c h w").copy()).to(self.device))
        fx = torch.from_numpy(np.asarray(intrinsics)[:, 0, 0]).float().to(self.device)
        depth = self.model(x, fx)[:, 0].float().cpu().numpy()
        return depth, np.stack([edge_strength(im) for im in images])

    def score(self, depth: np.ndarray, edges: np.ndarray, intrinsics: np.ndarray, cam_to_ego: np.ndarray, points_ego: np.ndarray) -> FrameStats:
        m = self.model.cfg
        return frame_consistency(depth, edges, intrinsics, cam_to_ego, points_ego, min_depth=m.min_depth, max_depth=m.max_depth,
                                 ground_height=self.ground_height, edge_radius=self.edge_radius, edge_ratio=self.edge_ratio)  # fmt: skip


def evaluate_root(
    scorer: ConsistencyScorer,
    root: str | Path,
    *,
    views: tuple[str, ...] = CAMERA_CHANNELS,
    max_samples: int | None = None,
    control: bool = True,
    progress: bool = True,
) -> tuple[list[FrameStats], list[FrameStats] | None, list[str]]:
    """Score every keyframe of a nuScenes-format root: its images against its own LIDAR_TOP sweep
    (matched) and, with ``control``, against the sweep of the keyframe half the list away
    (mismatched; a different scene when the root has several, else a distant moment).

    Returns (matched stats, mismatched stats or None, scene name per frame).
    """
    from tqdm import tqdm

    reader = NuScenesReader(root)
    spec = ClipSpec(num_frames=1, window_stride=1, rate="keyframe", views=views, image_size=scorer.model.cfg.image_size, lidar="none")
    index = ClipIndex(reader, spec)
    n = len(index) if max_samples is None else min(len(index), max_samples)
    if n == 0:
        raise DataError("no keyframes to evaluate", root)
    if control and n < 2:
        raise DataError("the mismatched control needs at least two keyframes", root)
    maps, matched, scenes, lidar_src = [], [], [], []
    for i in tqdm(range(n), desc="consistency", disable=not progress, unit="frame"):
        clip = index.load(i)
        depth, edges = scorer.maps(clip.images[0], clip.intrinsics)
        src = (clip.sample_tokens[0], clip.ego_to_global[0])
        matched.append(scorer.score(depth, edges, clip.intrinsics, clip.cam_to_ego, sample_lidar_ego(reader, *src)))
        scenes.append(clip_scene(clip.clip_id))
        if control:
            maps.append((depth, edges, clip.intrinsics, clip.cam_to_ego))
            lidar_src.append(src)
    if not control:
        return matched, None, scenes
    mismatched = []
    for i in tqdm(range(n), desc="consistency control", disable=not progress, unit="frame"):
        mismatched.append(scorer.score(*maps[i], sample_lidar_ego(reader, *lidar_src[(i + n // 2) % n])))
    return matched, mismatched, scenes
