"""`genesis-drive export ROOT --out DIR`: MP4s, frames, sweeps (.pcd.bin, PLY), BEV / LiDAR pictures, Rerun."""

from __future__ import annotations

import argparse
from pathlib import Path

from .writer import FORMATS, ExportConfig, export_root, parse_formats


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export scenes of a nuScenes-format root: mp4, frames, pcd, ply, bev, lidar-on-image, rrd")
    p.add_argument("root", type=Path, help="nuScenes-format dataset root (real or generated)")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced whole when it holds an earlier export)")
    p.add_argument("--scenes", nargs="+", default=(), metavar="NAME", help="scene names (default: every scene)")
    p.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--version", default=None, help="table version, e.g. v1.0-mini (auto when one)")
    p.add_argument("--tile-width", type=int, default=640, help="pixels per camera tile in the MP4 grid (default 640)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = ExportConfig(tuple(args.scenes), parse_formats(args.formats), args.tile_width, args.version)
    summary = export_root(args.root, args.out, config)
    for scene, counts in summary["scenes"].items():
        print(f"{scene}: " + ", ".join(f"{fmt} {n}" for fmt, n in counts.items()))
    print(f"export: {args.out}")
    return 0
