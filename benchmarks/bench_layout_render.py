"""Seconds per clip to render the per-camera layout video (layout.camera.clip_layout), beside the
clip's own loading (ClipIndex.load: JPEG decode, resize, annotations) as the reference.

    python benchmarks/bench_layout_render.py --root ROOT [--clips 12] [--sizes 128x72 512x288]

Clips are cut as the camera DiT's tiny preset cuts them (9 frames x 6 views, every 3rd frame) and
taken evenly over the root. The layout video is a condition of every camera-DiT training sample
(and of `generate`), so it is part of what filling the latent cache costs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.layout.camera import CameraLayoutConfig, clip_layout
from genesis_drive.train.tasks.camera_dit import tiny


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="nuScenes-format root (e.g. a SynthTown world)")
    ap.add_argument("--clips", type=int, default=12, help="clips timed, spread evenly over the root")
    ap.add_argument("--sizes", nargs="+", default=["128x72", "512x288"], help="layout sizes WxH")
    args = ap.parse_args()
    cfg = tiny()
    index = ClipIndex(NuScenesReader(args.root), cfg.clips.spec(cfg.views, cfg.image_size, lidar="none"))
    picks = sorted({round(i * (len(index) - 1) / max(1, args.clips - 1)) for i in range(args.clips)})
    t = time.perf_counter()
    clips = [index.load(i) for i in picks]
    load_s = (time.perf_counter() - t) / len(clips)
    boxes = sum(len(b) for c in clips for b in c.boxes) / sum(c.num_frames for c in clips)
    print(f"# {len(clips)} clips of {clips[0].num_frames} frames x {len(cfg.views)} views, {boxes:.1f} boxes per frame; "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    print("| work per clip | s/clip |")
    print("|---|---|")
    print(f"| ClipIndex.load at {cfg.image_size[0]}x{cfg.image_size[1]} (reference) | {load_s:.3f} |")
    for size in args.sizes:
        w, h = (int(x) for x in size.split("x"))
        for style in ("faces", "edges"):
            t = time.perf_counter()
            for c in clips:
                clip_layout(c, CameraLayoutConfig(box_style=style), (w, h))
            print(f"| clip_layout {size}, box_style={style} | {(time.perf_counter() - t) / len(clips):.3f} |")


if __name__ == "__main__":
    main()
