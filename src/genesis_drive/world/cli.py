"""``genesis-drive world``: generate a SynthTown dataset in nuScenes format."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from ..errors import ConfigError
from .config import PRESETS, preset

__all__ = ["register"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (e.g. 800x450), got {text!r}") from None
    return w, h


def register(subparsers) -> None:
    """Add the ``world`` subcommand."""
    p = subparsers.add_parser(
        "world",
        help="generate a SynthTown dataset (nuScenes format)",
        description="Generate SynthTown scenes (6 cameras, LIDAR_TOP, boxes, pedestrian keypoints, maps, "
        "sensor-fault labels) into a nuScenes-format dataset root.",
    )
    p.add_argument("--out", required=True, help="dataset root to create")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="size preset (default: tiny)")
    p.add_argument("--scenes", type=int, help="number of scenes (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files (default 0)")
    p.add_argument("--seconds", type=float, help="scene length in seconds (nuScenes: 20)")
    p.add_argument("--image-size", type=_size, metavar="WxH", help="camera image size in pixels")
    p.add_argument("--version", help="table version folder, v1.0-<split> (default v1.0-trainval)")
    p.add_argument("--no-buffers", action="store_true", help="do not keep depth/instance/material buffers")
    p.add_argument("--fault-scale", type=float, default=None, metavar="F",
                   help="multiply every sensor-fault rate by F (0 = no faults; default: the preset's rates)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing root")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from .generate import generate

    cfg = preset(args.preset)
    changes: dict = {"seed": args.seed}
    if args.scenes is not None:
        changes["num_scenes"] = args.scenes
    if args.seconds is not None:
        if args.seconds <= 0:
            raise ConfigError(f"--seconds must be > 0, got {args.seconds}")
        changes["scene_seconds"] = args.seconds
    if args.image_size is not None:
        changes["camera"] = dataclasses.replace(cfg.camera, image_size=args.image_size)
    if args.version is not None:
        changes["version"] = args.version
    if args.no_buffers:
        changes["write_buffers"] = False
    if args.fault_scale is not None:
        if args.fault_scale < 0:
            raise ConfigError(f"--fault-scale must be >= 0, got {args.fault_scale}")
        rates = tuple(dataclasses.replace(r, rate=min(1.0, r.rate * args.fault_scale)) for r in cfg.faults.rates)
        changes["faults"] = dataclasses.replace(cfg.faults, rates=rates)
    cfg = dataclasses.replace(cfg, **changes)
    stats = generate(cfg, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(
        f"wrote {stats.scenes} scenes to {args.out}: {stats.camera_frames} camera frames x 6 views, {stats.sweeps} LiDAR sweeps "
        f"({np.mean(stats.points_per_sweep):.0f} points each), {stats.keyframes} keyframes "
        f"({np.mean(stats.boxes_per_keyframe):.1f} boxes each), {sum(stats.faults.values())} faulty images, {stats.seconds:.1f} s"
    )
    return 0
