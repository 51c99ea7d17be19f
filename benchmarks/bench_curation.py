"""DataCrafter on SynthTown: fault detection quality per fault kind, and clips/s (local pool vs Ray).

    python benchmarks/bench_curation.py --work /tmp/bench_curation [--seed 7] [--scenes 10] \
        [--seconds 8] [--workers 2] [--out FILE.md]

The printed markdown section is what docs/benchmarks.md holds.

1. Generates a SynthTown split (``--seed``; the scorers were tuned on seeds 100-102, never on
   this one) with fault rates set so that about a quarter of the clips is fault-free
   (:func:`fault_config`), unless ``WORK/synthtown`` already exists.
2. Curates it with a local process pool and with Ray (``--workers`` each), timing both (offline
   captions included, caption embedding timed apart).
3. Labels every clip with the faults of its images (SynthTown's ``synthtown_fault`` table: all six
   cameras share timestamps, so a clip's images are the rows at its frames' timestamps) and
   reports, per fault kind, ROC-AUC / precision / recall of the matching sub-score against
   fault-free clips (and AUC against every clip without that kind).
4. Writes the markdown section to ``--out``.

Detection score of a clip for a kind = 1 - its sub-score; it is flagged when the sub-score is
below ``ScoreConfig.reason_below`` (the sub-score appears among its rejection reasons).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from genesis_drive.curation.manifest import read_manifest
from genesis_drive.curation.pipeline import RunOptions, curate
from genesis_drive.curation.scoring import ScoreConfig
from genesis_drive.curation.worker import CurationConfig
from genesis_drive.data.atomic import atomic_write_text
from genesis_drive.data.clips import ClipSpec
from genesis_drive.data.nuscenes import NuScenesReader

#: SynthTown fault kind -> the sub-score that should catch it.
KIND_TO_SUBSCORE = {
    "motion_blur": "blur",
    "overexposure": "exposure",
    "backlight": "backlight",
    "lens_dirt": "occlusion",
    "occlusion": "occlusion",
    "dropped_frame": "missing",
}


def fault_config():
    """Per-image rates low enough that many 8-frame x 6-view clips are fault-free."""
    from genesis_drive.world.config import FaultConfig, FaultRate

    return FaultConfig(
        (
            FaultRate("motion_blur", 0.006),
            FaultRate("overexposure", 0.006),
            FaultRate("backlight", 0.006),
            FaultRate("dropped_frame", 0.003),
            FaultRate("lens_dirt", 0.05, per="clip"),
            FaultRate("occlusion", 0.03, per="clip"),
        )
    )


def make_split(root: Path, seed: int, scenes: int, seconds: float) -> None:
    """Generate the SynthTown split (tiny-preset cameras, 256x144) at ``root``."""
    from genesis_drive.world.config import tiny
    from genesis_drive.world.generate import generate

    cfg = replace(tiny(), name=f"curation-bench-{seed}", num_scenes=scenes, seed=seed, scene_seconds=seconds, faults=fault_config(), write_buffers=False)
    generate(cfg, root, overwrite=True, progress=True)


def clip_labels(root: Path, rows: list[dict]) -> dict[str, set[str]]:
    """clip_id -> fault kinds present in any of its images."""
    reader = NuScenesReader(root)
    by_time: dict[tuple[str, int], set[str]] = {}
    for f in reader.extra_table("synthtown_fault"):
        by_time.setdefault((f["scene_token"], int(f["timestamp"])), set()).add(f["kind"])
    out = {}
    for r in rows:
        kinds: set[str] = set()
        for tok in r["frame_tokens"]:
            kinds |= by_time.get((r["scene_token"], int(reader.sample_data(tok)["timestamp"])), set())
        out[r["clip_id"]] = kinds
    return out


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive outranks a negative (ties count half): the ROC-AUC."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size)


def evaluate(rows: list[dict], labels: dict[str, set[str]], reason_below: float) -> list[dict]:
    scored = [r for r in rows if r["status"] == "ok"]
    clean = [r for r in scored if not labels[r["clip_id"]]]
    out = []
    for kind, sub in KIND_TO_SUBSCORE.items():
        pos = [r for r in scored if kind in labels[r["clip_id"]]]
        other = [r for r in scored if kind not in labels[r["clip_id"]]]
        def s(rs: list[dict], sub: str = sub) -> np.ndarray:
            return np.array([1.0 - r[f"score_{sub}"] for r in rs])

        def flag(rs: list[dict], sub: str = sub) -> np.ndarray:
            return np.array([r[f"score_{sub}"] < reason_below for r in rs], bool)

        tp, fn, fp = int(flag(pos).sum()), int((~flag(pos)).sum()), int(flag(clean).sum())
        out.append(
            {
                "kind": kind,
                "subscore": sub,
                "positives": len(pos),
                "clean": len(clean),
                "auc_vs_clean": roc_auc(s(pos), s(clean)),
                "auc_vs_rest": roc_auc(s(pos), s(other)),
                "precision": tp / (tp + fp) if tp + fp else float("nan"),
                "recall": tp / (tp + fn) if tp + fn else float("nan"),
            }
        )
    return out


def timed_curate(root: Path, out: Path, cfg: CurationConfig, run: RunOptions) -> tuple[float, int]:
    t = time.perf_counter()
    res = curate(root, out, cfg, replace(run, overwrite=True))
    return time.perf_counter() - t, res.clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="working folder (dataset, manifests)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray timing")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown section to this file")
    args = ap.parse_args()
    root = args.work / "synthtown"
    if not (root / "v1.0-trainval").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        make_split(root, args.seed, args.scenes, args.seconds)
    spec = ClipSpec(num_frames=8, window_stride=8, lidar="none")
    cfg = CurationConfig(clip_spec=spec, embed=False)
    run = RunOptions(workers=args.workers, report=False, progress=False)
    timings = {}  # name -> (seconds, 1-minute load average before the run: the machine is shared)
    for name, stem, ex in (  # each executor writes its own manifest (also with --workers 1)
        ("inline, 1 process", "inline", replace(run, workers=1)),
        (f"local pool, {args.workers} processes", "local", run),
        (f"Ray Data, {args.workers} actors (ray.init(num_cpus={args.workers}) included)", "ray", replace(run, ray=True)),
    ):
        if ex.ray and args.no_ray:
            continue
        load = os.getloadavg()[0]
        sec, n = timed_curate(root, args.work / f"{stem}.parquet", cfg, ex)
        timings[name] = (sec, load)
    rows = read_manifest(args.work / "local.parquet")
    if read_manifest(args.work / "inline.parquet") != rows or (not args.no_ray and read_manifest(args.work / "ray.parquet") != rows):
        sys.exit("the executors wrote different manifests")
    kept = sum(r["kept"] for r in rows)
    from genesis_drive.curation.encoder import SentenceEncoder
    from genesis_drive.curation.worker import caption_segments

    t = time.perf_counter()
    texts = [x for r in rows if r["caption_json"] for x in caption_segments(json.loads(r["caption_json"]))[1]]
    SentenceEncoder().encode(texts)
    t_embed = time.perf_counter() - t
    labels = clip_labels(root, rows)
    metrics = evaluate(rows, labels, ScoreConfig().reason_below)
    print(json.dumps(metrics, indent=1))

    lines = [
        "## DataCrafter (curation)",
        "",
        f"Measured {datetime.date.today().isoformat()} on this machine ({os.cpu_count()} CPU cores, {platform.machine()}, no GPU, shared with other jobs), with",
        f"`python benchmarks/bench_curation.py --work {args.work} --seed {args.seed} --scenes {args.scenes} --seconds {args.seconds} --workers {args.workers}`.",
        "",
        f"Held-out SynthTown split: seed {args.seed} (the scorers were tuned on seeds 100-102 only), {args.scenes} scenes x {args.seconds:g} s,",
        f"6 cameras at 256x144, 12 Hz; clips of 8 frames x 6 views, window stride 8: {n} clips ({kept} kept at the default threshold).",
        "Fault rates (per image: motion blur, over-exposure, backlight 0.6 %, dropped frame 0.3 %; per scene and camera: lens dirt 5 %, occlusion 3 %).",
        "",
        "### Fault detection (clip level)",
        "",
        "A clip is positive for a kind when any of its 48 images has it; negatives are fault-free clips. Score = 1 - sub-score;",
        "flagged = sub-score below 0.5 (listed in the rejection reasons).",
        "",
        "| fault kind | sub-score | positives | fault-free | ROC-AUC | precision | recall | AUC vs all other clips |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in metrics:
        lines.append(
            f"| {m['kind']} | {m['subscore']} | {m['positives']} | {m['clean']} | {m['auc_vs_clean']:.3f} | {m['precision']:.2f} | {m['recall']:.2f} | {m['auc_vs_rest']:.3f} |"
        )
    lines += [
        "",
        "### Throughput (score + offline caption, no embedding)",
        "",
        "Wall time of `curate` (planning, reader start-up in every worker, scoring, captioning, shard writes, merge).",
        "",
        "| executor | seconds | clips/s | load average before |",
        "|---|---|---|---|",
    ]
    for name, (sec, load) in timings.items():
        lines.append(f"| {name} | {sec:.1f} | {n / sec:.2f} | {load:.1f} |")
    lines += ["", f"Caption embedding (all-MiniLM-L6-v2 on CPU, {kept} kept clips x 7 segments, model load included): {t_embed:.1f} s.", ""]
    auc = {m["kind"]: m["auc_vs_clean"] for m in metrics}
    def goal(kind: str, g: float) -> str:
        return f"{auc[kind]:.3f} {'meets' if auc[kind] >= g else 'misses'} the goal {g}"

    lines += [
        "### Notes",
        "",
        f"* Goals: blur {goal('motion_blur', 0.95)}, over-exposure {goal('overexposure', 0.95)}; lens occlusion: the opaque",
        f"  `occlusion` kind {goal('occlusion', 0.9)}, the semi-transparent `lens_dirt` kind {goal('lens_dirt', 0.9)}.",
        "  Smudges of severity 0.3 are about 35 % opaque blotches a few pixels wide at 256x144. The dirt index scores soft,",
        "  out-of-focus blobs of the temporal median (blob response over the nearby sharp-edge strength) that are also",
        "  holes in the temporal-change map, per camera (absolute, not relative to the sibling cameras).",
        "* \"AUC vs all other clips\" is lower for blur and occlusion because other faults lower those sub-scores too (a",
        "  black dropped frame or a glare veil has no fine detail): the sub-scores measure image properties, not causes.",
        "* Executors wrote identical manifests (checked by the script). Ray's time includes starting Ray (about 10 s here);",
        "  the local pool forks its workers. Every worker measures the lens occlusion of the scenes it touches once",
        "  (shards never span scenes).",
        "* The machine is shared: a load average near or above the core count before a run means other jobs took",
        "  CPU time from it, which bounds the speed-up of 2 workers over 1.",
        "",
    ]
    if args.out is not None:
        atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
