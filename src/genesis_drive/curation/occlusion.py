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
  ratio alone, the largest over ``static_neighbourhood`` cells, when the view is static), and the cell counts as occluded, smoothly, when ``tau`` is
  well below ``tau0`` and the cell is not brighter than its row (a bright sky beside a building is
  smooth too). The mean over cells is the occluded fraction (0..1).
* ``dirt``: smudges are small, soft, roundish blobs that stay put: blobs of the temporal-median
  image whose edges are soft (no sharp edge near them: the world of a street is made of sharp
  edges, windows, kerbs, wheels and crowns, while a smudge is out of focus), that are also holes
  in the (log) temporal-change map (the smudge scales the scene's changes by ``1 - a``). Per
  pixel: ``soft = sqrt(DoH(median)) / (max of the fine gradient magnitude over a window + eps)``
  and ``holes = sqrt(DoH(log change))`` (scale-normalised determinant-of-Hessian blob responses
  at ``dirt_scales`` px, local minima only for the change map), combined as
  ``soft^(1 - w) holes^w``; annotated objects are masked out and the index is the
  ``dirt_quantile`` quantile over the image. Straight structures (kerbs, horizon, building edges)
  have no blob response, and sharp blobs (lit windows, wheels) a strong edge beside them. Needs a
  changing view and many frames (0 otherwise). Its settings were calibrated on SynthTown's
  smudges (seeds 100-102).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["OcclusionConfig", "OcclusionMeasures", "dirt_index", "dirt_map", "occlusion_evidence", "occlusion_fraction", "occlusion_measures"]


@dataclass(frozen=True)
class OcclusionConfig:
    """Occlusion and dirt test settings (pixels of the downscaled frames; luma in [0, 1]).

    width: frames are area-downscaled to this width first. cell: cell size. row_quantile: the row
    statistic each cell is compared with. tau0, tau_softness: a cell's occlusion evidence is
    ``sigmoid((tau0 - tau) / tau_softness)`` (``tau0_static`` for a view that does not change). luma_ratio: cells brighter than this fraction of
    their row get no evidence. moving_gate: median temporal change (mean ``|Y - median Y|``) above
    which the view counts as changing. static_neighbourhood: in a static view a cell's detail is
    the maximum over this many cells square around it (an out-of-focus occluder is smooth over
    its whole extent; the flat-shaded walls between the windows of a building seen by a stopped
    or crawling ego are smooth only up to the nearest window edge, and without change over time
    nothing else tells them apart). dirt_scales / dirt_eps / dirt_quantile: blob scales (Gaussian
    sigma), the floor added to the change map before the log, the quantile taken; with fewer than
    ``dirt_min_frames`` frames the median still shows the scene's own objects and the index is 0.
    dirt_edge_sigma / dirt_edge_window / dirt_edge_eps: the fine gradient magnitude (luma per pixel,
    after a Gaussian of this sigma) whose maximum over a square window of this many pixels divides
    the median's blob response (plus eps). dirt_change_weight: exponent ``w`` of the change-map
    holes in the combined map. dirt_moving_gate: like ``moving_gate``, for the dirt index (lower:
    the soft-blob test of the median needs less change than the occlusion test; an ego that
    crawls through a scene still shows smudges).
    """

    width: int = 256
    cell: int = 8
    row_quantile: float = 0.75
    tau0: float = 0.3
    tau0_static: float = 0.15
    tau_softness: float = 0.05
    luma_ratio: float = 0.9
    moving_gate: float = 0.01
    static_neighbourhood: int = 3
    dirt_scales: tuple[float, ...] = (3.0, 5.0)
    dirt_eps: float = 5e-3
    dirt_quantile: float = 0.995
    dirt_min_frames: int = 16
    dirt_edge_sigma: float = 0.7
    dirt_edge_window: int = 21
    dirt_edge_eps: float = 0.01
    dirt_change_weight: float = 0.3
    dirt_moving_gate: float = 0.005


@dataclass(frozen=True)
class OcclusionMeasures:
    """occluded: soft occluded fraction 0..1; dirt: soft-blob index (>= 0, dimensionless; on SynthTown
    at 256 px about 0.35-1.1 for clean views, 0.65-2.4 for smudged ones)."""

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


def _object_cover(objects: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | float:
    """Per-pixel fraction ``(h w)`` of frames in which annotated objects cover it, as the median over
    frames (0 when None), resized to ``shape``."""
    if objects is None:
        return 0.0
    o = np.asarray(objects, dtype=np.float32)
    if o.ndim != 3:
        raise ValueError(f"object masks must be (t, h, w), got {o.shape}")
    return cv2.resize(np.median(o, axis=0), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _object_cells(objects: np.ndarray | None, shape: tuple[int, int], cell: int) -> np.ndarray | float:
    """Per-cell fraction covered by annotated objects in the median over frames (0 when None)."""
    cover = _object_cover(objects, shape)
    return cover if objects is None else _cells(cover, cell)


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
    detail = _cells(np.mean([np.abs(cv2.Laplacian(f, cv2.CV_32F, ksize=3)) for f in y], axis=0), cfg.cell)
    act = _cells(np.mean(np.abs(y - med[None]), axis=0), cfg.cell)
    if y.shape[0] > 1 and float(np.median(act)) > cfg.moving_gate:
        tau = np.sqrt(np.clip(_row_ratio(detail, cfg.row_quantile), 0, 1.5) * np.clip(_row_ratio(act, cfg.row_quantile), 0, 1.5))
        tau0 = cfg.tau0
    else:  # a static view: detail alone (over a neighbourhood), weaker evidence, a stricter threshold
        near = cv2.morphologyEx(detail, cv2.MORPH_CLOSE, np.ones((cfg.static_neighbourhood, cfg.static_neighbourhood), np.uint8))
        tau, tau0 = np.clip(_row_ratio(near, cfg.row_quantile), 0, 1.5), cfg.tau0_static
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


def _edge_strength(img: np.ndarray, sigma: float, window: int) -> np.ndarray:
    """Maximum over a ``window`` px square of the gradient magnitude (luma per pixel) after a Gaussian of ``sigma`` px."""
    g = cv2.GaussianBlur(img, (0, 0), sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return cv2.dilate(np.hypot(gx, gy), np.ones((window, window), np.uint8))


def dirt_map(y: np.ndarray, cfg: OcclusionConfig = OcclusionConfig(), objects: np.ndarray | None = None) -> np.ndarray | None:
    """Per-pixel soft-blob evidence ``(h w)`` of lens dirt at the downscaled resolution, from
    luminance frames ``(t h w)``; None when the view does not change or has too few frames.
    objects: see :func:`occlusion_evidence` (pixels objects cover in most frames get no evidence)."""
    y = _prepare(y, cfg)
    med = np.median(y, axis=0)
    act = np.mean(np.abs(y - med[None]), axis=0)
    if y.shape[0] < max(2, cfg.dirt_min_frames) or float(np.median(act)) <= cfg.dirt_moving_gate:
        return None
    soft = np.sqrt(_blob_response(med, cfg.dirt_scales, holes_only=False)) / (_edge_strength(med, cfg.dirt_edge_sigma, cfg.dirt_edge_window) + cfg.dirt_edge_eps)
    holes = np.sqrt(_blob_response(np.log(act + cfg.dirt_eps), cfg.dirt_scales, holes_only=True))
    w = cfg.dirt_change_weight
    return soft ** (1.0 - w) * holes**w * (1.0 - _object_cover(objects, med.shape))


def dirt_index(y: np.ndarray, cfg: OcclusionConfig = OcclusionConfig(), objects: np.ndarray | None = None) -> float:
    """Lens-dirt index (dimensionless, >= 0) from luminance frames ``(t h w)``: the ``dirt_quantile``
    quantile of :func:`dirt_map` (0 when the view does not change or has too few frames)."""
    m = dirt_map(y, cfg, objects)
    return 0.0 if m is None else float(np.quantile(m, cfg.dirt_quantile))


def occlusion_measures(y: np.ndarray, cfg: OcclusionConfig = OcclusionConfig(), objects: np.ndarray | None = None) -> OcclusionMeasures:
    """Both measurements of one camera's frame stack ``(t h w)`` (objects: see :func:`occlusion_evidence`)."""
    return OcclusionMeasures(occlusion_fraction(y, cfg, objects), dirt_index(y, cfg, objects))
