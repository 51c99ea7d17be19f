"""Camera DiT training step on one device: step time, tokens/s, peak memory and MFU (model FLOPs
utilisation), the number a lent GPU is for.

    python benchmarks/bench_dit_device.py [--preset paper] [--task-preset paper] [--device cuda] [--batch 1]
        [--precision bf16] [--warmup 2] [--repeats 5] [--compile] [--no-layout] [--peak-tflops X]
        [--threads 1] [--json OUT.json]

The step is ``bench_camera_dit``'s (``our_step``: the task's time / first-frame / condition-dropout
sampling, forward with the layout control branch, flow loss in fp32, backward, AdamW) of
``DIT_PRESETS[--preset]`` at the shapes of the camera-dit task preset ``--task-preset``, random
weights and conditions (values do not change the compute), built directly on ``--device``. The
paper preset checkpoints its blocks (``grad_checkpointing``), as it trains.

Reported: median step seconds over ``--repeats`` after ``--warmup`` (the device synchronised
around each step), video tokens per second, peak allocated memory (CUDA), the model FLOPs of one
step by ``bench_camera_dit.step_flops``'s rule (forward + backward = 3 x forward; the checkpoint
recompute not counted, the usual convention for MFU) and MFU = FLOPs / (step s x peak FLOP/s).
The peak is ``--peak-tflops`` or, for a GPU this script knows by name, its dense bf16 datasheet
figure (:data:`PEAK_BF16_TFLOPS`; fp32 steps on a GPU and CPU runs get no MFU without
``--peak-tflops``).

On a lent GPU (docs/training.md, "Measuring on a lent GPU", has the one-call command): the
machine's image lacks three of our dependencies on the import path (``open3d`` is imported only
where SynthTown ray casts; ``shapely`` and ``pytorch-msssim`` are carried as wheels).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.models.camera.dit import DIT_PRESETS, MultiViewDiT
from genesis_drive.train.tasks.camera_dit import CAMERA_DIT_PRESETS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_camera_dit import Shape, our_step, random_conditions, step_flops  # noqa: E402
from bench_train import cpu_name  # noqa: E402

#: Dense bf16 tensor-core peaks (TFLOP/s, datasheet, no sparsity) by a substring of
#: ``torch.cuda.get_device_name()``; the first match wins (PCIe before the SXM default).
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("H800", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
)


def peak_tflops(device: torch.device, precision: str, given: float | None) -> float | None:
    """``given``, else the datasheet bf16 peak of a known GPU (None: unknown, or not bf16)."""
    if given is not None:
        return given
    if device.type != "cuda" or precision != "bf16":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf for key, tf in PEAK_BF16_TFLOPS if key in name), None)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="paper", choices=sorted(DIT_PRESETS))
    ap.add_argument("--task-preset", default="paper", choices=sorted(CAMERA_DIT_PRESETS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="time torch.compile(model)")
    ap.add_argument("--no-layout", action="store_true", help="base blocks only (no layout control input)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's peak TFLOP/s for MFU")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    for name in ("batch", "repeats"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(a, name)}")
    if a.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {a.warmup}")
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device here")
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    task = CAMERA_DIT_PRESETS[a.task_preset]()
    mcfg = DIT_PRESETS[a.preset](16)
    s = Shape(task, mcfg, a.batch)
    gen = torch.Generator().manual_seed(0)
    cond = random_conditions(s, gen, dev)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(dev):
        model = MultiViewDiT(mcfg).train()
    build_s = time.perf_counter() - t0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    run = torch.compile(model) if a.compile else model
    with_layout = not a.no_layout
    bf16 = a.precision == "bf16"
    params = sum(p.numel() for p in model.parameters())
    print(f"{a.preset} DiT ({params / 1e6:.0f} M weights, built in {build_s:.1f} s) on {dev}: "
          f"latents {s.latents}, {s.video_tokens} video tokens per step", flush=True)

    def step() -> float:
        if cuda:
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        our_step(run, task, s, cond, opt, bf16, with_layout, gen, dev)
        if cuda:
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t

    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for i in range(a.warmup + a.repeats):
        dt = step()
        if i >= a.warmup:
            times.append(dt)
        done = i + 1
        print(f"step {done}/{a.warmup + a.repeats} ({'warm-up' if i < a.warmup else 'timed'}): {dt:.3f} s, "
              f"ETA {dt * (a.warmup + a.repeats - done):.0f} s", flush=True)
    step_s = statistics.median(times)
    flops = step_flops(mcfg, s, with_layout)
    peak = peak_tflops(dev, a.precision, a.peak_tflops)
    res = {
        "preset": a.preset, "task_preset": a.task_preset, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if cuda else cpu_name(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "precision": a.precision,
        "compile": a.compile, "with_layout": with_layout, "grad_checkpointing": mcfg.grad_checkpointing,
        "batch": a.batch, "latents": list(s.latents), "video_tokens": s.video_tokens, "params": params,
        "build_s": build_s, "step_s": step_s, "step_times_s": times, "tokens_per_s": s.video_tokens / step_s,
        "model_tflop_per_step": flops["total"] / 1e12, "model_tflop_dense": flops["dense"] / 1e12,
        "model_tflop_attention": flops["attention"] / 1e12, "achieved_tflops": flops["total"] / step_s / 1e12,
        "peak_tflops": peak, "mfu": None if peak is None else flops["total"] / step_s / (peak * 1e12),
        "peak_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else None,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "command": " ".join(sys.argv),
        "load_avg_1min": os.getloadavg()[0],
    }  # fmt: skip
    mfu = f"{100 * res['mfu']:.1f} %" if res["mfu"] is not None else "n/a (no peak known; --peak-tflops)"
    mem = f", peak memory {res['peak_memory_gib']:.1f} GiB" if cuda else ""
    print(f"\n{res['device_name']}: step {step_s:.3f} s (median of {a.repeats}), {res['tokens_per_s']:.0f} video tokens/s, "
          f"{res['model_tflop_per_step']:.4g} model TFLOP/step -> {res['achieved_tflops']:.4g} TFLOP/s, MFU {mfu}{mem}")
    if a.json:
        atomic_write_json(a.json, res, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "step_times_s"}))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
