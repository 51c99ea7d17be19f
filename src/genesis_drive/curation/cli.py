"""`genesis-drive curate ROOT --out MANIFEST`: DataCrafter clip curation and captioning."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from ..data.clips import ClipSpec
from ..data.schema import CAMERA_CHANNELS
from ..errors import ConfigError
from .scoring import SCORE_PRESETS
from .worker import CAPTIONER_BACKENDS, CurationConfig

__all__ = ["config_from_args", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curate",
        help="score, filter and caption the clips of a nuScenes-format root into a Parquet manifest",
        description="Split scenes into clips, score clarity / structure / aesthetics, keep clips with "
        "S >= threshold, caption and encode the kept ones, write a Parquet manifest and a report. "
        "Resumable: rerun the same command after an interruption.",
    )
    p.add_argument("root", type=Path, help="nuScenes-format dataset root")
    p.add_argument("--out", type=Path, required=True, help="manifest path (.parquet); parts, embeddings and report go beside it")
    p.add_argument("--version", default=None, help="table version, e.g. v1.0-mini (auto when there is one)")
    g = p.add_argument_group("clips")
    g.add_argument("--num-frames", type=int, default=8, help="frames per clip")
    g.add_argument("--frame-stride", type=int, default=1, help="reference frames between clip frames")
    g.add_argument("--window-stride", type=int, default=8, help="reference frames between clip starts")
    g.add_argument("--rate", choices=("camera", "keyframe"), default="camera", help="camera (12 Hz) or keyframe (2 Hz) frames")
    g.add_argument("--views", nargs="+", default=list(CAMERA_CHANNELS), metavar="CHANNEL", help="camera channels, reference first")
    g.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("W", "H"), help="resize clips to W x H before scoring")
    g = p.add_argument_group("scoring")
    g.add_argument("--preset", choices=sorted(SCORE_PRESETS), default="default", help="score preset")
    g.add_argument("--threshold", type=float, default=None, help="keep clips with S >= this (overrides the preset)")
    g.add_argument("--weights", type=float, nargs=3, default=None, metavar=("L1", "L2", "L3"), help="weights of clarity, structure, aesthetics")
    g = p.add_argument_group("captions")
    g.add_argument("--captioner", choices=CAPTIONER_BACKENDS, default="offline", help="caption backend (offline: annotations + image statistics)")
    g.add_argument("--vlm-path", default=None, help="local transformers vision-language model folder (for --captioner vlm)")
    g.add_argument("--encoder", default=None, help="local sentence-transformers folder (default: bundled all-MiniLM-L6-v2)")
    g.add_argument("--no-embed", action="store_true", help="do not encode captions")
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes / Ray actors")
    g.add_argument("--batch-size", type=int, default=16, help="most clips per shard (the unit of resumption; shards never span scenes)")
    g.add_argument("--ray", action="store_true", help="run the workers with Ray Data")
    g.add_argument("--ray-address", default=None, help="Ray cluster address (implies --ray); default: a local Ray")
    g.add_argument("--limit", type=int, default=None, help="curate only the first N planned clips")
    g.add_argument("--overwrite", action="store_true", help="recompute an existing manifest")
    g.add_argument("--no-report", action="store_true", help="skip the report")
    p.set_defaults(func=_curate)


def config_from_args(args: argparse.Namespace) -> CurationConfig:
    """The :class:`CurationConfig` the options describe."""
    try:
        spec = ClipSpec(
            num_frames=args.num_frames,
            frame_stride=args.frame_stride,
            window_stride=args.window_stride,
            rate=args.rate,
            views=tuple(args.views),
            image_size=tuple(args.image_size) if args.image_size else None,
            lidar="none",
        )
        score = SCORE_PRESETS[args.preset]()
        if args.threshold is not None:
            score = replace(score, threshold=args.threshold)
        if args.weights is not None:
            score = replace(score, weights=tuple(args.weights))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    unknown = [v for v in args.views if v not in CAMERA_CHANNELS]
    if unknown:
        raise ConfigError(f"--views: unknown channels {unknown}; expected from {CAMERA_CHANNELS}")
    return CurationConfig(
        clip_spec=spec,
        score=score,
        captioner=args.captioner,
        vlm_path=args.vlm_path,
        embed=not args.no_embed,
        encoder_path=args.encoder,
        version=args.version,
        batch_size=args.batch_size,
    )


def _curate(args: argparse.Namespace) -> int:
    from .pipeline import RunOptions, curate

    cfg = config_from_args(args)
    if cfg.captioner == "vlm":  # fail before any work when the model folder is missing
        from .vlm import check_model_dir

        check_model_dir(cfg.vlm_path)
    run = RunOptions(
        workers=max(1, args.workers),
        ray=args.ray or bool(args.ray_address),
        ray_address=args.ray_address,
        limit=args.limit,
        overwrite=args.overwrite,
        report=not args.no_report,
    )
    res = curate(args.root, args.out, cfg, run)
    print(f"manifest: {res.manifest} ({res.clips} rows, {res.kept} kept, {res.errors} not scored; {res.resumed_parts} shards resumed)")
    if res.embedding_store:
        print(f"embeddings: {res.embedding_store}")
    if res.report:
        print(f"report: {res.report}")
    return 0
