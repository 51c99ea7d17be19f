"""What the camera DiT's control branch can see of a layout video through the frozen camera VAE.

    python benchmarks/bench_layout_codec.py --root ROOT [--vae DIR] [--clips 9] [--threads 2] [--json OUT.json]

The control branch reads each clip's per-camera layout video (the rendering of boxes, lanes,
walkways and skeletons that `camera-dit` trains on) as VAE latents. This script renders the
layout videos of ``--clips`` clips of ``--root`` (evenly spread; the tiny `camera-dit` clip cut,
six views at 128x72), puts them through the VAE (posterior mean, encode then decode) and reads
both the rendering and its round trip as layout classes (the exact palette; the round trip by its
nearest exact colour, ``layout_semantics(nearest=True)``). It prints the per-class IoU of the
round trip against the rendering, pooled over every pixel: 1 means the latents still hold that
class where it was drawn, 0 that the VAE erased it. ``--vae`` is a camera-vae run or checkpoint
directory (default: the shipped one).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from einops import rearrange

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.generate.camera import decode_frames, encode_frames
from genesis_drive.generate.checkpoints import SHIPPED_CHECKPOINTS
from genesis_drive.models.camera.vae import VideoVAE
from genesis_drive.models.evaluators.synth_features import SEG_CLASSES
from genesis_drive.train.checkpoint import load_run_model
from genesis_drive.train.tasks.camera_dit import DiTSamples, tiny
from genesis_drive.train.tasks.camera_vae import CameraVAEConfig
from genesis_drive.train.tasks.clip_task import spread
from genesis_drive.train.tasks.synth_features import layout_semantics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="nuScenes-format root (held-out scenes)")
    ap.add_argument("--vae", default=str(SHIPPED_CHECKPOINTS / "camera_vae"), help="camera-vae run or checkpoint directory")
    ap.add_argument("--clips", type=int, default=9, help="clips to read (evenly spread)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = tiny()
    vae, _, _ = load_run_model(a.vae, CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
    index = ClipIndex(NuScenesReader(a.root), cfg.clips.spec(cfg.views, cfg.image_size, lidar="none"))
    samples = DiTSamples(cfg.conditions)
    inter = np.zeros(len(SEG_CLASSES))
    union = np.zeros(len(SEG_CLASSES))
    start = time.perf_counter()
    picks = spread(len(index), a.clips)
    for n, i in enumerate(picks):
        video = rearrange(samples(index[i])["layout"], "v t c h w -> v t h w c")  # uint8
        with torch.no_grad():
            back = decode_frames(vae, encode_frames(vae, video))
        drawn = np.stack([layout_semantics(f) for f in video.reshape(-1, *video.shape[2:]).numpy()])
        seen = np.stack([layout_semantics(f, nearest=True) for f in back.reshape(-1, *back.shape[2:])])
        for k in range(len(SEG_CLASSES)):
            a_k, b_k = drawn == k, seen == k
            inter[k] += (a_k & b_k).sum()
            union[k] += (a_k | b_k).sum()
        print(f"clip {n + 1}/{len(picks)} ({index.refs[i].clip_id}), {time.perf_counter() - start:.0f} s", flush=True)
    iou = {name: float(inter[k] / union[k]) if union[k] else None for k, name in enumerate(SEG_CLASSES)}
    print(f"\nlayout video through the VAE, {len(picks)} clips x 6 views x {cfg.clips.num_frames} frames of {a.root}")
    print("| class | IoU of the round trip |\n|---|---|")
    for name, v in iou.items():
        print(f"| {name} | {'-' if v is None else f'{v:.3f}'} |")
    if a.json:
        atomic_write_json(a.json, {"root": a.root, "vae": a.vae, "clips": [index.refs[i].clip_id for i in picks], "iou": iou,
                                   "machine": platform.processor() or platform.machine()}, indent=1)


if __name__ == "__main__":
    main()
