"""`genesis-drive demo`: the whole pipeline on the embedded default data, end to end.

Steps (each is the same CLI command a user would type, run in-process):

1. ``world``      generate a SynthTown dataset (nuScenes format) with the chosen preset;
2. ``data validate``  check the root;
3. ``data show``  MP4 grid of the six views with boxes, BEV plot, LiDAR on the images, layout video;
4. ``curate``     DataCrafter: score, filter and caption clips into a Parquet manifest + report;
5. ``train``      train the tiny frame autoencoder on the camera frames (previews, checkpoints);
6. an ``index.html`` page linking everything, with the pictures inline.

Rerunning with the same ``--out`` and settings resumes: finished steps (their outputs present)
are skipped; other settings on an existing ``--out`` are refused (outputs would mix runs).
"""

from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path

from .data.atomic import atomic_write_text
from .errors import GenesisError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on a small SynthTown world and write an HTML page")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--preset", default="tiny", help="SynthTown preset (tiny: ~1 min here; full: much longer)")
    p.add_argument("--scenes", type=int, default=None, help="number of scenes (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fault-scale", type=float, default=0.2,
                   help="SynthTown fault rates x F (default 0.2: at full rates nearly every 48-image clip holds a fault)")
    p.add_argument("--train-steps", type=int, default=60, help="frame autoencoder steps")
    p.set_defaults(func=run)


def _step(title: str, argv: list[str]) -> float:
    from .cli import main

    print(f"\n== {title}: genesis-drive {' '.join(argv)}", flush=True)
    t = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        raise GenesisError(f"demo step '{title}' failed (exit {rc}); rerun the command above to see why")
    return time.perf_counter() - t


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    root, show, manifest, run_dir = out / "synthtown", out / "show", out / "curation" / "manifest.parquet", out / "runs" / "frame_ae"
    timings: dict[str, float] = {}
    settings = {"preset": args.preset, "scenes": args.scenes, "seed": args.seed, "fault_scale": args.fault_scale, "train_steps": args.train_steps}
    stamp = out / "demo_settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != settings:
        raise GenesisError(f"{out} holds a demo run with other settings ({stamp}); use another --out or delete it")
    atomic_write_text(stamp, json.dumps(settings))
    if not (root / "v1.0-trainval").is_dir():
        world = ["world", "--out", str(root), "--preset", args.preset, "--seed", str(args.seed), "--fault-scale", str(args.fault_scale)]
        if args.scenes:
            world += ["--scenes", str(args.scenes)]
        timings["world"] = _step("1/5 SynthTown", world)
    timings["validate"] = _step("2/5 validate", ["data", "validate", str(root)])
    timings["show"] = _step("3/5 show", ["data", "show", str(root), "--out", str(show), "--frames", "24"])
    if not manifest.is_file():
        timings["curate"] = _step("4/5 DataCrafter", ["curate", str(root), "--out", str(manifest), "--workers", "2"])
    if not (run_dir / "checkpoints").is_dir():
        timings["train"] = _step(
            "5/5 train frame_ae",
            ["train", "frame_ae", "--preset", "tiny", "--data", str(root), "--out", str(run_dir),
             "--set", f"train.steps={args.train_steps}", f"train.preview_every={args.train_steps}"],
        )
    page = write_index(out, root, show, manifest, run_dir, timings)
    print(f"\nDemo done: open {page}")
    return 0


def _rel(path: Path, base: Path) -> str:
    return html.escape(str(path.relative_to(base)))


def _injected_faults(root: Path, rows: list[dict]) -> dict[str, list[str]]:
    """clip_id -> SynthTown fault kinds recorded for any image inside the clip's time span."""
    from .data.nuscenes import NuScenesReader

    reader = NuScenesReader(root)
    faults = reader.extra_table("synthtown_fault")
    out: dict[str, list[str]] = {}
    for r in rows:
        tokens = r.get("frame_tokens") or []
        if not tokens:
            continue
        times = [reader.sample_data(t)["timestamp"] for t in tokens]
        kinds = {f["kind"] for f in faults if f["scene_token"] == r["scene_token"] and times[0] <= f["timestamp"] <= times[-1]}
        out[r["clip_id"]] = sorted(kinds)
    return out


