"""`genesis-drive demo`: generate held-out driving scenes with the shipped models, score them, report.

Steps (each the same CLI command a user would type, run in-process):

1. ``world``     a small SynthTown root of held-out scenes (seed 1000 by default: the shipped
   models were trained on seed 0's scenes and never saw these);
2. ``data validate``  check the root;
3. ``generate``  for each mode (free, first-frame, noisy-latent) the camera branch generates the six
   views of every scene from its layout, and the LiDAR branch its keyframe sweeps from the layout
   and the *generated* video, into one nuScenes-format root per mode (``--modalities camera,lidar``);
4. ``eval layout2d``  layout faithfulness of the generated frames, beside the real images (ceiling)
   and a layout-ignored control; LiDAR: Chamfer of the generated keyframe sweeps against the real
   ones beside the copy-reference control (the first keyframe's real sweep moved by the ego motion);
5. ``index.html``  one self-contained page (:mod:`genesis_drive.report`): real and generated videos
   per mode, BEV pictures, real and generated LiDAR in an interactive 3D view, the metric tables.

Rerunning with the same ``--out`` and settings resumes: finished steps (their outputs present) are
skipped; other settings on an existing ``--out`` are refused (outputs would mix runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .data.atomic import atomic_write_text
from .errors import GenesisError

MODES = ("free", "first-frame", "noisy-latent")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate held-out SynthTown scenes with the shipped models, evaluate them, write a report")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--scenes", type=int, default=1, help="held-out scenes to generate (default 1)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per scene (default 4: 8 keyframes; the LiDAR DiT needs >= 7)")
    p.add_argument("--seed", type=int, default=1000, help="SynthTown seed of the held-out scenes (default 1000; the models saw seed 0)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="generation modes (default: all three)")
    p.add_argument("--steps", type=int, default=8, help="sampler steps (default 8)")
    p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance of the camera DiT (default 1: none, half the cost)")
    p.add_argument("--checkpoints", type=Path, default=None, help="networks folder (default: the shipped checkpoints)")
    p.set_defaults(func=run)


def _step(title: str, argv: list[str]) -> float:
    from .cli import main

    print(f"\n== {title}: genesis-drive {' '.join(argv)}", flush=True)
    t = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        raise GenesisError(f"demo step '{title}' failed (exit {rc}); rerun the command above to see why")
    return time.perf_counter() - t


def lidar_scores(real_root: Path, gen_root: Path) -> dict:
    """Mean Chamfer (m^2, ``vidar32`` region and ego box) of ``gen_root``'s keyframe LIDAR_TOP
    sweeps after the first of each scene against the real ones of ``real_root``, and the same for
    the copy-reference control (each scene's first real sweep moved by the ego motion)."""
    from .data.geometry import transform_points
    from .data.nuscenes import NuScenesReader
    from .data.chamfer import CHAMFER_PROTOCOLS, chamfer_distance, filter_points

    p = CHAMFER_PROTOCOLS["vidar32"]
    region = {"x_range": p.x_range, "y_range": p.y_range, "z_range": p.z_range, "ego_box": p.ego_box}
    real, gen = NuScenesReader(real_root), NuScenesReader(gen_root)
    scores, control = [], []
    for scene in real.scene_tokens():
        tokens = real.sample_tokens(scene)
        sweeps = [real.lidar_sweep(real.nusc.get("sample", t)["data"]["LIDAR_TOP"]) for t in tokens]
        s2g = [s.ego_to_global.matrix() @ s.sensor_to_ego.matrix() for s in sweeps]
        for k in range(1, len(tokens)):
            truth = filter_points(sweeps[k].points[:, :3].astype(np.float64), **region)
            made = gen.lidar_sweep(gen.nusc.get("sample", tokens[k])["data"]["LIDAR_TOP"]).points
            moved = transform_points(np.linalg.inv(s2g[k]) @ s2g[0], sweeps[0].points[:, :3])
            for out, pts in ((scores, made[:, :3]), (control, moved)):
                cloud = filter_points(np.asarray(pts, dtype=np.float64), **region)
                out.append(chamfer_distance(cloud, truth, squared=True, workers=1) if len(cloud) and len(truth) else float("inf"))
    return {"chamfer": float(np.mean(scores)), "copy_reference": float(np.mean(control)), "keyframes": len(scores)}


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    root = out / "synthtown"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "func")}
    stamp = out / "demo_settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != settings:
        raise GenesisError(f"{out} holds a demo run with other settings ({stamp}); use another --out or delete it")
    atomic_write_text(stamp, json.dumps(settings))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if not (root / "v1.0-trainval").is_dir():
        timings["world"] = _step("1/5 SynthTown (held-out scenes)", [
            "world", "--out", str(root), "--preset", "tiny", "--scenes", str(args.scenes), "--seconds", str(args.seconds),
            "--seed", str(args.seed)])  # fmt: skip
    timings["validate"] = _step("2/5 validate", ["data", "validate", str(root)])
    ckpt = ["--checkpoints", str(args.checkpoints)] if args.checkpoints else []
    results = {}
    for i, mode in enumerate(args.modes):
        gen = out / "generated" / mode
        if not (gen / "generated" / "lidar.json").is_file():
            timings[f"generate {mode}"] = _step(f"3/5 generate ({mode}, camera + LiDAR)", [
                "generate", "--from", str(root), "--out", str(gen), "--modalities", "camera,lidar", "--mode", mode,
                "--steps", str(args.steps), "--guidance", str(args.guidance), "--seed", "0", "--overwrite", *ckpt])  # fmt: skip
        ev = out / "eval" / mode
        if not (ev / "layout2d.json").is_file():
            timings[f"eval {mode}"] = _step(f"4/5 evaluate ({mode})", [
                "eval", "layout2d", "--gen", str(gen), "--ref", str(root), "--out", str(ev), "--bootstrap", "200"])  # fmt: skip
        results[mode] = {"layout2d": json.loads((ev / "layout2d.json").read_text()), "lidar": lidar_scores(root, gen)}
    t1 = time.perf_counter()
    page = write_page(out, root, results, timings)
    timings["report"] = time.perf_counter() - t1
    atomic_write_text(out / "demo_timings.json", json.dumps({**timings, "total": time.perf_counter() - t0}, indent=1))
    print(f"\nDemo done in {time.perf_counter() - t0:.0f} s: open {page}")
    return 0


