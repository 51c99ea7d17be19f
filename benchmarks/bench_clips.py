"""Clips/s from ClipIndex on this machine (the data-loading cost every model pays).

    python benchmarks/bench_clips.py --root ROOT [--frames 8] [--size 256x144] [--workers 0 2]

Measures ClipIndex.load (JPEG decode, resize, annotation interpolation, LiDAR, map crop) and a
torch DataLoader over ClipDataset with N workers. Prints a markdown table row per setting.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.data import DataLoader

from genesis_drive.data.clips import ClipDataset, ClipIndex, ClipSpec, collate_clips
from genesis_drive.data.nuscenes import NuScenesReader


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", default="256x144", help="WxH resize target, or 'native'")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--repeats", type=int, default=2, help="passes over the index per setting")
    args = ap.parse_args()
    size = None if args.size == "native" else tuple(int(x) for x in args.size.split("x"))
    reader = NuScenesReader(args.root)
    spec = ClipSpec(num_frames=args.frames, window_stride=args.frames, image_size=size)
    index = ClipIndex(reader, spec)
    print(f"# {len(index)} clips of {args.frames} frames x 6 views, size {args.size}; "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    print("| setting | clips/s | frames (6 views) /s |")
    print("|---|---|---|")
    t = time.perf_counter()
    n = 0
    for _ in range(args.repeats):
        for i in range(len(index)):
            index.load(i)
            n += 1
    dt = time.perf_counter() - t
    print(f"| ClipIndex.load, 1 process | {n / dt:.2f} | {n * args.frames / dt:.1f} |")
    for w in args.workers:
        loader = DataLoader(ClipDataset(ClipIndex(reader, spec)), batch_size=1, num_workers=w, collate_fn=collate_clips)
        t = time.perf_counter()
        n = 0
        for _ in range(args.repeats):
            for _batch in loader:
                n += 1
        dt = time.perf_counter() - t
        print(f"| DataLoader(ClipDataset), {w} workers | {n / dt:.2f} | {n * args.frames / dt:.1f} |")


if __name__ == "__main__":
    main()
