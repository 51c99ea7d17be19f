"""The SynthTown benchmark table (issue 12, item 7): joint camera + LiDAR generation on held-out
scenes in the three camera modes, every evaluator beside its controls, and the paper's ablations.

    python benchmarks/bench_synthtown.py --from HELDOUT_ROOT --work DIR [--checkpoints CKPT]
        [--scenes NAME ...] [--steps 10] [--guidance 2.0] [--seed 0] [--strength 0.6]
        [--modes free first-frame noisy-latent] [--ablations gt_img no-camera no-reference]
        [--protocol vidar32] [--bootstrap 200] [--reuse] [--device cpu]

One command; every number it reports is made by a ``genesis-drive`` command it runs (printed with
its wall time and recorded in ``DIR/synthtown.json``) or, for the cross-modal control, by the
functions of :mod:`genesis_drive.eval.consistency` in this process (the same scorer ``eval
consistency`` uses). Outputs: ``DIR/synthtown.json`` (every number, interval and command),
``DIR/synthtown.md`` (the tables), the generated roots ``DIR/joint_<mode>/``, ``DIR/lidar_<row>/``
and the evaluator reports ``DIR/eval/<root>/``.

Rows:

* ``joint, <mode>``: ``genesis-drive generate --modalities camera,lidar --mode <mode>`` (free /
  first-frame / noisy-latent at ``--strength``): the video first, then the LiDAR DiT conditioned on
  the *generated* video (the paper's gen_img), window after window (``generate/joint.py``).
* ``real data (ceiling)``: each evaluator on the real root (``eval layout2d`` / ``eval layout``
  real rows; FD_synth: the real root's same-distribution floor, half of its scenes vs the other
  half; consistency: real images with real LiDAR).
* ``control: layout ignored``: ``eval layout2d`` / ``eval layout``'s control (each keyframe's
  layout paired with the real images of the keyframe half the set away).
* ``copy-reference`` (baseline): the window's present real sweep moved by the known ego motion
  (``--modalities lidar --mode copy-reference``); ``AE round trip (LiDAR ceiling)``: the true future
  sweeps encoded and decoded (``--mode reconstruct``).
* Ablations: ``gt_img`` (``--modalities lidar --mode forecast``: the LiDAR DiT with the *real*
  images), ``no-camera`` (the same with ``--drop-conditions camera``: without camera BEV features),
  ``no-reference`` (joint free mode with ``--lidar-reference none``: layout + generated video only).
  Without structured captions / without pose keypoints need camera DiTs trained without them; the
  script checks the shipped camera DiT and prints why they are not measured.

Chamfer@1/2/3 s (``--protocol``, default ``vidar32``, squared m^2, each sweep in its own sensor
frame): the joint root generates every keyframe after keyframe 0 in windows of the LiDAR DiT's
horizon (6 keyframes = 3 s); window ``w`` starts at its present keyframe ``s`` and generates
``s + 1 .. s + 6`` (the last window is moved back and keeps only the keyframes not generated yet,
``generated/lidar.json``). Chamfer@1/2/3 s = the sweep generated 2 / 4 / 6 keyframes after its
window's start, paired with the real sweep at that keyframe; a pair counts only when that window
generated it. This is ``bench_lidar_forecast``'s definition (offset k after the conditioning
keyframe) restricted to the joint root's window starts; the forecast rows (gt_img, no-camera,
copy-reference, AE round trip) forecast from every keyframe and are scored on the *same* (start,
offset) pairs. Two scopes: ``all windows`` (later windows of the joint rollout start from the
sweep generated before, whereas the forecast rows start from the real sweep at every start:
they see more real LiDAR) and ``window 0`` (every row starts from keyframe 0's real sweep: the
like-for-like gt_img vs gen_img comparison).

Cross-modal consistency (shipped ``depth`` evaluator; AbsRel / delta<1.25 of the depth network's
prediction from each generated image at the projected LiDAR points, EdgeAlign): keyframes 1 .. n-1
of every scene (keyframe 0 holds the real sweep in a joint root). Control: the same generated
images with the *generated LiDAR of another layout*: the sweep of scene ``(i + S // 2) mod S``
(``S`` scenes, sorted) at the same keyframe index, expressed in its own ego frame and placed in
this keyframe's ego frame (the same sensor pose, another scene). ``paired - control`` with a 95 %
bootstrap over scenes (percentile; few scenes make it coarse) and over keyframes; the acceptance
("measurably better than the other-layout control") holds for a mode when the AbsRel difference's
scene-bootstrap interval lies below 0. ``eval consistency``'s own report (its control: the keyframe
half the list away moved through global poses) is run too and recorded.

Real nuScenes: pass its root as ``--from`` and the GPU as ``--device cuda``; ``layout2d`` needs
SynthTown truth buffers (``ROOT/synthtown/buffers``) and is reported as not measured without them;
the learned evaluators are SynthTown-trained (``--layout-model``, ``--fd-model``, ``--depth-model``
take others).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_camera_quality import halfway

from genesis_drive.data.atomic import atomic_write_json, atomic_write_text
from genesis_drive.data.clips import ClipIndex, ClipSpec
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS, clip_scene
from genesis_drive.eval.bootstrap import bootstrap_ci
from genesis_drive.data.chamfer import CHAMFER_PROTOCOLS
from genesis_drive.eval.consistency import ConsistencyScorer, load_depth_model, pool_stats
from genesis_drive.eval.lidar import GeneratedSweep, LidarEvaluator, scan_generated_sweeps
from genesis_drive.eval.shipped import resolve_evaluator
from genesis_drive.generate.checkpoints import checkpoint_dirs
from genesis_drive.train.tasks.depth import sample_lidar_ego

CAMERA_MODES = ("free", "first-frame", "noisy-latent")
#: ``--modalities lidar`` rows: name -> (``--mode``, ``--drop-conditions``); the rows of
#: ``bench_lidar_forecast.ROWS``, repeated here rather than imported: that script imports pictures
#: code of the working tree, and this one runs against the frozen copy too.
LIDAR_ROWS = {"forecast": ("forecast", ()), "no-camera": ("forecast", ("camera",)),
              "copy-reference": ("copy-reference", ()), "reconstruct": ("reconstruct", ())}  # fmt: skip
#: LiDAR rows generated from the real root (``bench_lidar_forecast.ROWS`` names -> table label).
LIDAR_BASELINES = {"copy-reference": "copy-reference (baseline: present real sweep moved by ego motion)",
                   "reconstruct": "AE round trip of the true sweeps (LiDAR ceiling)"}  # fmt: skip
ABLATIONS = {"gt_img": "gt_img: LiDAR DiT from the real images (forecast)",
             "no-camera": "without camera BEV features (forecast, --drop-conditions camera)",
             "no-reference": "without reference sweep (joint free, --lidar-reference none)"}  # fmt: skip
CONSISTENCY_KEYS = ("abs_rel", "delta1", "abs_rel_above_ground", "delta1_above_ground", "edge_align")


def clock(t0: float) -> str:
    return f"[{time.perf_counter() - t0:7.0f} s]"


class Steps:
    """Runs and records the commands; with ``reuse`` a step whose output exists with the same
    command recorded beside it (``<out>.cmd.json``) is skipped."""

    def __init__(self, reuse: bool):
        self.reuse, self.t0, self.log = reuse, time.perf_counter(), []

    def run(self, name: str, cmd: list[str], out: Path) -> float:
        line = " ".join(shlex.quote(c) for c in cmd)
        marker = out.parent / f"{out.name}.cmd.json"
        if self.reuse and out.exists() and marker.exists() and json.loads(marker.read_text())["command"] == line:
            seconds = json.loads(marker.read_text())["seconds"]
            print(f"{clock(self.t0)} {name}: reused ({seconds:.0f} s when made)\n$ {line}", flush=True)
            self.log.append({"step": name, "command": line, "seconds": seconds, "reused": True})
            return seconds
        print(f"{clock(self.t0)} {name} ...\n$ {line}", flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - t
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"command": line, "seconds": seconds}))
        print(f"{clock(self.t0)} {name}: done in {seconds:.0f} s", flush=True)
        self.log.append({"step": name, "command": line, "seconds": round(seconds, 1), "reused": False})
        return seconds

    def note(self, name: str, seconds: float, what: str) -> None:
        print(f"{clock(self.t0)} {name}: {seconds:.0f} s ({what})", flush=True)
        self.log.append({"step": name, "command": what, "seconds": round(seconds, 1), "reused": False})


# ----------------------------------------------------------------------------- report readers


def report_rows(path: Path) -> dict[str, dict]:
    """``metric name -> row`` of a ``write_report`` JSON."""
    return {r["metric"]: r for r in json.loads(path.read_text())["rows"]}


def cell(value: float | None, ci: dict | None = None) -> dict:
    """A table cell: value and its interval ``[low, high]`` (None without one)."""
    return {"value": value, "ci": [ci["low"], ci["high"]] if ci else None}


def row_cell(rows: dict[str, dict], metric: str) -> dict | None:
    r = rows.get(metric)
    return None if r is None else cell(r["value"], r.get("ci"))


def layout2d_cells(report: dict) -> dict:
    """generated / real / control mIoU (and vehicle IoU) of an ``eval layout2d`` JSON."""
    out = {"generated": cell(report["miou"], report.get("miou_ci")), "vehicle": cell(report.get("iou_vehicle"), report.get("iou_vehicle_ci"))}
    for k in ("real", "control"):
        if k in report:
            out[k] = cell(report[k]["miou"], report[k].get("miou_ci"))
            out[f"{k}_vehicle"] = cell(report[k].get("iou_vehicle"), report[k].get("iou_vehicle_ci"))
    return out


def same_camera_files(a: Path, b: Path) -> bool:
    """Whether two generated roots hold byte-identical camera JPEGs (``samples`` and ``sweeps``)."""
    files = sorted(p.relative_to(a) for d in ("samples", "sweeps") for p in (a / d).glob("CAM_*/*.jpg"))
    return bool(files) and all((b / f).exists() and (a / f).read_bytes() == (b / f).read_bytes() for f in files)


# ----------------------------------------------------------------------------- LiDAR Chamfer


def window_pairs(joint_root: Path, reader: NuScenesReader, offsets: tuple[int, ...]) -> list[tuple[str, int, str, int, int]]:
    """``(scene, window, start sample token, offset, keyframe)`` of every scored sweep of a joint
    root: offsets of the protocol whose keyframe the window itself generated."""
    meta = json.loads((joint_root / "generated" / "lidar.json").read_text())
    by_name = {reader.scene_name(t): t for t in reader.scene_tokens()}
    out = []
    for scene, wins in sorted(meta["windows"].items()):
        samples = reader.sample_tokens(by_name[scene])
        for w, win in enumerate(wins):
            s = win["start"]
            for k in win["keyframes"]:
                if k - s in offsets:
                    out.append((scene, w, samples[s], k - s, k))
    return out


def joint_sweeps(joint_root: Path, reader: NuScenesReader, pairs) -> list[GeneratedSweep]:
    """The joint root's generated sweeps as ``eval lidar`` pairs (start token, offset, file)."""
    out = []
    for _, _, start, off, _ in pairs:
        tok = start
        for _ in range(off):
            tok = reader.nusc.get("sample", tok)["next"]
        sd = reader.nusc.get("sample", tok)["data"]["LIDAR_TOP"]
        out.append(GeneratedSweep(start, off, joint_root / reader.sample_data(sd)["filename"]))
    return out


