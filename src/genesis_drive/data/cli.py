"""`genesis-drive data {show,validate}`: look at a nuScenes-format root and check it."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect and validate nuScenes-format roots")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    show = dsub.add_parser("show", help="MP4 grid of the 6 views with boxes, BEV plot, LiDAR on images")
    show.add_argument("root", type=Path, help="nuScenes-format dataset root")
    show.add_argument("--version", default=None, help="table version, e.g. v1.0-mini (auto when one)")
    show.add_argument("--out", type=Path, default=Path("show"), help="output folder")
    show.add_argument("--scene", default=None, help="scene name (default: the first)")
    show.add_argument("--frames", type=int, default=24, help="frames in the video (12 Hz reference camera)")
    show.add_argument("--start", type=int, default=0, help="first reference-camera frame")
    show.set_defaults(func=_show)

    val = dsub.add_parser(
        "validate",
        help="list every problem of a root: errors (what breaks loading; exit 1) and warnings (absent optional parts; exit 0)",
    )
    val.add_argument("root", type=Path)
    val.add_argument("--version", default=None)
    val.add_argument("--no-files", action="store_true", help="skip checking that data files exist")
    val.set_defaults(func=_validate)


def _show(args: argparse.Namespace) -> int:
    from ..viz.show import write_clip_show
    from .clips import ClipIndex, ClipRef, ClipSpec
    from .nuscenes import NuScenesReader

    reader = NuScenesReader(args.root, args.version)
    scenes = {reader.scene_name(t): t for t in reader.scene_tokens()}
    name = args.scene or next(iter(scenes))
    if name not in scenes:
        raise DataError(f"no scene named {name!r}; scenes: {sorted(scenes)}", args.root, "--scene")
    spec = ClipSpec(num_frames=1, lidar="keyframe")
    index = ClipIndex(reader, spec)
    tokens = reader.channel_tokens(scenes[name], spec.views[0])[args.start : args.start + args.frames]
    if not tokens:
        raise DataError(f"scene {name} has no frames from --start {args.start}", args.root, "--start")
    clip = index.load(ClipRef(f"{name}:{args.start:04d}", scenes[name], name, tuple(tokens)))
    outputs = write_clip_show(clip, args.out)
    for kind, path in outputs.items():
        print(f"{kind}: {path}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .validate import validate_root

    problems = validate_root(args.root, args.version, check_files=not args.no_files)
    errs = [p for p in problems if p.is_error]
    for p in errs + [p for p in problems if not p.is_error]:  # errors first, each line starts with its severity
        print(p)
    print(f"{len(errs)} error(s), {len(problems) - len(errs)} warning(s) in {args.root}")
    return 1 if errs else 0
