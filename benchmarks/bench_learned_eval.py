"""Learned evaluators end to end on real SynthTown data: generate, train (tiny presets), evaluate.

1. SynthTown roots: ``--scenes`` training scenes (seed 0) and ``--heldout`` held-out scenes (seed 1).
2. The three tasks (``synth_features``, ``bev_layout``, ``depth``) train through the real loop.
3. On the held-out root, each evaluator is checked against a control it must tell apart:

   * layout faithfulness: mIoU with each keyframe's own images vs the images of another keyframe
     (a generator that ignores its layout);
   * consistency: images with their own LiDAR vs another keyframe's LiDAR;
   * FD_synth / FD_synth-video: held-out clips against: their other half (same-distribution floor),
     training clips (other scenes), and degraded copies (Gaussian blur, darkening, frames reversed).

Writes every number to ``OUT/results.json``. CPU-sized by default:

    python benchmarks/bench_learned_eval.py --out /tmp/learned_bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from genesis_drive.data.atomic import atomic_write_json


def _train(task_def, cfg, root: Path, run_dir: Path, name: str, steps: int, batch: int) -> dict:
    from genesis_drive.train.loop import train

    cfg = replace(cfg, train=replace(cfg.train, steps=steps, batch_size=batch, device="cpu", ckpt_every=steps, preview_every=0,
                                     log_every=max(1, steps // 10), warmup_steps=min(cfg.train.warmup_steps, steps // 10)))  # fmt: skip
    if (run_dir / "checkpoints").is_dir():
        return {"skipped": "run exists"}
    task = task_def.build(cfg, root)
    n = len(task.train_dataset())
    if n < batch:
        cfg = replace(cfg, train=replace(cfg.train, batch_size=n))
    t = time.perf_counter()
    result = train(task, cfg, run_dir, task_name=name)
    return {"steps": result.step, "seconds": time.perf_counter() - t, "final": result.metrics}


def _layout(run: Path, root: Path) -> dict:
    from genesis_drive.data.clips import collate_clips
    from genesis_drive.eval.layout_bev import (
        detection_map,
        iou_counts,
        iou_from_counts,
        keyframe_samples,
        load_bev_model,
        miou,
        predict_root,
        vehicle_blobs,
        vehicle_centers,
    )
    from genesis_drive.models.blocks import to_model_input

    model, cfg, _ = load_bev_model(run)
    own = predict_root(model, cfg, root)
    index, make = keyframe_samples(cfg, root)
    items = [make(index.load(i)) for i in range(len(index))]
    perm = np.roll(np.arange(len(items)), len(items) // 2)  # images of the keyframe half the set away
    inter, union, dets, truths = [], [], [], []
    with torch.no_grad():
        for i, j in enumerate(perm):
            b = collate_clips([items[i]])
            logits = model(to_model_input(items[j]["images"][None]), b["intrinsics"], b["cam_to_ego"])
            prob = torch.sigmoid(logits).numpy()
            a, u = iou_counts(prob >= 0.5, b["target"].numpy() >= 0.5)
            inter.append(a)
            union.append(u)
            dets.append(vehicle_blobs(prob[0, 3], cfg.model.grid))
            truths.append(vehicle_centers(index.load(i), 0, cfg.model.grid))
    inter, union = np.concatenate(inter), np.concatenate(union)
    return {
        "frames": len(items),
        "own_images": {"mIoU": miou(own.inter, own.union), "IoU": iou_from_counts(own.inter, own.union).tolist(),
                       "detection": detection_map(own.detections, own.truths)},
        "other_frame_images": {"mIoU": miou(inter, union), "IoU": iou_from_counts(inter, union).tolist(), "detection": detection_map(dets, truths)},
    }  # fmt: skip


def _consistency(run: Path, root: Path) -> dict:
    from genesis_drive.eval.consistency import (
        ConsistencyScorer,
        evaluate_root,
        load_depth_model,
        pool_stats,
    )

    model, _, _ = load_depth_model(run)
    matched, mismatched, _ = evaluate_root(ConsistencyScorer(model), root)
    return {"frames": len(matched), "paired": pool_stats(matched), "other_frame_lidar": pool_stats(mismatched)}


def _fd(run: Path, heldout: Path, train_root: Path) -> dict:
    from genesis_drive.eval.fd_metric import FrechetDistance
    from genesis_drive.eval.synth_features import (
        SynthClipExtractor,
        SynthFrameExtractor,
        load_synth_net,
    )
    from genesis_drive.eval.video_io import NuScenesClipSource

    net, cfg, info = load_synth_net(run)
    img, vid = SynthFrameExtractor(net, info), SynthClipExtractor.from_run(net, cfg, info)
    views = tuple(cfg.model.views)

    def clips(root: Path) -> list[np.ndarray]:
        c = cfg.clips
        src = NuScenesClipSource(root, views, c.num_frames, c.num_frames * c.frame_stride, c.frame_stride)
        return [frames[:, :: c.frame_stride] for _, frames in src]  # v t h w c

    def blur(c: np.ndarray) -> np.ndarray:
        return np.stack([[cv2.GaussianBlur(f, (0, 0), 8.0) for f in view] for view in c])

    def darker(c: np.ndarray) -> np.ndarray:
        return (c.astype(np.float32) * 0.6).astype(np.uint8)

    def feed(metric: FrechetDistance, data: list[np.ndarray], real: bool, video: bool) -> None:
        for c in data:
            x = torch.from_numpy(np.ascontiguousarray(c)).permute(0, 1, 4, 2, 3)  # v t 3 h w
            metric.update(x if video else x.flatten(0, 1), real=real)

    ref, tr = clips(heldout), clips(train_root)
    # (reference set, compared set): the first is a same-distribution floor (halves of the held-out clips)
    pairs = {
        "heldout_half_vs_half": (ref[0::2], ref[1::2]),
        "train_clips_other_scenes": (ref, tr),
        "blurred_sigma8px": (ref, [blur(c) for c in ref]),
        "darkened_x0.6": (ref, [darker(c) for c in ref]),
        "reversed_frames": (ref, [c[:, ::-1] for c in ref]),
    }
    out = {"ref_clips": len(ref), "train_clips": len(tr)}
    for video, ext, name in ((False, img, "FD_synth"), (True, vid, "FD_synth-video")):
        out[name] = {}
        for label, (a, b) in pairs.items():
            m = FrechetDistance(ext, name=name, keep_features=False)
            feed(m, a, True, video)
            feed(m, b, False, video)
            out[name][label] = float(m.compute())
    return out


def main() -> None:
    from genesis_drive.train.tasks.bev_layout import BEV_LAYOUT_PRESETS, BEV_LAYOUT_TASK
    from genesis_drive.train.tasks.depth import DEPTH_PRESETS, DEPTH_TASK
    from genesis_drive.train.tasks.synth_features import (
        SYNTH_FEATURE_PRESETS,
        SYNTH_FEATURES_TASK,
    )
    from genesis_drive.world.config import tiny
    from genesis_drive.world.generate import generate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--heldout", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only-fd", action="store_true", help="recompute only the FD_synth part of an existing results.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads},
                 "date": time.strftime("%Y-%m-%d"), "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    roots = {}
    for name, n, seed in (("train", args.scenes, 0), ("heldout", args.heldout, 1)):
        root = args.out / f"synthtown_{name}"
        if not root.is_dir():
            t = time.perf_counter()
            generate(replace(tiny(), num_scenes=n, scene_seconds=args.seconds, seed=seed), root)
            res[f"generate_{name}_s"] = time.perf_counter() - t
        roots[name] = root
    runs = args.out / "runs"
    previous = json.loads((args.out / "results.json").read_text()) if (args.out / "results.json").is_file() else {}
    res["train"] = {
        "synth_features": _train(SYNTH_FEATURES_TASK, SYNTH_FEATURE_PRESETS["tiny"](), roots["train"], runs / "synth", "synth_features", args.steps, 4),
        "bev_layout": _train(BEV_LAYOUT_TASK, BEV_LAYOUT_PRESETS["tiny"](), roots["train"], runs / "bev", "bev_layout", args.steps, 8),
        "depth": _train(DEPTH_TASK, DEPTH_PRESETS["tiny"](), roots["train"], runs / "depth", "depth", args.steps, 8),
    }  # fmt: skip
    for name, entry in res["train"].items():  # a reused run keeps the numbers of the run that trained it
        if "skipped" in entry and name in previous.get("train", {}):
            res["train"][name] = previous["train"][name]
    if args.only_fd and (args.out / "results.json").is_file():
        res = {**json.loads((args.out / "results.json").read_text()), "fd_synth": _fd(runs / "synth", roots["heldout"], roots["train"])}
        atomic_write_json(args.out / "results.json", res, indent=1)
        print(json.dumps(res["fd_synth"], indent=1))
        return
    res["layout"] = _layout(runs / "bev", roots["heldout"])
    res["consistency"] = _consistency(runs / "depth", roots["heldout"])
    res["fd_synth"] = _fd(runs / "synth", roots["heldout"], roots["train"])
    atomic_write_json(args.out / "results.json", res, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
