"""FID_multi / FVD_multi (and any Fréchet metric on the same inputs) over clip sources.

Every choice that moves these numbers is a field of :class:`VideoProtocol` and lands in the
report and in the reference-cache key. Multi-view: every camera view of every clip is one sample
(FVD: one 16-frame video per view; FID: every selected frame of every view), pooled across views.
The same frame indices are taken from generated and reference clips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from einops import rearrange
from tqdm import tqdm

from ..data.clips import resize_crop
from ..data.schema import CAMERA_CHANNELS
from ..errors import DataError
from .chamfer_metric import sample_id
from .fd_metric import FrechetDistance
from .reference_cache import cache_path, load_cached, save_stats
from .report import MetricRow

__all__ = ["VIDEO_PROTOCOLS", "VideoEvaluator", "VideoProtocol", "with_overrides"]


@dataclass(frozen=True)
class VideoProtocol:
    """Frame selection and preprocessing of the video metrics.

    views: camera channels evaluated (each is a sample, pooled).
    num_frames: frames per clip (the field: 16), taken every ``frame_stride`` frames from frame 0.
    cond_frames: leading frames the generator was given (first-frame conditioning: 1).
    fid_exclude_cond / fvd_exclude_cond: drop those frames from FID (the field does) / FVD.
    fid_frame_stride: FID uses every ``fid_frame_stride``-th selected frame.
    image_size: ``(width, height)``; when set, both sets are first resized to cover it and
        centre-cropped (bring the reference to the generation resolution); None keeps.
    fid_size / fid_resize_mode: Inception input side (299) and resize mode.
    fvd_size / fvd_resize_mode / fvd_crop: I3D input side (224), resize mode, ``"none"`` (squash)
        or ``"center"`` (shorter side then centre crop).
    ref_window_stride: frames between clip starts when the reference is a nuScenes root.
    max_gen_clips / max_ref_clips: caps on the sample count (None: all).
    """

    views: tuple[str, ...] = CAMERA_CHANNELS
    num_frames: int = 16
    frame_stride: int = 1
    cond_frames: int = 0
    fid_exclude_cond: bool = True
    fvd_exclude_cond: bool = False
    fid_frame_stride: int = 1
    image_size: tuple[int, int] | None = None
    fid_size: int = 299
    fid_resize_mode: str = "bilinear"
    fvd_size: int = 224
    fvd_resize_mode: str = "bilinear"
    fvd_crop: str = "none"
    ref_window_stride: int = 16
    max_gen_clips: int | None = None
    max_ref_clips: int | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.frame_stride < 1 or self.fid_frame_stride < 1 or self.ref_window_stride < 1:
            raise ValueError("VideoProtocol num_frames, frame_stride, fid_frame_stride, ref_window_stride must be >= 1")
        if not 0 <= self.cond_frames < self.num_frames:
            raise ValueError(f"VideoProtocol.cond_frames must be in [0, num_frames), got {self.cond_frames}")
        if not self.views:
            raise ValueError("VideoProtocol.views must name at least one camera")

    @property
    def span(self) -> int:
        """Frames of a source clip covered by the selection."""
        return (self.num_frames - 1) * self.frame_stride + 1

    def fid_frames(self) -> list[int]:
        """Indices into the ``num_frames`` selected frames that FID uses."""
        start = self.cond_frames if self.fid_exclude_cond else 0
        return list(range(start, self.num_frames, self.fid_frame_stride))

    def fvd_frames(self) -> list[int]:
        start = self.cond_frames if self.fvd_exclude_cond else 0
        return list(range(start, self.num_frames))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["views"] = list(self.views)
        d["image_size"] = list(self.image_size) if self.image_size else None
        return d

    def frame_key(self) -> dict:
        """The fields that decide which reference pixels reach the networks (cache key part)."""
        d = self.to_dict()
        for k in ("max_gen_clips", "fid_size", "fid_resize_mode", "fvd_size", "fvd_resize_mode", "fvd_crop"):
            d.pop(k)
        return d


#: ``free``: no frame given (Genesis 83.10 / 14.90 setting); ``first_frame``: frame 0 given and
#: excluded from FID (16.95 / 4.24 setting).
VIDEO_PROTOCOLS: dict[str, VideoProtocol] = {
    "free": VideoProtocol(),
    "first_frame": VideoProtocol(cond_frames=1),
}


def _clip_ids_digest(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class VideoEvaluator:
    """Runs Fréchet metrics over generated and reference clip sources under one protocol.

    image_metrics: fed ``(b, 3, h, w)`` uint8 frames (FID-like: every selected frame of every view).
    video_metrics: fed ``(b, t, 3, h, w)`` uint8 clips (FVD-like: one clip per view).
    Their extractors resize to their own input size. ``batch_size``: frames or videos per update.
    """

    def __init__(self, protocol: VideoProtocol, image_metrics: list[FrechetDistance] = (), video_metrics: list[FrechetDistance] = (), batch_size: int = 8):
        if not image_metrics and not video_metrics:
            raise ValueError("VideoEvaluator needs at least one metric")
        self.protocol = protocol
        self.image_metrics, self.video_metrics = list(image_metrics), list(video_metrics)
        self.batch_size = batch_size

    # -- per-clip feeding ----------------------------------------------------------------------
    def _select(self, clip_id: str, frames: np.ndarray) -> np.ndarray:
        """``(v, T, h, w, 3)`` -> ``(v, num_frames, h', w', 3)`` under the protocol."""
        p = self.protocol
        if frames.ndim != 5 or frames.shape[0] != len(p.views) or frames.shape[-1] != 3:
            raise DataError(f"clip {clip_id}: expected frames (v={len(p.views)}, t, h, w, 3), got {frames.shape}")
        if frames.shape[1] < p.span:
            raise DataError(f"clip {clip_id}: {frames.shape[1]} frames, the protocol needs {p.span} ({p.num_frames} at stride {p.frame_stride})")
        sel = frames[:, : p.span : p.frame_stride]
        if p.image_size is not None and tuple(sel.shape[3:1:-1]) != tuple(p.image_size):
            eye = np.eye(3)
            sel = np.stack([[resize_crop(f, eye, p.image_size)[0] for f in view] for view in sel])
        return sel

    def _feed(self, clip_id: str, frames: np.ndarray, real: bool, image_metrics, video_metrics) -> None:
        sel = torch.from_numpy(np.ascontiguousarray(self._select(clip_id, frames)))
        x = rearrange(sel, "v t h w c -> v t c h w")
        group = torch.tensor(sample_id(clip_id), dtype=torch.int64)
        if video_metrics:
            vids = x[:, self.protocol.fvd_frames()]
            for i in range(0, len(vids), self.batch_size):
                b = vids[i : i + self.batch_size]
                for m in video_metrics:
                    m.update(b, real=real, groups=None if real else group.repeat(len(b)))
        if image_metrics:
            imgs = rearrange(x[:, self.protocol.fid_frames()], "v t c h w -> (v t) c h w")
            for i in range(0, len(imgs), self.batch_size):
                b = imgs[i : i + self.batch_size]
                for m in image_metrics:
                    m.update(b, real=real, groups=None if real else group.repeat(len(b)))

    def _consume(self, source, real: bool, image_metrics, video_metrics, desc: str) -> int:
        n = 0
        for clip_id, frames in tqdm(source, total=len(source), desc=desc, unit="clip"):
            self._feed(clip_id, frames, real, image_metrics, video_metrics)
            n += 1
        return n

    # -- reference statistics ------------------------------------------------------------------
    def reference_key(self, metric: FrechetDistance, ref_description: dict) -> dict:
        ref = {k: v for k, v in ref_description.items() if k != "clip_ids"}
        ref["clip_ids_sha256"] = _clip_ids_digest(ref_description.get("clip_ids", []))
        return {"metric": metric.name, "feature_network": metric.identity, "frames": self.protocol.frame_key(), "reference": ref}

    def prepare_reference(self, ref_source, cache_dir=None) -> dict[str, str]:
        """Load each metric's reference statistics from the cache or compute (and cache) them.

        Returns ``{metric name: "cache" | "computed"}``.
        """
        desc = ref_source.describe()
        status, todo = {}, []
        for m in self.image_metrics + self.video_metrics:
            stats = load_cached(cache_dir, m.name, self.reference_key(m, desc)) if cache_dir else None
            if stats is not None:
                m.set_reference(stats)
                status[m.name] = "cache"
            else:
                todo.append(m)
        if todo:
            # identity tests: torchmetrics overloads == on metrics
            imgs = [m for m in todo if any(m is x for x in self.image_metrics)]
            vids = [m for m in todo if any(m is x for x in self.video_metrics)]
            self._consume(ref_source, True, imgs, vids, "reference clips")
            for m in todo:
                stats = m.reference_stats()
                m.set_reference(stats)
                if cache_dir:
                    save_stats(cache_path(cache_dir, m.name, self.reference_key(m, desc)), stats, self.reference_key(m, desc))
                status[m.name] = "computed"
        return status

    # -- full run ------------------------------------------------------------------------------
    def evaluate(self, gen_source, ref_source, cache_dir=None, num_resamples: int = 100, level: float = 0.95, seed: int = 0) -> tuple[list[MetricRow], dict]:
        """Reference statistics (cached), generated features, values and bootstrap intervals.

        num_resamples: 0 switches the bootstrap off. Returns report rows and provenance.
        """
        status = self.prepare_reference(ref_source, cache_dir)
        n_gen = self._consume(gen_source, False, self.image_metrics, self.video_metrics, "generated clips")
        rows = []
        for m, unit in [(m, "frames") for m in self.image_metrics] + [(m, "videos") for m in self.video_metrics]:
            value = float(m.compute())
            ci = m.bootstrap(num_resamples, level, seed, progress=True) if num_resamples else None
            ref = m.reference_stats()
            rows.append(MetricRow(m.name, value, ci, counts={f"gen {unit}": int(m.gen_count), f"ref {unit}": ref.count},
                                  note=f"reference {status[m.name]}; bootstrap over clips"))  # fmt: skip
        meta = {
            "protocol": self.protocol.to_dict(),
            "feature_networks": {m.name: m.identity for m in self.image_metrics + self.video_metrics},
            "generated": {**{k: v for k, v in gen_source.describe().items() if k != "clip_ids"}, "clips": n_gen},
            "reference": {k: v for k, v in ref_source.describe().items() if k != "clip_ids"},
            "reference_stats": status,
        }
        return rows, meta


def with_overrides(protocol: VideoProtocol, **changes) -> VideoProtocol:
    """A copy of ``protocol`` with the non-None ``changes`` applied."""
    return replace(protocol, **{k: v for k, v in changes.items() if v is not None})
