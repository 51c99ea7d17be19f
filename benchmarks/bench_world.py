"""SynthTown benchmark: generation speed and dataset statistics beside nuScenes' published figures.

Speed: frames per second of the full per-frame work (6 camera views rendered + faults + JPEG, the
LiDAR sweeps that fall in the frame's 1/12 s, annotations at keyframes, writing), excluding town and
traffic building, which is reported separately per scene. Statistics: LiDAR points per sweep, boxes
per keyframe and boxes per class over a set of full-preset scenes (rendered at a small camera size,
which does not change the statistics).

    python benchmarks/bench_world.py                 # all sections (tens of minutes on 2 CPU cores)
    python benchmarks/bench_world.py --quick         # shorter scenes, fewer of them
    python benchmarks/bench_world.py [--out FILE.md]   (the markdown report printed is what docs/benchmarks.md holds)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from genesis_drive.data.atomic import atomic_write_text
from genesis_drive.data.schema import detection_class
from genesis_drive.world.config import CameraConfig, preset
from genesis_drive.world.generate import generate

#: nuScenes figures the statistics are compared with (nuScenes paper / devkit statistics).
NUSCENES = {"points_per_sweep": 34_000, "boxes_per_keyframe": 1_400_000 / 40_000}


def _speed(name: str, image_size: tuple[int, int], lidar_steps: int, seconds: float, tmp: Path) -> dict:
    base = preset("full" if name != "tiny" else "tiny")
    cfg = dataclasses.replace(
        base,
        num_scenes=1,
        scene_seconds=seconds,
        camera=dataclasses.replace(base.camera, image_size=image_size),
        lidar=dataclasses.replace(base.lidar, azimuth_steps=lidar_steps),
    )
    st = generate(cfg, tmp / f"speed-{name}", overwrite=True, progress=False)
    frame_time = st.seconds - st.build_seconds
    return {
        "name": name,
        "size": f"{image_size[0]}x{image_size[1]}",
        "rays": f"32x{lidar_steps}",
        "fps": st.camera_frames / frame_time,
        "render_ms": 1000 * st.render_seconds / st.camera_frames,
        "lidar_ms": 1000 * st.lidar_seconds / st.sweeps,
        "build_s": st.build_seconds,
        "points": float(np.mean(st.points_per_sweep)),
    }


def _statistics(scenes: int, seconds: float, tmp: Path) -> dict:
    cfg = dataclasses.replace(preset("full"), num_scenes=scenes, scene_seconds=seconds, camera=CameraConfig(image_size=(320, 180), shadow_map_size=512))
    st = generate(cfg, tmp / "stats", overwrite=True, progress=True)
    classes = Counter()
    for cat, n in st.boxes_per_category.items():
        classes[detection_class(cat) or cat] += n
    return {
        "scenes": scenes,
        "seconds": seconds,
        "keyframes": st.keyframes,
        "points_per_sweep": float(np.mean(st.points_per_sweep)),
        "points_p5_p95": np.percentile(st.points_per_sweep, [5, 95]).tolist(),
        "boxes_per_keyframe": float(np.mean(st.boxes_per_keyframe)),
        "boxes": sum(st.boxes_per_category.values()),
        "classes": classes,
        "faults": st.faults,
        "sweeps": st.sweeps,
        "camera_frames": st.camera_frames,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 s speed runs and 2 x 10 s statistics scenes")
    ap.add_argument("--out", type=Path, help="also write the markdown report here")
    args = ap.parse_args()
    speed_s = 2.0 if args.quick else 4.0
    stat_scenes, stat_seconds = (2, 10.0) if args.quick else (6, 20.0)
    lines = [
        (
            f"Measured {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} CPU cores (llvmpipe OpenGL, open3d CPU ray casting); "
            f"command: `python benchmarks/bench_world.py{' --quick' if args.quick else ''}`."
        ),
        "",
        "### Generation speed (one frame = 6 camera views + 20/12 LiDAR sweeps + writing; town building excluded)",
        "",
        "| setting | cameras | LiDAR rays | frames/s | render ms/frame | LiDAR ms/sweep | points/sweep | town+traffic build s/scene |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, size, steps in (("tiny", (256, 144), 360), ("full", (400, 224), 1084), ("native", (1600, 900), 1084)):
            r = _speed(name, size, steps, speed_s, tmp)
            lines.append(
                f"| {name} | {r['size']} | {r['rays']} | {r['fps']:.2f} | {r['render_ms']:.0f} | {r['lidar_ms']:.0f} | {r['points']:.0f} | {r['build_s']:.1f} |"
            )
        s = _statistics(stat_scenes, stat_seconds, tmp)
    total = sum(s["classes"].values())
    lines += [
        "",
        f"### Dataset statistics ({s['scenes']} full-preset scenes x {s['seconds']:.0f} s, {s['keyframes']} keyframes, {s['sweeps']} sweeps)",
        "",
        "| statistic | SynthTown | nuScenes |",
        "| --- | --- | --- |",
        f"| LiDAR points per sweep (mean; 5th-95th percentile) | {s['points_per_sweep']:.0f} ({s['points_p5_p95'][0]:.0f}-{s['points_p5_p95'][1]:.0f}) | ~{NUSCENES['points_per_sweep']:,} |",
        f"| boxes per keyframe | {s['boxes_per_keyframe']:.1f} | ~{NUSCENES['boxes_per_keyframe']:.0f} (1.4 M boxes / 40 k keyframes) |",
        "| largest class | " + (s["classes"].most_common(1)[0][0] if total else "-") + " | car |",
        "",
        "| class | boxes | share |",
        "| --- | --- | --- |",
    ]
    for cls, n in s["classes"].most_common():
        lines.append(f"| {cls} | {n} | {100 * n / total:.1f} % |")
    lines += ["", "Injected faults (images): " + ", ".join(f"{k} {v}" for k, v in sorted(s["faults"].items())) + f" of {6 * s['camera_frames']} images."]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, report + "\n")


if __name__ == "__main__":
    main()