def forecast_sweeps(forecast_root: Path, pairs) -> list[GeneratedSweep]:
    """A forecast root's sweeps at the joint root's (start token, offset) pairs."""
    have = {(s.sample_token, s.offset): s for s in scan_generated_sweeps(forecast_root)}
    missing = [(t, o) for _, _, t, o, _ in pairs if (t, o) not in have]
    if missing:
        raise SystemExit(f"{forecast_root}: no forecast for {len(missing)} window pairs, e.g. {missing[0]}")
    return [have[(t, o)] for _, _, t, o, _ in pairs]


def chamfer_scores(reader: NuScenesReader, protocol, sweeps: list[GeneratedSweep], bootstrap: int) -> dict:
    metrics, _ = LidarEvaluator(reader, protocol, workers=1).evaluate(sweeps, num_resamples=bootstrap)
    return {m.metric.split(" ")[0]: cell(m.value, m.ci.to_dict() if m.ci else None) for m in metrics}


# ----------------------------------------------------------------------------- cross-modal consistency


def keyframe_maps(scorer: ConsistencyScorer, root: Path, scenes: list[str]) -> dict[tuple[str, int], dict]:
    """``(scene, keyframe index) -> depth / edge maps, calibration, LiDAR points (ego frame of the
    camera keyframe)`` for keyframes 1 .. n-1 of ``scenes`` of ``root``."""
    reader = NuScenesReader(root)
    spec = ClipSpec(num_frames=1, window_stride=1, rate="keyframe", views=CAMERA_CHANNELS, image_size=scorer.model.cfg.image_size, lidar="none")
    by_name = {reader.scene_name(t): t for t in reader.scene_tokens()}
    index = ClipIndex(reader, spec, scenes=[by_name[s] for s in scenes])
    order = {s: reader.sample_tokens(by_name[s]) for s in scenes}
    out = {}
    for i in range(len(index)):
        clip = index.load(i)
        scene, token = clip_scene(clip.clip_id), clip.sample_tokens[0]
        k = order[scene].index(token)
        if k == 0:
            continue
        depth, edges = scorer.maps(clip.images[0], clip.intrinsics)
        out[(scene, k)] = {"maps": (depth, edges, clip.intrinsics, clip.cam_to_ego),
                           "points": sample_lidar_ego(reader, token, clip.ego_to_global[0])}  # fmt: skip
    return out


