"""Lens occlusion (an opaque leaf or sticker) and lens dirt (semi-transparent smudges) of one
camera, from a stack of its frames.

Something on the lens stays at the same place in the image while the world moves behind it. An
image formed through it is ``I = (1 - a) S + a c`` (scene ``S``, occluder colour ``c``, opacity
``a``), so every scene-driven variation, in time (frame to frame) and in space (fine detail), is
scaled by ``1 - a``. Over frames spread across a drive (the pipeline takes them from the whole
scene, see :class:`~.worker.ClipWorker`) nearly every part of a healthy image changes.

Two measurements, on frames area-downscaled to ``width`` pixels:

* ``occluded``: on a grid of cells, each compared with its own image *row* (a high quantile of
  the row, which keeps the sky and the road, smooth and steady across the whole width, from
  looking occluded): transmission ``tau = sqrt(detail ratio x temporal-change ratio)`` (detail
  ratio alone when the view is static), and the cell counts as occluded, smoothly, when ``tau`` is
  well below ``tau0`` and the cell is not brighter than its row (a bright sky beside a building is
  smooth too). The mean over cells is the occluded fraction (0..1).
* ``dirt``: smudges are small, soft, roundish blobs: blobs both in the temporal-median image and
  as holes in the (log) temporal-change map. Per pixel, the geometric mean of the two
  determinant-of-Hessian blob responses (scale-normalised, scales ``dirt_scales`` px, holes only
  for the change map); the index is its ``dirt_quantile`` quantile over the image. Straight
  structures (kerbs, horizon, building edges) have no blob response. Needs a changing view and
  many frames (0 otherwise). Its scale was calibrated on SynthTown's smudges.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["OcclusionConfig", "OcclusionMeasures", "dirt_index", "occlusion_evidence", "occlusion_fraction", "occlusion_measures"]


@dataclass(frozen=True)
class OcclusionConfig:
    """Occlusion and dirt test settings (pixels of the downscaled frames; luma in [0, 1]).

    width: frames are area-downscaled to this width first. cell: cell size. row_quantile: the row
    statistic each cell is compared with. tau0, tau_softness: a cell's occlusion evidence is
    ``sigmoid((tau0 - tau) / tau_softness)`` (``tau0_static`` for a view that does not change). luma_ratio: cells brighter than this fraction of
    their row get no evidence. moving_gate: median temporal change (mean ``|Y - median Y|``) above
    which the view counts as changing. dirt_scales / dirt_eps / dirt_quantile: blob scales (Gaussian
    sigma), the floor added to the change map before the log, the quantile taken; with fewer than
    ``dirt_min_frames`` frames the median still shows the scene's own objects and the index is 0.
    """

    width: int = 256
    cell: int = 8
    row_quantile: float = 0.75
    tau0: float = 0.3
    tau0_static: float = 0.15
    tau_softness: float = 0.05
    luma_ratio: float = 0.9
    moving_gate: float = 0.01
    dirt_scales: tuple[float, ...] = (3.0, 5.0)
    dirt_eps: float = 5e-3
    dirt_quantile: float = 0.98
    dirt_min_frames: int = 16


@dataclass(frozen=True)
class OcclusionMeasures:
    """occluded: soft occluded fraction 0..1; dirt: blob index (>= 0; about 0.004 clean, 0.01-0.03 dirty)."""

    occluded: float
    dirt: float


def _cells(a: np.ndarray, cell: int) -> np.ndarray:
    h, w = a.shape
    return cv2.resize(a, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)


def _prepare(y: np.ndarray, cfg: OcclusionConfig) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 3 or y.shape[0] < 1:
        raise ValueError(f"occlusion measures expect luminance frames (t, h, w), got {y.shape}")
    _, h, w = y.shape
    if w > cfg.width:
        size = (cfg.width, max(1, round(h * cfg.width / w)))
        y = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in y])
    return y


def _object_cells(objects: np.ndarray | None, shape: tuple[int, int], cell: int) -> np.ndarray | float:
    """Per-cell fraction covered by annotated objects in the median over frames (0 when None)."""
    if objects is None:
        return 0.0
    o = np.asarray(objects, dtype=np.float32)
    if o.ndim != 3:
        raise ValueError(f"object masks must be (t, h, w), got {o.shape}")
    cover = np.median(o, axis=0)
    cover = cv2.resize(cover, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return _cells(cover, cell)


def _row_ratio(a: np.ndarray, q: float) -> np.ndarray:
    return a / np.maximum(np.quantile(a, q, axis=1, keepdims=True), 1e-4)


def occlusion_evidence(y: np.ndarray, cfg: OcclusionConfig = OcclusionConfig(), objects: np.ndarray | None = None) -> np.ndarray:
    """Per-cell occlusion evidence ``(h/cell w/cell)`` in [0, 1] from luminance frames ``(t h w)``.

    objects: optional ``(t h' w')`` masks of annotated objects (projected 3D boxes) in the same
    frames, any resolution of the same aspect: a big dark vehicle standing beside a stopped ego
    looks like an occluder, so cells an object covers in most frames get no evidence.
    """
    y = _prepare(y, cfg)
    med = np.median(y, axis=0)
    detail = _row_ratio(_cells(np.mean([np.abs(cv2.Laplacian(f, cv2.CV_32F, ksize=3)) for f in y], axis=0), cfg.cell), cfg.row_quantile)
    act = _cells(np.mean(np.abs(y - med[None]), axis=0), cfg.cell)
    if y.shape[0] > 1 and float(np.median(act)) > cfg.moving_gate:
        tau = np.sqrt(np.clip(detail, 0, 1.5) * np.clip(_row_ratio(act, cfg.row_quantile), 0, 1.5))
        tau0 = cfg.tau0
    else:  # a static view: detail alone, weaker evidence, a stricter threshold
        tau, tau0 = np.clip(detail, 0, 1.5), cfg.tau0_static
    not_bright = _row_ratio(_cells(med, cfg.cell), cfg.row_quantile) <= cfg.luma_ratio
    z = np.clip((tau0 - tau) / cfg.tau_softness, -60, 60)
    return (1.0 / (1.0 + np.exp(-z))) * not_bright * (1.0 - _object_cells(objects, y.shape[1:], cfg.cell))


def occlusion_fraction(y: np.ndarray, cfg: OcclusionConfig = OcclusionConfig(), objects: np.ndarray | None = None) -> float:
    """Soft fraction (0..1) of the image judged occluded, from luminance frames ``(t h w)``."""
    return float(occlusion_evidence(y, cfg, objects).mean())


def _blob_response(img: np.ndarray, scales: tuple[float, ...], holes_only: bool) -> np.ndarray:
    """Max over scales of the positive, scale-normalised Hessian determinant (blobs, not edges)."""
    out = np.zeros_like(img)
    for s in scales:
        g = cv2.GaussianBlur(img, (0, 0), s)
        xx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3) * s * s
        yy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3) * s * s
        xy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3) * s * s
        det = xx * yy - xy * xy
        ok = det > 0
        if holes_only:
            ok &= (xx + yy) > 0  # a local minimum
        out = np.maximum(out, np.where(ok, det, 0.0))
    return out


def dirt_index(y: np.ndarray, cfg: OcclusionConfig = OcclusionConfig()) -> float:
    """Lens-dirt blob index from luminance frames ``(t h w)`` (0 when the view does not change)."""
    y = _prepare(y, cfg)
    med = np.median(y, axis=0)
    act = np.mean(np.abs(y - med[None]), axis=0)
    if y.shape[0] < max(2, cfg.dirt_min_frames) or float(np.median(act)) <= cfg.moving_gate:
        return 0.0
    holes = _blob_response(np.log(act + cfg.dirt_eps), cfg.dirt_scales, holes_only=True)
    blobs = _blob_response(med, cfg.dirt_scales, holes_only=False)
    return float(np.quantile(np.sqrt(holes * blobs), cfg.dirt_quantile))


def occlusion_measures(y: np.ndarray, cfg: OcclusionConfig = OcclusionConfig(), objects: np.ndarray | None = None) -> OcclusionMeasures:
    """Both measurements of one camera's frame stack ``(t h w)`` (objects: see :func:`occlusion_evidence`)."""
    return OcclusionMeasures(occlusion_fraction(y, cfg, objects), dirt_index(y, cfg))
