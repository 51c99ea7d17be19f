"""``genesis-drive eval {layout,consistency,fd-synth}``: the learned evaluators (models trained on SynthTown).

:func:`register` adds the three subcommands to the ``eval`` sub-parsers. Each writes
``OUT/<name>.json`` (every number, interval and choice) and ``OUT/<name>.md`` through
:func:`genesis_drive.eval.report.write_report`. Intervals are bootstraps
(:func:`genesis_drive.eval.bootstrap.bootstrap_ci`) that resample whole scenes (layout and
consistency: percentile intervals) or clips (FD_synth: normal intervals, FD being biased upward
under resampling).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..data.schema import clip_scene
from ..errors import ConfigError

__all__ = [
    "consistency_rows",
    "estimate",
    "layout_rows",
    "register",
    "register_consistency",
    "register_fd_synth",
    "register_layout",
    "run_consistency",
    "run_fd_synth",
    "run_layout",
]


def estimate(statistic: Callable[[np.ndarray], float], groups: np.ndarray, num_resamples: int, level: float, seed: int):
    """``(value, BootstrapCI or None)`` of ``statistic(indices)`` over ``len(groups)`` samples;
    ``num_resamples == 0`` skips the bootstrap."""
    from .bootstrap import bootstrap_ci

    n = len(groups)
    if num_resamples:
        ci = bootstrap_ci(statistic, n, groups=np.asarray(groups), num_resamples=num_resamples, level=level, seed=seed)
        return ci.value, ci
    return float(statistic(np.arange(n))), None


def _views(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    views = tuple(v.strip() for v in text.split(",") if v.strip())
    if not views:
        raise ConfigError(f"--views must be a comma list of camera channels, got {text!r}")
    return views


def _device(name: str):
    import torch

    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"--device: {e}") from None


# -- layout -------------------------------------------------------------------------------------
def layout_rows(samples, label: str, *, num_resamples: int, level: float, seed: int) -> list:
    """Report rows of one root's BEV results: mIoU, per-class IoU (bootstrap over scenes) and the
    vehicle detection mAP (no interval)."""
    from ..models.evaluators.bev_layout import BEV_CLASSES
    from .layout_bev import detection_map, iou_from_counts, miou
    from .report import MetricRow

    groups = np.array(samples.scenes)
    counts = {"frames": len(groups), "scenes": len(set(samples.scenes))}
    value, ci = estimate(lambda idx: miou(samples.inter[idx], samples.union[idx]), groups, num_resamples, level, seed)
    rows = [MetricRow(f"mIoU ({label})", value, ci, counts=counts, note="bootstrap over scenes")]
    for k, name in enumerate(BEV_CLASSES):
        def stat(idx: np.ndarray, k: int = k) -> float:
            return float(iou_from_counts(samples.inter[idx, k : k + 1], samples.union[idx, k : k + 1])[0])

        value, ci = estimate(stat, groups, num_resamples, level, seed)
        rows.append(MetricRow(f"IoU {name} ({label})", value, ci, counts=counts))
    det = detection_map(samples.detections, samples.truths)
    aps = ", ".join(f"{k} {v:.3f}" for k, v in det.items() if k != "mAP")
    rows.append(MetricRow(f"BEV vehicle mAP ({label})", det["mAP"], None, counts=counts, note=f"centre-distance AP; {aps}"))
    return rows


def layout_partner(clip_ids: list[str]) -> list[int]:
    """For each keyframe ``k`` of a scene with ``n`` keyframes (clip ids ``scene:start`` in index
    order), the index of keyframe ``(k + n // 2) mod n`` of the same scene: another moment of the
    same cameras (itself when the scene has one keyframe)."""
    by_scene: dict[str, list[int]] = {}
    for i, c in enumerate(clip_ids):
        by_scene.setdefault(clip_scene(c), []).append(i)
    out = [0] * len(clip_ids)
    for members in by_scene.values():
        n = len(members)
        for k, i in enumerate(members):
            out[i] = members[(k + n // 2) % n]
    return out


def predict_layout_ignored(model, cfg, root: Path, *, batch_size: int, max_samples: int | None, threshold: float, device):
    """BEV results of the "layout ignored" control: each keyframe's images replaced by those of
    another moment of the same cameras (:func:`layout_partner`), scored against the keyframe's own
    layout. What a generator that ignores its layout would at best reach."""
    from .layout_bev import predict_root

    return predict_root(model, cfg, root, batch_size=batch_size, max_samples=max_samples, threshold=threshold, device=device,
                        images_from=layout_partner)  # fmt: skip


def register_layout(sub) -> None:
    from .cli import add_common_options

    p = sub.add_parser("layout", help="layout faithfulness: BEV segmentation mIoU on generated vs real scenes",
                       description="Runs the BEV layout model (task bev_layout) on the keyframes of a generated root and a "
                                   "real root of the same layouts; reports per-class IoU, mIoU, their paired gap and a BEV "
                                   "vehicle mAP. Ground truth comes from each root's own annotations and map.")  # fmt: skip
    p.add_argument("--gen", required=True, type=Path, help="generated scenes, nuScenes-format root (with the layouts' annotations)")
    p.add_argument("--ref", required=True, type=Path, help="real (held-out) SynthTown root of the same layouts")
    p.add_argument("--model", type=Path, default=None, help="bev_layout run directory or checkpoint directory (default: the shipped weights)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold of a positive BEV cell")
    p.add_argument("--no-control", action="store_true", help="skip the 'layout ignored' control on the reference")
    p.add_argument("--max-samples", type=int, default=None, help="keyframes per root (default all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    add_common_options(p)
    p.set_defaults(func=run_layout)


def run_layout(args) -> int:
    from ..models.evaluators.bev_layout import BEV_CLASSES
    from .shipped import resolve_evaluator
    from .layout_bev import (
        DETECTION_THRESHOLDS,
        load_bev_model,
        miou,
        paired_indices,
        predict_root,
    )
    from .report import MetricRow, write_report

    if not 0 < args.threshold < 1:
        raise ConfigError(f"--threshold must lie in (0, 1), got {args.threshold}")
    path, evaluator = resolve_evaluator(args.model, "bev_layout", "bev_layout")
    model, cfg, info = load_bev_model(path, ema=not args.no_ema)
    device = _device(args.device)
    kw = {"batch_size": args.batch_size, "max_samples": args.max_samples, "threshold": args.threshold, "device": device}
    gen = predict_root(model, cfg, args.gen, desc="generated keyframes", **kw)
    ref = predict_root(model, cfg, args.ref, desc="reference keyframes", **kw)
    nb = args.bootstrap if args.bootstrap is not None else 200
    opts = {"num_resamples": nb, "level": args.level, "seed": args.seed}
    rows = layout_rows(gen, "gen", **opts) + layout_rows(ref, "ref", **opts)
    if not args.no_control:
        ctrl = predict_layout_ignored(model, cfg, Path(args.ref), batch_size=args.batch_size, max_samples=args.max_samples,
                                      threshold=args.threshold, device=device)  # fmt: skip
        rows += layout_rows(ctrl, "control: layout ignored", **opts)
    gi, ri = paired_indices(gen, ref)
    if len(gi):
        def gap(idx: np.ndarray) -> float:
            return miou(gen.inter[gi[idx]], gen.union[gi[idx]]) - miou(ref.inter[ri[idx]], ref.union[ri[idx]])

        value, ci = estimate(gap, np.array([gen.scenes[i] for i in gi]), **opts)
        rows.append(MetricRow("mIoU gen - ref (paired)", value, ci, counts={"pairs": len(gi)}, note="same clip ids; scenes resampled jointly"))
    grid = cfg.model.grid
    meta = {
        "protocol": {"classes": list(BEV_CLASSES), "grid": {"x_range": list(grid.x_range), "y_range": list(grid.y_range),
                     "resolution_m": grid.resolution}, "cell_positive": "target coverage >= 0.5", "prediction_threshold": args.threshold,
                     "line_width_m": cfg.line_width, "min_footprint_m": cfg.min_footprint, "iou": "summed intersections / summed unions",
                     "detection_thresholds_m": list(DETECTION_THRESHOLDS),
                     "control": None if args.no_control else "reference keyframe k with the images of keyframe (k + n/2) mod n of its scene", "image_size": list(cfg.model.image_size), "views": list(cfg.model.views)},
        "weights": info,
        "evaluator": evaluator,
        "generated": str(Path(args.gen).resolve()),
        "reference": str(Path(args.ref).resolve()),
    }  # fmt: skip
    json_path, md_path = write_report(args.out, args.name or "layout", "Layout faithfulness (BEV segmentation)", rows, meta)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


# -- consistency --------------------------------------------------------------------------------
_CONSISTENCY_METRICS = (("abs_rel", "AbsRel", ""), ("delta1", "delta<1.25", ""), ("rmse", "RMSE", "m"), ("sq_rel", "SqRel", "m"),
                        ("abs_rel_above_ground", "AbsRel above ground", ""), ("delta1_above_ground", "delta<1.25 above ground", ""),
                        ("edge_align", "EdgeAlign", ""))  # fmt: skip


def consistency_rows(stats, scenes: list[str], label: str, *, num_resamples: int, level: float, seed: int) -> list:
    """Report rows of pooled consistency metrics (bootstrap over scenes)."""
    from .consistency import pool_stats
    from .report import MetricRow

    groups = np.array(scenes)
    counts = {"frames": len(stats), "points": int(sum(s.points for s in stats))}
    above = {"frames": len(stats), "points": int(sum(s.above_points for s in stats))}
    edges = {"frames": len(stats), "discontinuities": int(sum(s.disc for s in stats))}
    rows = []
    for key, name, unit in _CONSISTENCY_METRICS:
        value, ci = estimate(lambda idx, key=key: pool_stats([stats[i] for i in idx])[key], groups, num_resamples, level, seed)
        n = above if "above" in key else edges if key == "edge_align" else counts
        rows.append(MetricRow(f"{name} ({label})", value, ci, unit=unit, counts=n))
    return rows


def register_consistency(sub) -> None:
    from .cli import add_common_options

    p = sub.add_parser("consistency", help="cross-modal consistency of generated LiDAR and images",
                       description="Compares each keyframe's LIDAR_TOP sweep with its camera images: depth agreement with a "
                                   "monocular depth network (task depth) and model-free edge alignment of LiDAR depth "
                                   "discontinuities. The control pairs every frame's images with another frame's LiDAR.")  # fmt: skip
    p.add_argument("--gen", required=True, type=Path, help="nuScenes-format root with generated images and LiDAR")
    p.add_argument("--ref", type=Path, default=None, help="real root of the same layouts: its paired score is the ceiling row")
    p.add_argument("--model", type=Path, default=None, help="depth run directory or checkpoint directory (default: the shipped weights)")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--views", default=None, help="comma list of camera channels (default: the six nuScenes cameras)")
    p.add_argument("--no-control", action="store_true", help="skip the mismatched-LiDAR control")
    p.add_argument("--ground-height", type=float, default=0.3, help="metres above the ego ground plane of 'above ground' points")
    p.add_argument("--edge-radius", type=float, default=2.0, help="pixels, horizontal neighbourhood of a LiDAR discontinuity")
    p.add_argument("--edge-ratio", type=float, default=1.5, help="depth ratio that makes a discontinuity")
    p.add_argument("--max-samples", type=int, default=None, help="keyframes (default all)")
    p.add_argument("--device", default="cpu")
    add_common_options(p)
    p.set_defaults(func=run_consistency)


def run_consistency(args) -> int:
    from ..data.schema import CAMERA_CHANNELS
    from .shipped import resolve_evaluator
    from .consistency import ConsistencyScorer, evaluate_root, load_depth_model
    from .report import write_report

    if not args.edge_radius > 0 or not args.edge_ratio > 1:
        raise ConfigError("--edge-radius must be > 0 pixels and --edge-ratio > 1")
    path, evaluator = resolve_evaluator(args.model, "depth", "depth")
    model, cfg, info = load_depth_model(path, ema=not args.no_ema)
    scorer = ConsistencyScorer(model, ground_height=args.ground_height, edge_radius=args.edge_radius, edge_ratio=args.edge_ratio,
                               device=_device(args.device))  # fmt: skip
    views = _views(args.views) or CAMERA_CHANNELS
    matched, mismatched, scenes = evaluate_root(scorer, args.gen, views=views, max_samples=args.max_samples, control=not args.no_control)
    nb = args.bootstrap if args.bootstrap is not None else 200
    opts = {"num_resamples": nb, "level": args.level, "seed": args.seed}
    rows = consistency_rows(matched, scenes, "paired", **opts)
    if mismatched is not None:
        rows += consistency_rows(mismatched, scenes, "control: other frame's LiDAR", **opts)
    if args.ref is not None:
        real, _, ref_scenes = evaluate_root(scorer, args.ref, views=views, max_samples=args.max_samples, control=False)
        rows += consistency_rows(real, ref_scenes, "ref: real images and LiDAR", **opts)
    m = cfg.model
    meta = {
        "protocol": {"views": list(views), "image_size": list(m.image_size), "depth_range_m": [m.min_depth, m.max_depth],
                     "depth": "camera z of LiDAR points vs nearest predicted depth cell", "ground_height_m": args.ground_height,
                     "edge": "Sobel magnitude, 3x3 max filter, divided by its image row's mean", "edge_radius_px": args.edge_radius,
                     "edge_ratio": args.edge_ratio, "control": "images of keyframe i with the LiDAR of keyframe i + n/2 (mod n)"},
        "weights": info,
        "evaluator": evaluator,
        "generated": str(Path(args.gen).resolve()),
        "reference": str(Path(args.ref).resolve()) if args.ref is not None else None,
    }  # fmt: skip
    json_path, md_path = write_report(args.out, args.name or "consistency", "Cross-modal consistency (LiDAR vs images)", rows, meta)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


# -- FD_synth -----------------------------------------------------------------------------------
def register_fd_synth(sub) -> None:
    from .cli import add_common_options

    p = sub.add_parser("fd-synth", help="FD_synth / FD_synth-video with the SynthTown-trained feature network",
                       description="Fréchet distance of generated clips to reference clips in the features of the network "
                                   "trained on SynthTown (task synth_features). Not FID/FVD: the numbers are not comparable "
                                   "to Inception/I3D values.")  # fmt: skip
    p.add_argument("--gen", required=True, type=Path, help="generated clips: DIR/<clip_id>/<VIEW>.mp4 (or frame folders), or a nuScenes root")
    p.add_argument("--ref", required=True, type=Path, help="reference clips: same layout, or a nuScenes-format root")
    p.add_argument("--model", type=Path, default=None, help="synth_features run directory or checkpoint directory (default: the shipped weights)")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--metrics", default="image,video", help="comma list of image (FD_synth), video (FD_synth-video)")
    p.add_argument("--views", default=None, help="comma list of camera channels (default: the model's views)")
    p.add_argument("--num-frames", type=int, default=None, help="frames per clip (default: the model's training clip length)")
    p.add_argument("--frame-stride", type=int, default=None, help="stride between frames (default: the model's)")
    p.add_argument("--cond-frames", type=int, default=0, help="leading conditioning frames, excluded from FD_synth")
    p.add_argument("--ref-window-stride", type=int, default=None, help="frames between reference clip starts (nuScenes root)")
    p.add_argument("--max-gen-clips", type=int, default=None)
    p.add_argument("--max-ref-clips", type=int, default=None)
    p.add_argument("--cache-dir", type=Path, default=None, help="reference statistics cache (default: OUT/reference_stats)")
    p.add_argument("--no-floor", action="store_true", help="skip the same-distribution floor (reference scenes split in two halves)")
    p.add_argument("--no-temporal-controls", action="store_true",
                   help="skip the temporal controls (FD_synth-video of the reference reversed / shuffled, order-head accuracy)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    add_common_options(p)
    p.set_defaults(func=run_fd_synth)


class SceneHalf:
    """The clips of a clip source whose scene (clip id before the last ``:``) has rank ``parity``
    mod 2 in sorted scene order: two disjoint same-distribution halves of a reference."""

    def __init__(self, source, parity: int):
        self.source, self.parity = source, parity
        ids = source.describe()["clip_ids"]
        scenes = sorted({clip_scene(c) for c in ids})
        self.scenes = scenes[parity::2]
        keep = set(self.scenes)
        self.ids = [c for c in ids if clip_scene(c) in keep]

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        keep = set(self.ids)
        for clip_id, clip in self.source:
            if clip_id in keep:
                yield clip_id, clip

    def describe(self) -> dict:
        return {**self.source.describe(), "clips": len(self), "clip_ids": list(self.ids), "half": self.parity, "scenes": self.scenes}


def fd_floor_rows(make_metrics, protocol, ref, *, batch_size: int, num_resamples: int, level: float, seed: int):
    """``(rows, note)`` of the same-distribution floor: the FD of one half of the reference scenes
    to the other half, with fresh metrics from ``make_metrics()``; no rows when the reference has
    fewer than two scenes (the note says so)."""
    from .video import VideoEvaluator

    a, b = SceneHalf(ref, 0), SceneHalf(ref, 1)
    if not len(a) or not len(b):
        return [], "no floor: the reference has fewer than two scenes"
    image_metrics, video_metrics = make_metrics()
    rows, _ = VideoEvaluator(protocol, image_metrics, video_metrics, batch_size=batch_size).evaluate(
        a, b, None, num_resamples=num_resamples, level=level, seed=seed)
    for r in rows:
        r.metric = f"{r.metric} (floor: ref scenes half vs half)"
    return rows, f"floor: {len(a.scenes)} vs {len(b.scenes)} reference scenes"


def run_fd_synth(args) -> int:
    from .shipped import resolve_evaluator
    from .fd_metric import FrechetDistance
    from .report import write_report
    from .synth_features import SynthClipExtractor, SynthFrameExtractor, load_synth_net, temporal_control_rows
    from .video import VideoEvaluator, VideoProtocol
    from .video_io import open_clip_source

    wanted = {m.strip().lower() for m in args.metrics.split(",") if m.strip()}
    if not wanted or wanted - {"image", "video"}:
        raise ConfigError(f"--metrics must be a comma list of image, video; got {args.metrics!r}")
    device = _device(args.device)
    path, shipped = resolve_evaluator(args.model, "synth_features", "synth_features")
    net, cfg, info = load_synth_net(path, ema=not args.no_ema)
    image_ext, video_ext = SynthFrameExtractor(net, info), SynthClipExtractor.from_run(net, cfg, info)
    num_frames = args.num_frames or video_ext.num_frames
    frame_stride = args.frame_stride or video_ext.frame_stride
    views = _views(args.views) or tuple(cfg.model.views)
    protocol = VideoProtocol(views=views, num_frames=num_frames, frame_stride=frame_stride, cond_frames=args.cond_frames,
                             ref_window_stride=args.ref_window_stride or num_frames * frame_stride,
                             max_gen_clips=args.max_gen_clips, max_ref_clips=args.max_ref_clips)  # fmt: skip
    keep = (args.bootstrap if args.bootstrap is not None else 100) > 0

    def make_metrics():
        image_metrics, video_metrics = [], []
        if "image" in wanted:
            image_metrics.append(FrechetDistance(image_ext.to(device), name="FD_synth", keep_features=keep, identity=image_ext.protocol()))
        if "video" in wanted:
            video_metrics.append(FrechetDistance(video_ext.to(device), name="FD_synth-video", keep_features=keep,
                                                 identity=video_ext.protocol()))  # fmt: skip
        return image_metrics, video_metrics

    image_metrics, video_metrics = make_metrics()
    # sources yield every frame of the span; the protocol takes every frame_stride-th
    gen = open_clip_source(args.gen, views, protocol.span, protocol.ref_window_stride, 1, max_frames=protocol.span,
                           max_clips=args.max_gen_clips)  # fmt: skip
    ref = open_clip_source(args.ref, views, protocol.span, protocol.ref_window_stride, 1, max_frames=protocol.span,
                           max_clips=args.max_ref_clips)  # fmt: skip
    evaluator = VideoEvaluator(protocol, image_metrics, video_metrics, batch_size=args.batch_size)
    cache_dir = args.cache_dir if args.cache_dir is not None else args.out / "reference_stats"
    rows, meta = evaluator.evaluate(gen, ref, cache_dir, num_resamples=args.bootstrap if args.bootstrap is not None else 100,
                                    level=args.level, seed=args.seed)  # fmt: skip
    meta["weights"] = info
    meta["evaluator"] = shipped
    if not args.no_floor:
        floor, meta["floor"] = fd_floor_rows(make_metrics, protocol, ref, batch_size=args.batch_size,
                                             num_resamples=args.bootstrap if args.bootstrap is not None else 100,
                                             level=args.level, seed=args.seed)  # fmt: skip
        rows += floor
    if "video" in wanted and not args.no_temporal_controls:
        floor_value = next((r.value for r in rows if r.metric.startswith("FD_synth-video (floor")), None)
        controls, meta["temporal_controls"] = temporal_control_rows(
            lambda: make_metrics()[1][0], video_ext.to(device), protocol, ref, cache_dir=cache_dir, batch_size=args.batch_size,
            num_resamples=args.bootstrap if args.bootstrap is not None else 100, level=args.level, seed=args.seed, floor=floor_value)  # fmt: skip
        rows += controls
    json_path, md_path = write_report(args.out, args.name or "fd_synth", "FD_synth (SynthTown-trained features; not FID/FVD)", rows, meta)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


def register(eval_subparsers) -> None:
    """Add ``layout``, ``consistency`` and ``fd-synth`` to the ``eval`` sub-parsers."""
    register_layout(eval_subparsers)
    register_consistency(eval_subparsers)
    register_fd_synth(eval_subparsers)
