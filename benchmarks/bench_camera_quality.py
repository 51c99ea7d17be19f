"""Quality of the camera branch on held-out SynthTown scenes, beside its controls (issue 10).

    python benchmarks/bench_camera_quality.py --source HELDOUT_ROOT --work DIR [--checkpoints CKPT]
        [--scenes NAME ...] [--steps 10] [--sampler euler|heun] [--guidance 2.0] [--seed 0] [--captions MANIFEST]
        [--drop-conditions GROUP ...] [--first-frame-strength S]
        [--json OUT.json]

Generates the chosen scenes of ``--source`` with ``genesis-drive generate`` in three settings and
evaluates each with ``genesis-drive eval layout2d`` against the source's SynthTown truth buffers:

* ``free``: every frame generated from the layout (and the other conditions);
* ``first-frame``: the real first frame given, every later frame generated (each chunk started
  from its given frame held still, noised to ``generate``'s first-frame strength, 0.9 unless
  ``--first-frame-strength S`` passes ``--strength S``; 1 = from pure noise);
* ``vae``: ``noisy-latent --strength 0``: the real frames through the VAE only (encode, decode),
  the best a generator working in this latent space at this image size can reach.

``eval layout2d`` reports, beside the generated frames, the same metric on the real images (the
ceiling at the source's resolution) and on the "layout ignored" control (the image of the same
camera half the scene away). The script adds

* ``halfway = (gen - control) / (real - control)`` on mIoU (issue 10's free-mode goal >= 0.5),
  also against the VAE row as ceiling;
* first-frame mode: PSNR (dB, [0, 1] scale, per view-frame) of every generated frame after the
  first against the real frame resized to the generated size as the data layer does
  (``data.clips.resize_crop``), and the same PSNR of the "repeat the given frame" baseline
  (the first frame of the first-frame root held for the whole scene), per frame offset bucket;
  and layout2d of that baseline (a copy of the first-frame root whose every camera file holds the
  bytes of its scene's first frame), so the generated frames' mIoU stands beside it.

Every command it runs is printed and recorded in the JSON. Long: each mode samples every chunk of
every chosen scene (``--steps`` network calls per chunk, twice with guidance).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.data.clips import resize_crop
from genesis_drive.data.nuscenes import NuScenesReader, read_image
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.eval.bootstrap import bootstrap_ci

MODES = {
    "free": ["--mode", "free"],
    "first-frame": ["--mode", "first-frame"],
    "vae": ["--mode", "noisy-latent", "--strength", "0"],
}


def run(cmd: list[str], log: list[str]) -> None:
    line = " ".join(shlex.quote(c) for c in cmd)
    print(f"$ {line}", flush=True)
    log.append(line)
    subprocess.run(cmd, check=True)


def camera_frames(reader: NuScenesReader, scene: str, channel: str) -> list[Path]:
    """Image paths of every frame (keyframes and sweeps) of ``channel`` in ``scene``, in time order."""
    token = next(t for t in reader.scene_tokens() if reader.scene_name(t) == scene)
    return [reader.root / reader.sample_data(t)["filename"] for t in reader.channel_tokens(token, channel)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0) ** 2)
    return float(10.0 * np.log10(1.0 / max(mse, 1e-10)))


def first_frame_psnr(gen_root: Path, source: Path, scenes: list[str], buckets: list[tuple[int, int]], *,
                     num_resamples: int = 1000, seed: int = 0) -> dict:  # fmt: skip
    """Mean PSNR per frame-offset bucket ``[lo, hi)`` of generated frames and of the repeated first
    frame, against the real frames resized to the generated size, and their paired difference
    (generated - repeated) with a 95 % bootstrap interval that resamples whole scene-camera clips."""
    gen, ref = NuScenesReader(gen_root), NuScenesReader(source)
    out = {f"{lo}-{hi - 1}": {"generated": [], "repeat_first": [], "clip": []} for lo, hi in buckets}
    clip = 0
    for scene in scenes:
        for ch in CAMERA_CHANNELS:
            g_paths, r_paths = camera_frames(gen, scene, ch), camera_frames(ref, scene, ch)
            if len(g_paths) != len(r_paths):
                raise SystemExit(f"{scene} {ch}: {len(g_paths)} generated frames vs {len(r_paths)} real")
            first = read_image(g_paths[0])
            h, w = first.shape[:2]
            for k in range(1, len(g_paths)):
                real = resize_crop(read_image(r_paths[k]), np.eye(3), (w, h))[0]
                for lo, hi in buckets:
                    if lo <= k < hi:
                        b = out[f"{lo}-{hi - 1}"]
                        b["generated"].append(psnr(read_image(g_paths[k]), real))
                        b["repeat_first"].append(psnr(first, real))
                        b["clip"].append(clip)
            clip += 1
    result = {}
    for k, d in out.items():
        row = {m: float(np.mean(d[m])) if d[m] else None for m in ("generated", "repeat_first")} | {"frames": len(d["generated"])}
        if d["generated"]:
            diff = np.asarray(d["generated"]) - np.asarray(d["repeat_first"])
            ci = bootstrap_ci(lambda idx, diff=diff: float(diff[idx].mean()), len(diff), groups=np.asarray(d["clip"]),
                              num_resamples=num_resamples, seed=seed)  # fmt: skip
            row["difference"], row["difference_ci"] = ci.value, [ci.low, ci.high]
        result[k] = row
    return result


def repeat_first_root(gen_root: Path, out: Path, scenes: list[str]) -> Path:
    """A copy of ``gen_root`` in which every frame of each camera of ``scenes`` is the scene's
    first frame (the file's bytes copied: no re-encoding): the "repeat the given frame" baseline."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(gen_root, out)
    reader = NuScenesReader(out)
    for scene in scenes:
        for ch in CAMERA_CHANNELS:
            paths = camera_frames(reader, scene, ch)
            first = paths[0].read_bytes()
            for p in paths[1:]:
                p.write_bytes(first)
    return out


def halfway(gen: float, control: float, ceiling: float) -> float:
    return (gen - control) / (ceiling - control)


def scores(generated: dict, control: float, real: float) -> dict:
    """mIoU, per-class IoU and half-way (real ceiling) of a layout2d report's ``generated`` block."""
    iou = {k[4:]: v for k, v in generated.items() if k.startswith("iou_") and not k.endswith("_ci")}
    return {"miou": generated["miou"], "iou": iou, "halfway_real": halfway(generated["miou"], control, real)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, type=Path, help="held-out SynthTown root (with camera buffers)")
    ap.add_argument("--work", required=True, type=Path, help="folder for the generated roots and reports")
    ap.add_argument("--checkpoints", type=Path, default=None, help="camera_vae/ + camera_dit/ folder (default: shipped)")
    ap.add_argument("--scenes", nargs="*", default=None, help="scene names (default: every scene of --source)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sampler", default="euler", choices=["euler", "heun"])
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--captions", type=Path, default=None,
                    help="DataCrafter manifest of --source for a DiT trained with captions (generate --captions)")
    ap.add_argument("--drop-conditions", nargs="+", default=[], metavar="GROUP",
                    help="condition groups left out at sampling (generate --drop-conditions; ablations)")
    ap.add_argument("--first-frame-strength", type=float, default=None, metavar="S",
                    help="first-frame mode's generate --strength (default: generate's, 0.9; 1 = from pure noise)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    reader = NuScenesReader(a.source)
    scenes = a.scenes or sorted(reader.scene_name(t) for t in reader.scene_tokens())
    a.work.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    reports: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for mode in a.modes:
        out = a.work / f"gen_{mode}"
        cmd = ["genesis-drive", "generate", "--from", str(a.source), "--out", str(out), "--modalities", "camera",
               *MODES[mode], "--scenes", *scenes, "--seed", str(a.seed), "--steps", str(a.steps),
               "--sampler", a.sampler, "--guidance", str(a.guidance), "--overwrite"]  # fmt: skip
        if a.checkpoints is not None:
            cmd += ["--checkpoints", str(a.checkpoints)]
        if a.captions is not None:
            cmd += ["--captions", str(a.captions)]
        if a.drop_conditions:
            cmd += ["--drop-conditions", *a.drop_conditions]
        if mode == "first-frame" and a.first_frame_strength is not None:
            cmd += ["--strength", str(a.first_frame_strength)]
        t0 = time.perf_counter()
        run(cmd, commands)
        timings[mode] = time.perf_counter() - t0
        rep = a.work / f"layout2d_{mode}"
        run(["genesis-drive", "eval", "layout2d", "--gen", str(out), "--ref", str(a.source), "--out", str(rep),
             "--scenes", ",".join(scenes), "--bootstrap", "200"], commands)  # fmt: skip
        reports[mode] = json.loads((rep / "layout2d.json").read_text())

    rows = {}
    any_rep = next(iter(reports.values()))
    real, control = any_rep["real"]["miou"], any_rep["control"]["miou"]
    vae = reports["vae"]["generated"]["miou"] if "vae" in reports else None
    for mode, rep in reports.items():
        g = rep["generated"]
        rows[mode] = {**scores(g, control, real), "miou_ci": rep.get("miou_ci"),
                      "halfway_vae": halfway(g["miou"], control, vae) if vae is not None else None,
                      "generate_s": timings[mode]}  # fmt: skip
    ff = repeat = None
    if "first-frame" in reports:
        ff = first_frame_psnr(a.work / "gen_first-frame", a.source, scenes, [(1, 9), (9, 25), (25, 49), (49, 10_000)])
        rep = a.work / "layout2d_repeat_first"
        run(["genesis-drive", "eval", "layout2d", "--gen", str(repeat_first_root(a.work / "gen_first-frame", a.work / "gen_repeat_first", scenes)),
             "--ref", str(a.source), "--out", str(rep), "--scenes", ",".join(scenes), "--bootstrap", "200"], commands)  # fmt: skip
        repeat = scores(json.loads((rep / "layout2d.json").read_text())["generated"], control, real)

    print("\n| frames | mIoU | halfway (real ceiling) | halfway (VAE ceiling) | generate wall s |")
    print("|---|---|---|---|---|")
    print(f"| real images (ceiling, source resolution) | {real:.4f} | 1 | | |")
    if vae is not None:
        print(f"| VAE round trip (ceiling at the generated size) | {vae:.4f} | {halfway(vae, control, real):.3f} | 1 | {timings['vae']:.0f} |")
    for mode in ("free", "first-frame"):
        if mode in rows:
            r = rows[mode]
            hv = f"{r['halfway_vae']:.3f}" if r["halfway_vae"] is not None else ""
            print(f"| generated, {mode} | {r['miou']:.4f} | {r['halfway_real']:.3f} | {hv} | {r['generate_s']:.0f} |")
    if repeat is not None:
        print(f"| repeat the given frame (first-frame baseline) | {repeat['miou']:.4f} | {repeat['halfway_real']:.3f} | | |")
    print(f"| control: layout ignored | {control:.4f} | 0 | 0 | |")
    if ff:
        print("\n| frames after the given one | PSNR generated | PSNR repeat given frame | difference [95 % CI, scene-camera clips] | frames |")
        print("|---|---|---|---|---|")
        for k, d in ff.items():
            lo, hi = d["difference_ci"]
            print(f"| {k} | {d['generated']:.2f} | {d['repeat_first']:.2f} | {d['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}] | {d['frames']} |")
    result = {"machine": platform.platform(), "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "scenes": scenes, "steps": a.steps, "sampler": a.sampler, "guidance": a.guidance, "seed": a.seed,
              "first_frame_strength": a.first_frame_strength, "commands": commands,
              "real_miou": real, "control_miou": control, "vae_miou": vae, "modes": rows, "first_frame_psnr": ff,
              "repeat_first": repeat}  # fmt: skip
    if a.json:
        atomic_write_json(a.json, result, indent=1)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