def other_layout(scenes: list[str], scene: str) -> str:
    """The control's scene: half the sorted scene list away."""
    return scenes[(scenes.index(scene) + len(scenes) // 2) % len(scenes)]


def consistency_stats(scorer: ConsistencyScorer, frames: dict, scenes: list[str]) -> tuple[list, list, list[str]]:
    """Paired and other-layout control stats of the same keyframes, and each keyframe's scene."""
    paired, control, groups = [], [], []
    for (scene, k), f in sorted(frames.items()):
        other = frames.get((other_layout(scenes, scene), k))
        if other is None:
            continue
        paired.append(scorer.score(*f["maps"], f["points"]))
        control.append(scorer.score(*f["maps"], other["points"]))
        groups.append(scene)
    return paired, control, groups


def consistency_summary(paired: list, control: list, groups: list[str], bootstrap: int, seed: int = 0) -> dict:
    """Pooled metrics of paired and control with scene-bootstrap intervals, and paired - control
    with scene- and keyframe-bootstrap intervals, and per scene."""
    g = np.asarray(groups)
    n = len(paired)
    out: dict = {"frames": n, "scenes": sorted(set(groups)), "points": int(sum(s.points for s in paired))}
    for key in CONSISTENCY_KEYS:
        def stat(stats, key=key):
            return lambda idx: pool_stats([stats[i] for i in idx])[key]

        def diff(idx, key=key):
            return pool_stats([paired[i] for i in idx])[key] - pool_stats([control[i] for i in idx])[key]

        entry = {}
        for name, f in (("paired", stat(paired)), ("control", stat(control)), ("diff", diff)):
            ci = bootstrap_ci(f, n, groups=g, num_resamples=bootstrap, seed=seed)
            entry[name] = cell(ci.value, ci.to_dict())
        ci_k = bootstrap_ci(diff, n, num_resamples=bootstrap, seed=seed)
        entry["diff_keyframe_ci"] = [ci_k.low, ci_k.high]
        entry["diff_per_scene"] = {s: diff(np.flatnonzero(g == s)) for s in sorted(set(groups))}
        out[key] = entry
    lower_better = out["abs_rel"]["diff"]
    out["acceptance"] = {"rule": "AbsRel paired - control: 95 % scene-bootstrap interval below 0",
                         "holds": bool(lower_better["ci"] is not None and lower_better["ci"][1] < 0)}  # fmt: skip
    return out


# ----------------------------------------------------------------------------- camera ablations


def camera_ablation_notes(checkpoints: Path | None) -> dict[str, str]:
    """Why the camera ablations (without captions, without pose keypoints) are or are not measured."""
    dirs = checkpoint_dirs(checkpoints, "camera")
    state = json.loads((Path(dirs["camera_dit"]) / "state.json").read_text()) if (Path(dirs["camera_dit"]) / "state.json").exists() else None
    cfg = (state or {}).get("config", {})
    manifest = cfg.get("clips", {}).get("manifest")
    skeletons = cfg.get("conditions", {}).get("camera_layout", {}).get("skeletons")
    drop = cfg.get("drop", {})
    notes = {}
    if manifest is None:
        notes["no-captions"] = ("not measured: the camera DiT was trained without captions (clips.manifest null), so the model "
                                "is already the without-captions one and there is no captioned DiT to compare with")  # fmt: skip
    else:
        notes["no-captions"] = (f"not measured: the camera DiT was trained with captions ({manifest}); the ablation needs a second "
                                "DiT trained without them (generation without --captions only feeds the caption-dropped token)")  # fmt: skip
    notes["no-pose"] = ("not measured here: needs a camera DiT trained without pose keypoints (drop.pedestrians=1 and "
                        "conditions.camera_layout.skeletons=false), generated with `--drop-conditions pedestrians`; this one "
                        f"was trained with drop p={drop.get('pedestrians')} and camera_layout.skeletons={skeletons}, so dropping "
                        "its keypoint tokens alone would leave the skeletons of the layout video")  # fmt: skip
    return notes


# ----------------------------------------------------------------------------- table


def fmt(c: dict | None, f: str = ".3f") -> str:
    if c is None or c.get("value") is None:
        return ""
    v = c["value"]
    s = f"{v:{f}}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    if c.get("ci"):
        s += f" [{c['ci'][0]:{f}}, {c['ci'][1]:{f}}]"
    return s


def markdown(result: dict) -> str:
    cols = ["layout2d mIoU", "BEV mIoU", "FD_synth", "FD_synth-video", "Chamfer@1s", "Chamfer@2s", "Chamfer@3s",
            "AbsRel", "delta<1.25", "EdgeAlign"]  # fmt: skip
    lines = ["| row | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for r in result["table"]:
        if "not_measured" in r:
            lines.append(f"| {r['row']} | {r['not_measured']} |" + " |" * (len(cols) - 1))
            continue
        c = r["cells"]
        vals = [fmt(c.get("layout2d")), fmt(c.get("bev")), fmt(c.get("fd_synth"), ".1f"), fmt(c.get("fd_synth_video"), ".3f"),
                fmt(c.get("Chamfer@1s")), fmt(c.get("Chamfer@2s")), fmt(c.get("Chamfer@3s")),
                fmt(c.get("abs_rel")), fmt(c.get("delta1")), fmt(c.get("edge_align"))]  # fmt: skip
        lines.append(f"| {r['row']} | " + " | ".join(vals) + " |")
    out = ["## SynthTown table", "", *lines, ""]
    if result.get("chamfer_window0"):
        out += ["### Chamfer, window 0 only (every row starts from keyframe 0's real sweep)", "",
                "| row | Chamfer@1s | Chamfer@2s | Chamfer@3s | MMD | JSD |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, c in result["chamfer_window0"].items():
            out.append(f"| {name} | {fmt(c.get('Chamfer@1s'))} | {fmt(c.get('Chamfer@2s'))} | {fmt(c.get('Chamfer@3s'))} | "
                       f"{fmt(c.get('MMD'))} | {fmt(c.get('JSD_distance'))} |")  # fmt: skip
        out.append("")
    if result.get("consistency"):
        out += ["### Cross-modal consistency: generated video + its own LiDAR vs + another layout's generated LiDAR", "",
                "| mode | metric | paired | control (other layout) | paired - control [scene CI] | keyframe CI | per scene | acceptance |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for mode, s in result["consistency"].items():
            for key in ("abs_rel", "delta1", "abs_rel_above_ground", "edge_align"):
                e = s[key]
                per = ", ".join(f"{v:+.3f}" for v in e["diff_per_scene"].values())
                ok = ("**holds**" if s["acceptance"]["holds"] else "does not hold") if key == "abs_rel" else ""
                out.append(f"| {mode} | {key} | {fmt(e['paired'])} | {fmt(e['control'])} | {fmt(e['diff'])} | "
                           f"[{e['diff_keyframe_ci'][0]:.3f}, {e['diff_keyframe_ci'][1]:.3f}] | {per} | {ok} |")  # fmt: skip
        out.append("")
    if result.get("layout2d_halfway"):
        out += ["layout2d half-way (gen - control) / (real - control): "
                + ", ".join(f"{m} {v:.2f}" for m, v in result["layout2d_halfway"].items()), ""]  # fmt: skip
    out += ["### Commands (wall s; `reused`: made by an earlier run with the same command)", ""]
    for s in result["steps_run"]:
        out.append(f"- {s['step']} ({s['seconds']:.0f} s{', reused' if s['reused'] else ''}): `{s['command']}`")
    out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="source", required=True, type=Path, help="held-out nuScenes-format root (never trained on)")
    ap.add_argument("--work", required=True, type=Path, help="folder for the generated roots, reports and the table")
    ap.add_argument("--checkpoints", type=Path, default=None, help="camera_vae/ camera_dit/ lidar_ae/ lidar_dit/ (default: shipped)")
    ap.add_argument("--scenes", nargs="*", default=None, help="scene names (default: every scene of --from)")
    ap.add_argument("--modes", nargs="*", default=list(CAMERA_MODES), choices=CAMERA_MODES)
    ap.add_argument("--ablations", nargs="*", default=list(ABLATIONS), choices=list(ABLATIONS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strength", type=float, default=0.6, help="noisy-latent mode's noise level")
    ap.add_argument("--protocol", default="vidar32", choices=sorted(CHAMFER_PROTOCOLS))
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process's own evaluation")
    ap.add_argument("--layout2d-model", type=Path, default=None)
    ap.add_argument("--layout-model", type=Path, default=None)
    ap.add_argument("--fd-model", type=Path, default=None)
    ap.add_argument("--depth-model", type=Path, default=None)
    ap.add_argument("--no-cli-consistency", action="store_true", help="skip `eval consistency`'s own report")
    ap.add_argument("--reuse", action="store_true", help="skip steps whose output exists with the same command recorded")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    if "free" not in a.modes and "no-reference" in a.ablations:
        print("note: no-reference is a joint free-mode root; it is generated anyway", flush=True)
    reader = NuScenesReader(a.source)
    scenes = a.scenes or sorted(reader.scene_name(t) for t in reader.scene_tokens())
    scenes = sorted(scenes)
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    steps = Steps(a.reuse)
    protocol = CHAMFER_PROTOCOLS[a.protocol]
    ck = ["--checkpoints", str(a.checkpoints)] if a.checkpoints is not None else []
    common = ["--scenes", *scenes, "--seed", str(a.seed), "--steps", str(a.steps), "--guidance", str(a.guidance),
              "--device", a.device, "--overwrite", "--no-progress", *ck]  # fmt: skip
    src = str(a.source)
    has_buffers = (a.source / "synthtown" / "buffers").is_dir()
    ev = work / "eval"

    def model(flag: Path | None) -> list[str]:
        return ["--model", str(flag)] if flag is not None else []

    # -- generation ---------------------------------------------------------------------------------
    joint: dict[str, Path] = {}
    for mode in [*a.modes, *(["no-reference"] if "no-reference" in a.ablations else [])]:
        out = work / f"joint_{mode}"
        cam_mode = "free" if mode == "no-reference" else mode
        cmd = ["genesis-drive", "generate", "--from", src, "--out", str(out), "--modalities", "camera,lidar", "--mode", cam_mode,
               *(["--strength", str(a.strength)] if cam_mode == "noisy-latent" else []),
               *(["--lidar-reference", "none"] if mode == "no-reference" else []), *common]  # fmt: skip
        steps.run(f"generate joint {mode}", cmd, out)
        joint[mode] = out
    lidar_rows = {"copy-reference": "copy-reference", "reconstruct": "reconstruct"}
    if "gt_img" in a.ablations:
        lidar_rows["gt_img"] = "forecast"
    if "no-camera" in a.ablations:
        lidar_rows["no-camera"] = "no-camera"
    forecasts: dict[str, Path] = {}
    for row, bench_row in lidar_rows.items():
        mode, drop = LIDAR_ROWS[bench_row]
        out = work / f"lidar_{row}"
        cmd = ["genesis-drive", "generate", "--from", src, "--out", str(out), "--modalities", "lidar", "--mode", mode,
               *(["--drop-conditions", *drop] if drop else []), *common]  # fmt: skip
        steps.run(f"generate lidar {row}", cmd, out)
        forecasts[row] = out

    same_camera = None
    if "no-reference" in joint and "free" in joint:  # the same seed gives the same camera bytes: checked, not assumed
        same_camera = same_camera_files(joint["free"], joint["no-reference"])
        print(f"no-reference root's camera files identical to joint free's: {same_camera}", flush=True)

    # -- camera evaluators --------------------------------------------------------------------------
    cams: dict[str, dict] = {}
    fd_cache = ev / "fd_reference_stats"
    for i, mode in enumerate(a.modes):
        root, d = joint[mode], ev / mode
        c: dict = {}
        if has_buffers:
            steps.run(f"eval layout2d {mode}", ["genesis-drive", "eval", "layout2d", "--gen", str(root), "--ref", src, "--out", str(d / "layout2d"),
                      "--scenes", ",".join(scenes), "--bootstrap", str(a.bootstrap), "--device", a.device, *model(a.layout2d_model)],
                      d / "layout2d")  # fmt: skip
            c["layout2d"] = layout2d_cells(json.loads((d / "layout2d" / "layout2d.json").read_text()))
        steps.run(f"eval layout {mode}", ["genesis-drive", "eval", "layout", "--gen", str(root), "--ref", src, "--out", str(d / "layout"),
                  "--bootstrap", str(a.bootstrap), "--device", a.device, *model(a.layout_model)], d / "layout")  # fmt: skip
        c["layout"] = report_rows(d / "layout" / "layout.json")
        floor = [] if i == 0 else ["--no-floor"]
        steps.run(f"eval fd-synth {mode}", ["genesis-drive", "eval", "fd-synth", "--gen", str(root), "--ref", src, "--out", str(d / "fd_synth"),
                  "--cache-dir", str(fd_cache), "--no-temporal-controls", *floor, "--bootstrap", str(min(a.bootstrap, 100)),
                  "--device", a.device, *model(a.fd_model)], d / "fd_synth")  # fmt: skip
        c["fd"] = report_rows(d / "fd_synth" / "fd_synth.json")
        cams[mode] = c
    for mode in [*a.modes, *(["no-reference"] if "no-reference" in a.ablations else [])]:
        if a.no_cli_consistency:
            break
        d = ev / mode / "consistency"
        steps.run(f"eval consistency {mode}", ["genesis-drive", "eval", "consistency", "--gen", str(joint[mode]), "--ref", src,
                  "--out", str(d), "--bootstrap", str(a.bootstrap), "--device", a.device, *model(a.depth_model)], d)  # fmt: skip

    # -- LiDAR Chamfer on the joint windows -----------------------------------------------------------
    t = time.perf_counter()
    first_joint = next(iter(joint.values()))
    pairs = window_pairs(first_joint, reader, protocol.offsets)
    for root in joint.values():
        if window_pairs(root, reader, protocol.offsets) != pairs:
            raise SystemExit(f"{root}: its LiDAR windows differ from {first_joint}'s")
    pairs0 = [p for p in pairs if p[1] == 0]
    sets = {f"joint {m}": joint_sweeps(r, reader, pairs) for m, r in joint.items()}
    sets.update({row: forecast_sweeps(r, pairs) for row, r in forecasts.items()})
    sets0 = {f"joint {m}": joint_sweeps(r, reader, pairs0) for m, r in joint.items()}
    sets0.update({row: forecast_sweeps(r, pairs0) for row, r in forecasts.items()})
    chamfer = {name: chamfer_scores(reader, protocol, s, a.bootstrap) for name, s in sets.items()}
    chamfer0 = {name: chamfer_scores(reader, protocol, s, a.bootstrap) for name, s in sets0.items()}
    chamfer_all_keyframes = {row: chamfer_scores(reader, protocol, scan_generated_sweeps(r), a.bootstrap) for row, r in forecasts.items()}
    steps.note("Chamfer (eval lidar's LidarEvaluator)", time.perf_counter() - t,
               f"LidarEvaluator(protocol {a.protocol}) on {len(pairs)} window pairs ({len(pairs0)} of window 0), this script")  # fmt: skip

    # -- cross-modal consistency with the other-layout control ----------------------------------------
    t = time.perf_counter()
    path, depth_record = resolve_evaluator(a.depth_model, "depth", "depth")
    depth_model, _, _ = load_depth_model(path)
    scorer = ConsistencyScorer(depth_model, device=a.device)
    consistency: dict[str, dict] = {}
    if len(scenes) < 2:
        print("consistency control: needs >= 2 scenes (another layout's LiDAR); skipped", flush=True)
    else:
        for mode, root in [*joint.items(), ("real data", a.source)]:
            frames = keyframe_maps(scorer, root, scenes)
            consistency[mode] = consistency_summary(*consistency_stats(scorer, frames, scenes), a.bootstrap)
            s = consistency[mode]
            print(f"{clock(steps.t0)} consistency {mode}: AbsRel paired {s['abs_rel']['paired']['value']:.4f} control "
                  f"{s['abs_rel']['control']['value']:.4f} diff {fmt(s['abs_rel']['diff'], '.4f')}", flush=True)  # fmt: skip
    steps.note("cross-modal consistency (other-layout control)", time.perf_counter() - t,
               "eval.consistency.ConsistencyScorer in this script: keyframes 1..n-1, control = scene (i + S//2) mod S, same keyframe")

    # -- table --------------------------------------------------------------------------------------
    table = []
    any_cam = next(iter(cams.values()), None)

    def cons_cells(name: str, which: str) -> dict:
        s = consistency.get(name)
        return {k: s[k][which] for k in ("abs_rel", "delta1", "edge_align")} if s else {}

    def fd_cells(c: dict) -> dict:
        return {"fd_synth": row_cell(c["fd"], "FD_synth"), "fd_synth_video": row_cell(c["fd"], "FD_synth-video")}

    if any_cam is not None:
        real = {"layout2d": any_cam.get("layout2d", {}).get("real"), "bev": row_cell(any_cam["layout"], "mIoU (ref)"),
                "fd_synth": row_cell(cams[a.modes[0]]["fd"], "FD_synth (floor: ref scenes half vs half)"),
                "fd_synth_video": row_cell(cams[a.modes[0]]["fd"], "FD_synth-video (floor: ref scenes half vs half)")}  # fmt: skip
        table.append({"row": "real data (ceiling; FD: real half vs half floor)", "cells": {**real, **cons_cells("real data", "paired")}})
    for mode in a.modes:
        c = cams[mode]
        label = f"joint, {mode}" + (f" (strength {a.strength})" if mode == "noisy-latent" else "")
        table.append({"row": label, "cells": {"layout2d": c.get("layout2d", {}).get("generated"), "bev": row_cell(c["layout"], "mIoU (gen)"),
                      **fd_cells(c), **chamfer[f"joint {mode}"], **cons_cells(mode, "paired")}})  # fmt: skip
    if any_cam is not None:
        table.append({"row": "control: layout ignored (real images of the keyframe half the set away)",
                      "cells": {"layout2d": any_cam.get("layout2d", {}).get("control"), "bev": row_cell(any_cam["layout"], "mIoU (control: layout ignored)")}})  # fmt: skip
    for mode in a.modes:
        if mode in consistency:
            table.append({"row": f"control: joint {mode} video + another layout's generated LiDAR", "cells": cons_cells(mode, "control")})
    if "real data" in consistency:
        table.append({"row": "control: real images + another layout's real LiDAR", "cells": cons_cells("real data", "control")})
    for row, label in LIDAR_BASELINES.items():
        table.append({"row": label, "cells": chamfer[row]})
    if "gt_img" in a.ablations:
        table.append({"row": ABLATIONS["gt_img"], "cells": chamfer["gt_img"]})
    if "free" in a.modes:
        table.append({"row": "gen_img: joint free (the row above)", "cells": chamfer["joint free"]})
    if "no-camera" in a.ablations:
        table.append({"row": ABLATIONS["no-camera"], "cells": chamfer["no-camera"]})
    if "no-reference" in a.ablations:
        table.append({"row": ABLATIONS["no-reference"], "cells": {**chamfer["joint no-reference"], **cons_cells("no-reference", "paired")}})
    notes = camera_ablation_notes(a.checkpoints)
    table.append({"row": "without structured captions (camera)", "not_measured": notes["no-captions"]})
    table.append({"row": "without pose keypoints (camera)", "not_measured": notes["no-pose"]})
    if not has_buffers:
        table.append({"row": "layout2d", "not_measured": f"not measured: {a.source} has no synthtown/buffers (SynthTown truth)"})

    halfways = {}
    if any_cam is not None and "layout2d" in any_cam:
        r, ctl = any_cam["layout2d"]["real"]["value"], any_cam["layout2d"]["control"]["value"]
        halfways = {m: halfway(cams[m]["layout2d"]["generated"]["value"], ctl, r) for m in a.modes}
    gen_meta = json.loads((first_joint / "generated" / "lidar.json").read_text())
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, torch threads {a.threads}, device {a.device}",
        "python": sys.version.split()[0],
        "command": " ".join(shlex.quote(x) for x in sys.argv),
        "source": str(a.source.resolve()), "scenes": scenes, "steps": a.steps, "guidance": a.guidance, "seed": a.seed,
        "strength": a.strength, "protocol": protocol.to_dict(), "bootstrap": a.bootstrap,
        "networks": gen_meta.get("networks"), "lidar_windows": gen_meta.get("windows"),
        "chamfer_definition": "sweep generated 2/4/6 keyframes after its window's start vs the real sweep there; pairs the window itself generated",
        "chamfer_pairs": len(pairs), "chamfer_pairs_window0": len(pairs0),
        "table": table, "layout2d_halfway": halfways, "chamfer_all_windows": chamfer, "chamfer_window0": chamfer0,
        "chamfer_forecast_all_keyframes": chamfer_all_keyframes, "consistency": consistency,
        "consistency_definition": "keyframes 1..n-1; control = generated images of (scene i, keyframe k) with the LiDAR of scene "
                                  "(i + S//2) mod S at keyframe k in its own ego frame; bootstrap over scenes (and keyframes)",
        "camera_reports": {m: {"layout2d": c.get("layout2d"), "layout": c["layout"], "fd": c["fd"]} for m, c in cams.items()},
        "eval_consistency_cli": {m: report_rows(ev / m / "consistency" / "consistency.json") for m in joint
                                 if (ev / m / "consistency" / "consistency.json").exists()},
        "camera_ablations": notes, "no_reference_camera_identical_to_free": same_camera, "depth_evaluator": depth_record,
        "steps_run": steps.log, "wall_s": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    atomic_write_json(work / "synthtown.json", result, indent=1)
    md = markdown(result)
    atomic_write_text(work / "synthtown.md", md + f"\nCommand: `{result['command']}`; {result['date']}; {result['machine']}; "
                      f"wall {result['wall_s']:.0f} s.\n")  # fmt: skip
    print(md)
    print(f"wrote {work / 'synthtown.json'} and {work / 'synthtown.md'} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
