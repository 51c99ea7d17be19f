"""FD_synth: a Fréchet distance whose features come from a network trained on SynthTown, so the
embedded benchmark has a distance whose features mean something offline (no Inception / I3D
weights are needed).

The network is :class:`~genesis_drive.models.evaluators.synth_features.SynthFeatureNet`, trained
by the ``synth_features`` task (``train/tasks/synth_features.py``, targets listed there). Its
*frame embedding* (``num_features``) feeds FD_synth (:class:`SynthFrameExtractor`), its *clip
embedding* (``num_video_features``) feeds FD_synth-video (:class:`SynthClipExtractor`).

**Temporal controls** (:func:`temporal_control_rows`, part of every ``eval fd-synth`` report):
FD_synth-video of the reference clips with their frames *reversed* and *shuffled*
(:class:`ReorderedClips`) against the reference itself, and the accuracy of the network's
``order`` head on the reference clips as recorded / reversed / shuffled. Beside the
same-distribution floor they show whether FD_synth-video sees time: a metric blind to frame order
gives the reversed clips a distance of zero.

Report the numbers as ``FD_synth`` / ``FD_synth-video``, never FID/FVD: the features are not
Inception's and values are not comparable to published FIDs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ..data.clips import resize_crop
from ..errors import DataError
from ..models.evaluators.synth_features import FRAME_ORDERS, SynthFeatureNet
from ..train.checkpoint import load_run_model
from ..train.tasks.synth_features import SynthFeaturesConfig
from .extractors import resize_images, to_unit_float

__all__ = [
    "RESIZE_MODE",
    "ReorderedClips",
    "SynthClipExtractor",
    "SynthFrameExtractor",
    "control_order",
    "load_synth_extractor",
    "load_synth_net",
    "order_predictions",
    "temporal_control_rows",
]


#: How the extractors bring any image to the network's ``image_size``: area averaging, as the
#: training clips were resized (``ClipSpec.image_size``); bilinear without antialiasing aliases
#: when shrinking, and the motion stream of the clip head would see that as flicker.
RESIZE_MODE = "area"


class SynthFrameExtractor(nn.Module):
    """FD_synth extractor: ``(b, 3, h, w)`` RGB (uint8 0..255 or float 0..1) -> resize (:data:`RESIZE_MODE`,
    to the network's ``image_size``, no crop) -> [-1, 1] -> frame embedding ``(b, num_features)``."""

    def __init__(self, net: SynthFeatureNet, info: Mapping[str, Any] | None = None):
        super().__init__()
        self.net = net
        self.num_features = net.cfg.num_features
        self.info = dict(info or {})

    def protocol(self) -> dict:
        w, h = self.net.cfg.image_size
        return {"input": "image", "network": "synth_features/frame", "size": [w, h], "resize_mode": RESIZE_MODE,
                "crop": "none", "value_range": [-1.0, 1.0], "weights_sha256": self.info.get("sha256"), "step": self.info.get("step")}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SynthFrameExtractor expects (b, 3, h, w), got {tuple(x.shape)}")
        w, h = self.net.cfg.image_size
        x = to_unit_float(x).to(next(self.net.parameters()).device)
        return self.net.embed_frames(resize_images(x, (h, w), RESIZE_MODE) * 2 - 1)


class SynthClipExtractor(nn.Module):
    """FD_synth-video extractor: ``(b, t, 3, h, w)`` RGB -> per-frame resize -> clip embedding
    ``(b, num_video_features)``. Clips should have the training ``num_frames`` at the training
    frame spacing (``frame_stride`` camera frames, 12 Hz data); both are in :meth:`protocol`."""

    def __init__(self, net: SynthFeatureNet, num_frames: int, frame_stride: int, info: Mapping[str, Any] | None = None):
        super().__init__()
        self.net = net
        self.num_features = net.cfg.num_video_features
        self.num_frames, self.frame_stride = num_frames, frame_stride
        self.info = dict(info or {})

    @property
    def has_multiview_head(self) -> bool:
        """The network has a multi-view order head (which reads the views in :attr:`views` order)."""
        return self.net.joint_head is not None

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(self.net.cfg.views)

    @classmethod
    def from_run(cls, net: SynthFeatureNet, cfg: SynthFeaturesConfig, info: Mapping[str, Any] | None = None) -> SynthClipExtractor:
        """The extractor at the run's training clip length and frame spacing (``cfg.clips``)."""
        return cls(net, cfg.clips.num_frames, cfg.clips.frame_stride, info)

    def protocol(self) -> dict:
        w, h = self.net.cfg.image_size
        return {"input": "video", "network": "synth_features/clip", "size": [w, h], "resize_mode": RESIZE_MODE, "crop": "none",
                "value_range": [-1.0, 1.0], "num_frames": self.num_frames, "frame_stride": self.frame_stride,
                "weights_sha256": self.info.get("sha256"), "step": self.info.get("step")}  # fmt: skip

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, t, 3, h, w)`` RGB (uint8 or float 0..1) -> network input at ``image_size`` in [-1, 1]."""
        if x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(f"SynthClipExtractor expects (b, t, 3, h, w), got {tuple(x.shape)}")
        b = x.shape[0]
        w, h = self.net.cfg.image_size
        x = to_unit_float(x).to(next(self.net.parameters()).device)
        x = resize_images(rearrange(x, "b t c h w -> (b t) c h w"), (h, w), RESIZE_MODE) * 2 - 1
        return rearrange(x, "(b t) c h w -> b t c h w", b=b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed_clips(self.preprocess(x))

    def order_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(b, len(FRAME_ORDERS))`` of the network's ``order`` head for clips ``(b, t, 3, h, w)``."""
        return self.net.order_logits(self.preprocess(x))

    def multiview_order_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The order of one multi-view clip ``(v, t, 3, h, w)`` RGB (views in the network's order)
        -> ``(len(FRAME_ORDERS),)``: :meth:`SynthFeatureNet.multiview_order_logits`."""
        return self.net.multiview_order_logits(self.preprocess(x)[None])[0]


def load_synth_net(path: str | Path, *, ema: bool = True) -> tuple[SynthFeatureNet, SynthFeaturesConfig, dict]:
    """The trained FD_synth network (eval mode, CPU, frozen), its run config and checkpoint info,
    from a ``synth_features`` run directory or checkpoint directory."""
    net, cfg, info = load_run_model(path, SynthFeaturesConfig, lambda c: SynthFeatureNet(c.model), task="synth_features", ema=ema)
    net.requires_grad_(False)
    return net, cfg, info


def load_synth_extractor(path: str | Path, kind: str = "image", *, ema: bool = True) -> SynthFrameExtractor | SynthClipExtractor:
    """The trained FD_synth extractor (``kind="image"``) or FD_synth-video extractor (``kind="video"``)
    from a ``synth_features`` run directory or checkpoint directory, in eval mode on the CPU."""
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    net, cfg, info = load_synth_net(path, ema=ema)
    if kind == "image":
        return SynthFrameExtractor(net, info).eval()
    return SynthClipExtractor.from_run(net, cfg, info).eval()


# ----------------------------------------------------------------------------- temporal controls


def control_order(kind: str, num_frames: int, clip_index: int, seed: int) -> np.ndarray:
    """The frame order (num_frames,) of a control clip: ``"reversed"``, or for ``"shuffled"`` a
    permutation that is neither the identity nor the reversal, drawn from ``(seed, clip_index)``
    (so every clip gets its own, reproducibly). Shuffling needs at least 3 frames."""
    ident = np.arange(num_frames)
    if kind == "reversed":
        return ident[::-1].copy()
    if kind != "shuffled":
        raise ValueError(f"control order must be 'reversed' or 'shuffled', got {kind!r}")
    if num_frames < 3:
        raise ValueError(f"a shuffled order that is not the reversal needs >= 3 frames, got {num_frames}")
    rng = np.random.default_rng([seed, clip_index])
    while True:
        perm = rng.permutation(num_frames)
        if not (np.array_equal(perm, ident) or np.array_equal(perm, ident[::-1])):
            return perm


class ReorderedClips:
    """A clip source (``(clip_id, frames (v, T, h, w, 3))``) whose clips have the frames that a
    :class:`~genesis_drive.eval.video.VideoProtocol` selects (every ``frame_stride``-th of the first
    ``span``) put in a control order (:func:`control_order`); all views of a clip get the same order."""

    def __init__(self, source, protocol, kind: str, seed: int = 0):
        control_order(kind, protocol.num_frames, 0, seed)  # checks kind and clip length
        self.source, self.protocol, self.kind, self.seed = source, protocol, kind, seed

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self):
        p = self.protocol
        pos = np.arange(0, p.span, p.frame_stride)
        for i, (clip_id, frames) in enumerate(self.source):
            out = np.array(frames, copy=True)
            if frames.ndim == 5 and frames.shape[1] >= p.span:  # shorter clips pass on for the evaluator to refuse
                out[:, pos] = frames[:, pos[control_order(self.kind, p.num_frames, i, self.seed)]]
            yield clip_id, out

    def describe(self) -> dict:
        return {**self.source.describe(), "order": self.kind, "order_seed": self.seed}


def order_predictions(extractor: SynthClipExtractor, source, protocol, *, batch_size: int = 8,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Predicted :data:`FRAME_ORDERS` indices of the network's ``order`` head for every clip of
    ``source`` under ``protocol``'s frame selection (its FD_synth-video frames), with the frames as
    recorded (column 0), reversed (1) and shuffled (2, the orders of :func:`control_order`; -1 when
    clips have fewer than 3 frames; every view of a clip in the same order). Correct answers are
    the column indices. Returns ``(per_view (n_clips, v, 3), per_clip (n_clips, 3))``: the head on
    each view alone, and on the multi-view clip (:meth:`SynthClipExtractor.multiview_order_logits`:
    the network's multi-view order head, or without one the argmax of the sum over views of the
    per-view log-probabilities, the views sharing the direction of time)."""
    p = protocol
    has_joint = extractor.has_multiview_head
    if has_joint and tuple(p.views) != extractor.views:
        raise DataError(f"the multi-view order head reads the views {extractor.views} in that order, "
                        f"the protocol has {tuple(p.views)}", None, "views")
    views, clips_ = [], []
    for i, (clip_id, frames) in enumerate(source):
        x = rearrange(torch.from_numpy(np.ascontiguousarray(_selected(clip_id, frames, p))), "v t h w c -> v t c h w")
        t = x.shape[1]
        versions = [x, x.flip(1)]
        if t >= 3:
            versions.append(x[:, torch.from_numpy(control_order("shuffled", t, i, seed))])
        per_view, per_clip = [], []
        for clips in versions:
            with torch.no_grad():
                logits = torch.cat([extractor.order_logits(clips[j : j + batch_size]) for j in range(0, len(clips), batch_size)])
                joint = (extractor.multiview_order_logits(clips) if has_joint
                         else logits.float().log_softmax(dim=1).sum(dim=0))  # fmt: skip
            per_view.append(logits.argmax(dim=1).cpu().numpy())
            per_clip.append(int(joint.argmax()))
        if t < 3:
            per_view.append(np.full(len(x), -1))
            per_clip.append(-1)
        views.append(np.stack(per_view, axis=1))
        clips_.append(per_clip)
    if not views:
        raise DataError("the reference has no clips to judge the frame order of", None, "clips")
    return np.stack(views), np.array(clips_, dtype=np.int64)


def _selected(clip_id: str, frames: np.ndarray, p) -> np.ndarray:
    """``(v, T, h, w, 3)`` -> the protocol's FD_synth-video frames ``(v, t, h', w', 3)`` (as VideoEvaluator selects them)."""
    if frames.ndim != 5 or frames.shape[0] != len(p.views) or frames.shape[-1] != 3 or frames.shape[1] < p.span:
        raise DataError(f"clip {clip_id}: expected frames (v={len(p.views)}, t>={p.span}, h, w, 3), got {frames.shape}", None, "frames")
    sel = frames[:, : p.span : p.frame_stride]
    if p.image_size is not None and tuple(sel.shape[3:1:-1]) != tuple(p.image_size):
        eye = np.eye(3)
        sel = np.stack([[resize_crop(f, eye, p.image_size)[0] for f in view] for view in sel])
    return sel[:, p.fvd_frames()]


def temporal_control_rows(make_video_metric: Callable[[], Any], extractor: SynthClipExtractor, protocol, ref, *, cache_dir,
                          batch_size: int, num_resamples: int, level: float, seed: int, floor: float | None = None):  # fmt: skip
    """``(rows, meta)`` of the temporal controls on the reference ``ref``: FD_synth-video of the
    reference clips reversed / shuffled (fresh metrics from ``make_video_metric()``; reference
    statistics from ``cache_dir`` when cached there) against the reference, and the accuracy of
    the ``order`` head over the reference clips in order / reversed / shuffled (bootstrap over
    clips). ``floor``: the same-distribution floor of FD_synth-video, for the ratios in the notes."""
    from .bootstrap import bootstrap_ci
    from .report import MetricRow
    from .video import VideoEvaluator

    kinds = ["reversed"] + (["shuffled"] if protocol.num_frames >= 3 else [])
    rows, meta = [], {"orders": kinds, "seed": seed, "shuffled": "a per-clip random permutation, neither identity nor reversal"}
    for kind in kinds:
        (row,), _ = VideoEvaluator(protocol, video_metrics=[make_video_metric()], batch_size=batch_size).evaluate(
            ReorderedClips(ref, protocol, kind, seed), ref, cache_dir, num_resamples=num_resamples, level=level, seed=seed)
        row.metric = f"{row.metric} (control: ref clips {kind} vs ref)"
        ratio = f"; {row.value / floor:.1f}x the floor" if floor is not None and floor > 0 else ""
        row.note = f"{row.note}{ratio}"
        rows.append(row)
    per_view, per_clip = order_predictions(extractor, ref, protocol, batch_size=batch_size, seed=seed)
    used = len(kinds) + 1
    vote = "multi-view order head" if extractor.has_multiview_head else "sum of the views' log-probabilities"
    names = FRAME_ORDERS[:used]
    title = " / ".join(names)
    for label, pred, unit in (("", per_view, "videos"), (", multi-view clips", per_clip[:, None], "clips")):
        correct = (pred[..., :used] == np.arange(used)).astype(np.float64)  # (clips, views or 1, kinds)

        def stat(idx: np.ndarray, correct=correct) -> float:
            return float(correct[idx].mean())

        ci = bootstrap_ci(stat, len(correct), num_resamples=num_resamples, level=level, seed=seed) if num_resamples else None
        value = ci.value if ci is not None else stat(np.arange(len(correct)))
        per_kind = {k: float(correct[..., i].mean()) for i, k in enumerate(names)}
        rows.append(MetricRow(f"order accuracy{label} (control: ref clips {title})", value, ci,
                              counts={f"ref {unit}": int(correct.shape[0] * correct.shape[1]) * used},
                              note="order head" + (f" ({vote})" if label else "") + ", "
                              + ", ".join(f"{k} {v:.3f}" for k, v in per_kind.items()) + "; bootstrap over clips"))  # fmt: skip
        meta["order_accuracy" + ("_multiview" if label else "")] = per_kind
    return rows, meta
