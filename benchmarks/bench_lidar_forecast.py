"""LiDAR forecasting on held-out scenes: Chamfer@1/2/3 s and BEV MMD / JSD of the LiDAR DiT beside
its controls, the paper's ablations, sampling time, and a picture.

    python benchmarks/bench_lidar_forecast.py --checkpoints DIR --root HELDOUT --out OUT [--steps 20] [--seed 0]
        [--protocol vidar32] [--threads 1] [--rows forecast,no-camera,no-reference,copy-reference,reconstruct]

``DIR`` holds ``lidar_ae/``, ``lidar_dit/`` and ``camera_vae/`` (:mod:`genesis_drive.generate.checkpoints`).
Rows (each the same ``genesis-drive generate --modalities lidar`` a user runs, then
``genesis-drive eval lidar``'s evaluator):

* ``forecast``: the DiT with every condition (reference sweep, layout, real camera images lifted to
  BEV, boxes, ego);
* ``no-camera`` / ``no-reference``: the same model sampled with the camera features / the reference
  sweep dropped (``--drop-conditions``; the model was trained with those groups dropped 10 % of the
  time, so this is an inference-time ablation, not a retrained one);
* ``copy-reference``: the baseline the issue names, the keyframe's own sweep moved by the known ego
  motion (no network);
* ``reconstruct``: the AE's round trip of the true future sweeps (the ceiling any forecast through
  this AE can reach).

Writes ``OUT/<row>/`` (the generated sweeps), ``OUT/forecast.json`` (every metric with its bootstrap
interval, timings, machine, command) and ``OUT/forecast.md`` (the table), and ``OUT/forecast.png``:
for one keyframe, BEV of the real future sweep | copy-reference | forecast at +1, +2, +3 s, and
``OUT/forecast_on_cameras.png``: the real (top) and forecast (bottom) sweep 1 s ahead projected onto
that keyframe's real front and back images.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genesis_drive.data.atomic import atomic_write_json, atomic_write_text
from genesis_drive.data.nuscenes import NuScenesReader, read_lidar_points
from genesis_drive.data.chamfer import CHAMFER_PROTOCOLS
from genesis_drive.eval.lidar import LidarEvaluator, scan_generated_sweeps
from genesis_drive.export.pictures import lidar_on_images
from genesis_drive.generate.checkpoints import checkpoint_dirs
from genesis_drive.generate.lidar import forecast_root, load_lidar_networks
from genesis_drive.viz.video import write_png

ROWS = {
    "forecast": ("forecast", ()),
    "no-camera": ("forecast", ("camera",)),
    "no-reference": ("forecast", ("reference",)),
    "copy-reference": ("copy-reference", ()),
    "reconstruct": ("reconstruct", ()),
}


def bev_picture(path: Path, root: Path, out: Path, rows: list[str], extent: float = 32.0) -> None:
    """BEV scatter (sensor frame: x right, y forward) of one keyframe's real future sweeps beside
    the rows' sweeps at +1, +2, +3 s (2, 4, 6 keyframes ahead), coloured by height."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reader = NuScenesReader(root)
    gens = {r: {(s.sample_token, s.offset): s.path for s in scan_generated_sweeps(out / r)} for r in rows}
    token = sorted({t for t, _ in gens[rows[0]]})[0]
    offsets = [k for k in (2, 4, 6) if (token, k) in gens[rows[0]]]
    fig, axes = plt.subplots(len(offsets), 1 + len(rows), figsize=(3.2 * (1 + len(rows)), 3.2 * len(offsets)), squeeze=False)
    for i, k in enumerate(offsets):
        tok = token
        for _ in range(k):
            tok = reader.nusc.get("sample", tok)["next"]
        real = reader.lidar_sweep(reader.nusc.get("sample", tok)["data"]["LIDAR_TOP"]).points
        clouds = [("real", real)] + [(r, read_lidar_points(gens[r][(token, k)])) for r in rows]
        for j, (name, pts) in enumerate(clouds):
            ax = axes[i, j]
            keep = (np.abs(pts[:, 0]) < extent) & (np.abs(pts[:, 1]) < extent)
            ax.scatter(pts[keep, 0], pts[keep, 1], s=0.2, c=np.clip(pts[keep, 2], -2.5, 1.0), cmap="viridis")
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name} +{k / 2:g} s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def camera_picture(path: Path, root: Path, out: Path, row: str, offset: int = 2) -> None:
    """The real future sweep and the ``row`` forecast ``offset`` keyframes ahead projected onto that
    keyframe's real CAM_FRONT and CAM_BACK images (coloured by depth), one row each."""
    reader = NuScenesReader(root)
    gen = {(s.sample_token, s.offset): s.path for s in scan_generated_sweeps(out / row)}
    token = sorted({t for t, _ in gen})[0]
    tok = token
    for _ in range(offset):
        tok = reader.nusc.get("sample", tok)["next"]
    sweep = reader.lidar_sweep(reader.nusc.get("sample", tok)["data"]["LIDAR_TOP"])
    rows = []
    for pts in (sweep.points, read_lidar_points(gen[(token, offset)])):  # both in that sweep's sensor frame
        world = sweep.ego_to_global.apply(sweep.sensor_to_ego.apply(np.asarray(pts[:, :3], dtype=np.float64)))
        rows.append(np.concatenate(lidar_on_images(reader, tok, ("CAM_FRONT", "CAM_BACK"), world, max_depth=40.0), axis=1))
    write_png(path, np.concatenate(rows, axis=0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", required=True, type=Path)
    ap.add_argument("--root", required=True, type=Path, help="held-out nuScenes-format root (never trained or tuned on)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {list(ROWS)}")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=1.5, help="LiDAR DiT guidance (1.5: chosen on the seed-2000 validation root)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--protocol", default="vidar32", choices=sorted(CHAMFER_PROTOCOLS))
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [r.strip() for r in a.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad:
        print(f"error: unknown rows {bad}; expected {list(ROWS)}", file=sys.stderr)
        return 1
    dirs = checkpoint_dirs(a.checkpoints, "lidar")
    nets = load_lidar_networks(dirs)
    reader = NuScenesReader(a.root)
    protocol = CHAMFER_PROTOCOLS[a.protocol]
    results = {}
    for row in rows:
        mode, drop = ROWS[row]
        t0 = time.perf_counter()
        out = forecast_root(a.root, a.out / row, nets=None if mode == "copy-reference" else nets, mode=mode, seed=a.seed,
                            steps=a.steps, guidance=a.guidance, drop=drop, overwrite=True)  # fmt: skip
        seconds = time.perf_counter() - t0
        keyframes = json.loads((out / "forecast.json").read_text())["keyframes"]
        metrics, _ = LidarEvaluator(reader, protocol, workers=1).evaluate(scan_generated_sweeps(out), num_resamples=a.bootstrap)
        results[row] = {
            "metrics": {m.metric: {"value": m.value, "ci": m.ci.to_dict() if m.ci else None, "unit": m.unit} for m in metrics},
            "seconds": round(seconds, 1), "keyframes": keyframes, "seconds_per_forecast": round(seconds / keyframes, 2),
        }  # fmt: skip
        print(f"{row}: {keyframes} forecasts in {seconds:.0f} s", flush=True)
    if "copy-reference" in results:
        base = results["copy-reference"]["metrics"]
        for row, r in results.items():
            r["ratio_to_copy_reference"] = {k: r["metrics"][k]["value"] / base[k]["value"] for k in r["metrics"] if k.startswith("Chamfer")}
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or platform.machine(),
        "threads": a.threads, "command": " ".join(sys.argv), "protocol": protocol.to_dict(), "steps": a.steps,
        "guidance": a.guidance, "seed": a.seed,
        "networks": {k: {"checkpoint": str(v["checkpoint"]), "step": v["step"]} for k, v in nets.info.items()},
    }  # fmt: skip
    atomic_write_json(a.out / "forecast.json", {"meta": meta, "rows": results}, indent=1)
    names = [k for k in next(iter(results.values()))["metrics"]]
    lines = ["| row | " + " | ".join(names) + " | s / forecast |", "|---|" + "---|" * (len(names) + 1)]
    for row, r in results.items():
        cells = []
        for k in names:
            m = r["metrics"][k]
            ci = f" [{m['ci']['low']:.3g}, {m['ci']['high']:.3g}]" if m["ci"] else ""
            cells.append(f"{m['value']:.3g}{ci}")
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {r['seconds_per_forecast']} |")
    atomic_write_text(a.out / "forecast.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    pic = [r for r in ("copy-reference", "forecast") if r in results]
    if pic:
        bev_picture(a.out / "forecast.png", a.root, a.out, pic)
    if "forecast" in results:
        camera_picture(a.out / "forecast_on_cameras.png", a.root, a.out, "forecast")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
