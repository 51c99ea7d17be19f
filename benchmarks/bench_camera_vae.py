"""Held-out reconstruction quality and speed of a trained `camera-vae` run.

    python benchmarks/bench_camera_vae.py --run RUN_DIR --root HELDOUT_ROOT [--clips N] [--threads 1]
        [--timing-repeats 3] [--json OUT.json]

Loads the run's newest checkpoint (EMA weights) with ``load_run_model``, cuts every scene of
``--root`` into non-overlapping clips of the run's clip length (all six views at the run's image
size), and reconstructs ``--clips`` of them (evenly spread; default all) through the posterior
mean in fp32: PSNR (dB on [0, 1], per view-frame image, averaged per clip), SSIM (11 px Gaussian
window), L1, with a 95% bootstrap interval over clips; the raw-latent mean / std (what
``model.shift_factor`` / ``scaling_factor`` are set from); encode and decode wall time per
6-view clip in fp32 and bf16 autocast (median of ``--timing-repeats``, after one warm-up); and
the size of the checkpoint's EMA weight file. Prints a markdown summary.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.models.camera.vae import VideoVAE
from genesis_drive.train.checkpoint import load_run_model
from genesis_drive.train.tasks.camera_vae import CameraVAEConfig, VideoSamples, clip_spec_of, score_clip, to_videos
from genesis_drive.train.tasks.clip_task import spread


def bootstrap_ci(values: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean over ``values`` (resampled with replacement)."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(reps, len(v)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="camera-vae run directory (or one checkpoint directory)")
    ap.add_argument("--root", required=True, help="held-out nuScenes-format root")
    ap.add_argument("--clips", type=int, default=0, help="clips to score (evenly spread); 0 = all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timing-repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, cfg, info = load_run_model(args.run, CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
    ckpt = Path(info["checkpoint"])
    ema_file = ckpt / "ema.safetensors"
    weights_mb = (ema_file if ema_file.is_file() else ckpt / "model.safetensors").stat().st_size / 2**20
    n_params = sum(p.numel() for p in model.parameters())

    index = ClipIndex(NuScenesReader(args.root), clip_spec_of(cfg, non_overlapping=True))
    picks = spread(len(index), args.clips or len(index))
    transform = VideoSamples()

    psnr, ssim_v, l1 = [], [], []
    s = s2 = cnt = 0.0
    t0 = time.perf_counter()
    first = None
    for i in picks:
        x = to_videos(transform(index.load(i))["video"][None])
        first = x if first is None else first
        r = score_clip(model, x, cfg.loss.ssim_window)
        psnr.append(r["psnr"].item())
        ssim_v.append(r["ssim"].item())
        l1.append(r["l1"].item())
        z = r["z"].double()
        s, s2, cnt = s + z.sum().item(), s2 + z.square().sum().item(), cnt + z.numel()
    score_s = time.perf_counter() - t0
    z_mean = s / cnt
    z_std = (s2 / cnt - z_mean**2) ** 0.5

    timing = {}
    with torch.no_grad():
        for prec in ("fp32", "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                z = model.encode_raw(first)
                timing[f"encode_{prec}_s"] = timed(lambda: model.encode_raw(first), args.timing_repeats)
                timing[f"decode_{prec}_s"] = timed(lambda: model.decode_raw(z), args.timing_repeats)

    out = {
        "run": str(args.run), "checkpoint": str(ckpt), "step": info["step"], "root": args.root,
        "clips": len(picks), "views": len(cfg.views), "frames": cfg.clips.num_frames, "image_size": list(cfg.image_size),
        "psnr": statistics.fmean(psnr), "psnr_ci95": bootstrap_ci(psnr), "ssim": statistics.fmean(ssim_v),
        "ssim_ci95": bootstrap_ci(ssim_v), "l1": statistics.fmean(l1), "psnr_min_clip": min(psnr),
        "latent_mean": z_mean, "latent_std": z_std, "scaling_factor_measured": 1.0 / z_std,
        "config_scaling_factor": cfg.model.scaling_factor, "config_shift_factor": cfg.model.shift_factor,
        "params": n_params, "ema_weights_mb": weights_mb, "scoring_s": score_s, "threads": args.threads,
        "machine": f"{platform.machine()} {platform.processor()}".strip(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **timing,
    }
    if args.json:
        atomic_write_json(args.json, out, indent=1)
    lo, hi = out["psnr_ci95"]
    slo, shi = out["ssim_ci95"]
    print(f"# {args.run} (step {out['step']}), {len(picks)} held-out clips of {out['frames']} frames x {out['views']} views "
          f"at {cfg.image_size[0]}x{cfg.image_size[1]} from {args.root}; {args.threads} thread(s); {out['date']}")
    print("| PSNR dB (95% CI) | SSIM (95% CI) | L1 | worst clip PSNR | latent mean / std | 1/std | EMA weights |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {out['psnr']:.2f} ({lo:.2f}-{hi:.2f}) | {out['ssim']:.4f} ({slo:.4f}-{shi:.4f}) | {out['l1']:.4f} | "
          f"{out['psnr_min_clip']:.2f} | {z_mean:.4f} / {z_std:.4f} | {1 / z_std:.4f} | "
          f"{weights_mb:.1f} MB ({n_params / 1e6:.2f} M weights) |")
    print()
    print("| per 6-view clip | fp32 | bf16 |")
    print("|---|---|---|")
    for what in ("encode", "decode"):
        print(f"| {what} | {timing[f'{what}_fp32_s']:.3f} s | {timing[f'{what}_bf16_s']:.3f} s |")


if __name__ == "__main__":
    main()
