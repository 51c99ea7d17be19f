"""Training-engine throughput: optimizer steps per second of a task, fp32 vs bf16 in one process.

Each precision trains the same task/preset through :func:`genesis_drive.train.loop.train` (the
full engine: data loading, autocast, clipping, AdamW, EMA, logging) for ``--warmup`` steps and
then ``--steps`` timed steps; evaluation and previews are off and the only checkpoint comes
after the timed window. Without ``--data`` a synthetic nuScenes-style JPEG root is written to a
temporary directory.

    python benchmarks/bench_train.py                       # frame_ae tiny, this machine
    python benchmarks/bench_train.py --preset small --set train.batch_size=16 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genesis_drive.config import apply_overrides
from genesis_drive.train.cli import resolve_run_config
from genesis_drive.train.distributed import init_distributed
from genesis_drive.train.loop import train


def synthetic_root(root: Path, n_per_channel: int, size: tuple[int, int] = (400, 225)) -> Path:
    """JPEGs under root/samples/CAM_*/ (gradients plus noise blocks), ``size`` = (width, height)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    for c, channel in enumerate(("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_BACK")):
        d = root / "samples" / channel
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_channel):
            img = np.stack([(x + 7 * i) % 256, (y * 2 + 50 * c) % 256, (x + y + 13 * i) % 256], -1).astype(np.uint8)
            r, s = rng.integers(0, size[1] - 40), rng.integers(0, size[0] - 60)
            img[r : r + 40, s : s + 60] = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
            Image.fromarray(img).save(d / f"bench__{channel}__{i:06d}.jpg", quality=90)
    return root


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def measure(task_name: str, preset: str, overrides: list[str], precision: str, data: Path, out: Path,
            warmup: int, steps: int) -> dict[str, float]:
    task_def, cfg = resolve_run_config(task_name, preset, [], overrides)
    cfg = apply_overrides(cfg, [
        f"train.precision={precision}", f"train.steps={warmup + steps}", "train.log_every=1",
        "train.eval_every=0", "train.preview_samples=0", f"train.ckpt_every={warmup + steps}",
    ])
    env = init_distributed(cfg.train.device)
    train(task_def.build(cfg, data), cfg, out, task_name=task_name, env=env)
    rows = {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r}
    seconds = rows[warmup + steps]["time"] - rows[warmup]["time"]
    return {"steps_per_s": steps / seconds, "samples_per_s": steps * cfg.train.batch_size / seconds,
            "batch_size": cfg.train.batch_size, "loss": rows[warmup + steps]["loss"], "device": str(env.device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="frame_ae")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", type=Path, help="nuScenes-format root (default: synthetic JPEGs)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=1, help="runs per precision (interleaved); the median is shown")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data or synthetic_root(tmp / "data", n_per_channel=40)
        runs: dict[str, list[dict[str, float]]] = {p: [] for p in args.precisions.split(",")}
        for r in range(args.repeats):  # precisions interleaved, so slow drifts in load hit both alike
            for precision in runs:
                runs[precision].append(measure(args.task, args.preset, args.overrides, precision, data,
                                               tmp / f"run-{precision}-{r}", args.warmup, args.steps))
        results = {p: min(rs, key=lambda x: abs(x["steps_per_s"] - statistics.median(y["steps_per_s"] for y in rs)))
                   for p, rs in runs.items()}  # the median run
    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {results[next(iter(results))]['device']}"
          + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else ""))
    load = ", load average %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    print(f"date: {time.strftime('%Y-%m-%d')}{load}; task {args.task}, preset {args.preset}, overrides {args.overrides}, "
          f"{args.warmup} warm-up + {args.steps} timed steps, median of {args.repeats} run(s)\n")
    print("| precision | batch | steps/s | samples/s | speed-up vs fp32 | loss at end | steps/s of each run |")
    print("|---|---|---|---|---|---|---|")
    base = results.get("fp32", next(iter(results.values())))["steps_per_s"]
    for precision, r in results.items():
        print(f"| {precision} | {r['batch_size']} | {r['steps_per_s']:.2f} | {r['samples_per_s']:.1f} | "
              f"{r['steps_per_s'] / base:.2f}x | {r['loss']:.5g} | "
              + ", ".join(f"{x['steps_per_s']:.2f}" for x in runs[precision]) + " |")


if __name__ == "__main__":
    main()