def write_page(out: Path, root: Path, results: dict, timings: dict[str, float]) -> Path:
    """``out/index.html``: the self-contained report of the demo (module docstring)."""
    from .data.nuscenes import NuScenesReader
    from .report.html import MetricRow, MetricTable, Section, Text, write_report
    from .report.scene import scene_section

    rows, lidar = [], []
    for mode, r in results.items():
        lay = r["layout2d"]
        ci = lay.get("miou_ci") or {}
        rows.append(MetricRow(f"layout2d mIoU, {mode}", float(lay["miou"]), ci.get("low"), ci.get("high"), "",
                              (("real images (ceiling)", float(lay["real"]["miou"])),
                               ("layout ignored (control)", float(lay["control"]["miou"]) if lay.get("control") else float("nan"))),
                              "shipped layout2d evaluator; bootstrap over scenes"))  # fmt: skip
        li = r["lidar"]
        lidar.append(MetricRow(f"LiDAR Chamfer, {mode}", li["chamfer"], None, None, "m^2", (("copy reference (control)", li["copy_reference"]),),
                               f"vidar32 region, {li['keyframes']} keyframes after the first"))  # fmt: skip
    intro = Text("Held-out SynthTown scenes (never seen in training) generated from their layouts by the shipped tiny "
                 "models: the camera DiT makes the six views, the LiDAR DiT the keyframe sweeps from the layout and the "
                 "generated video. Tiny CPU models: read the numbers beside their controls (docs/benchmarks.md).")  # fmt: skip
    timing = Text("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    sections = [Section("Scores", (intro, MetricTable("Camera: layout faithfulness", tuple(rows)),
                                   MetricTable("LiDAR: generated vs real keyframe sweeps", tuple(lidar)), timing))]
    reader = NuScenesReader(root)
    for mode in results:
        for scene in sorted(reader.scene_name(t) for t in reader.scene_tokens()):
            sec = scene_section(root, scene, out / "report_files" / mode, keyframe=1, compare_root=out / "generated" / mode,
                                labels=("real", mode), tile_width=256)  # fmt: skip
            sections.append(Section(f"{mode}: {sec.title}", sec.items))
    return write_report(out / "index.html", "genesis-drive demo", sections)