def write_index(out: Path, root: Path, show: Path, manifest: Path, run_dir: Path, timings: dict[str, float]) -> Path:
    """An HTML page with the demo's pictures, videos, curation summary and training curve."""
    import pyarrow.parquet as pq

    parts = ["<html><head><meta charset='utf-8'><title>genesis-drive demo</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}img,video{max-width:100%}"
             "td,th{padding:2px 8px;text-align:left}</style></head><body>",
             "<h1>genesis-drive demo</h1>",
             f"<p>SynthTown dataset (nuScenes format): <code>{_rel(root, out)}</code></p>"]
    for name, label in (("views_boxes.mp4", "Six views with projected 3D boxes and pedestrian skeletons"),
                        ("layout.mp4", "Layout condition video (what the camera branch is conditioned on)")):
        if (show / name).is_file():
            parts.append(f"<h2>{label}</h2><video controls loop src='{_rel(show / name, out)}'></video>")
    for name, label in (("bev.png", "Bird's-eye view: LiDAR, boxes and map"), ("lidar_on_images.png", "LiDAR projected onto the cameras")):
        if (show / name).is_file():
            parts.append(f"<h2>{label}</h2><img src='{_rel(show / name, out)}'>")
    if manifest.is_file():
        rows = pq.read_table(manifest).to_pylist()
        kept = sum(bool(r.get("kept")) for r in rows)
        parts.append(f"<h2>DataCrafter</h2><p>{kept} of {len(rows)} clips kept. Manifest: <code>{_rel(manifest, out)}</code></p>")
        report = next((p for p in sorted(manifest.parent.rglob("*.html"))), None)
        if report is not None:
            parts.append(f"<p>Report: <a href='{_rel(report, out)}'>{_rel(report, out)}</a></p>")
        truth = _injected_faults(root, rows)
        parts.append("<p>Each clip is 8 frames x 6 views; SynthTown injects faults at known rates, so the "
                     "faults it recorded for a clip's images are shown beside DataCrafter's reasons.</p>")
        parts.append("<table><tr><th>clip</th><th>score S</th><th>kept</th><th>rejection reasons</th>"
                     "<th>injected faults (ground truth)</th><th>caption</th></tr>")
        for r in rows:
            text = html.escape(str(r.get("caption_text") or "")[:300])
            reasons = html.escape(", ".join(r.get("rejection_reasons") or []))
            faults = html.escape(", ".join(truth.get(r["clip_id"], [])))
            parts.append(f"<tr><td>{html.escape(r['clip_id'])}</td><td>{float(r.get('total') or 0):.3f}</td>"
                         f"<td>{'yes' if r.get('kept') else 'no'}</td><td>{reasons}</td><td>{faults}</td><td>{text}</td></tr>")
        parts.append("</table>")
    previews = sorted((run_dir / "previews").glob("*.png")) if run_dir.is_dir() else []
    if previews:
        parts.append(f"<h2>Frame autoencoder after training (input | reconstruction)</h2><img src='{_rel(previews[-1], out)}'>")
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        losses = [(d.get("step"), d.get("loss")) for d in lines if "loss" in d]
        if losses:
            parts.append(f"<p>Training loss: {losses[0][1]:.4f} at step {losses[0][0]} -> {losses[-1][1]:.4f} at step {losses[-1][0]}</p>")
    if timings:
        parts.append("<h2>Timings (this run)</h2><table>" + "".join(f"<tr><td>{k}</td><td>{v:.1f} s</td></tr>" for k, v in timings.items()) + "</table>")
    parts.append("</body></html>")
    return atomic_write_text(out / "index.html", "\n".join(parts))
