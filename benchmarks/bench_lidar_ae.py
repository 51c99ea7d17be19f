"""Held-out reconstruction quality of a trained `lidar-ae` run, beside a control.

    python benchmarks/bench_lidar_ae.py --run RUN_DIR --root HELDOUT_ROOT [--threads 1] [--json OUT.json]
        [--render exact|baked|march] [--bake-z 32] [--bake-occupancy 0] [--march-skip 4] [--march-refine 8]

Loads the run's newest checkpoint (EMA weights), estimates the beam model from the held-out root's
own sweeps (as the task does from its training root: the sensor's rings and azimuth bins), and
reconstructs every keyframe LIDAR_TOP sweep of ``--root`` through the AE (voxelise, encode to the
posterior mean, decode, render the beam grid from the sensor, drop beams with drop probability >
0.5) by the exact renderer, or from the density baked on a lattice of ``--bake-z`` heights by the
baked renderer or the compiled ray marcher (``--render``; ``--bake-occupancy P``: a sparse bake of the
nodes near voxels of occupancy probability above P, :class:`~genesis_drive.models.lidar.bake.BakeConfig`;
``--march-skip B``: the marcher's empty-space blocks, 0 = none; ``--march-refine R``: its sub-intervals near surfaces):
:func:`genesis_drive.train.tasks.lidar_ae.evaluate_sweeps` (Chamfer in m^2 in the ViDAR
region cut to the AE grid, depth L1 on returned beams, drop accuracy, point-count ratio).

Control ("another moment"): each keyframe sweep of a scene with ``n`` keyframes scored against the
real sweep of keyframe ``(k + n // 2) mod n`` of the same scene, in its own sensor frame: what a
reconstruction that ignores its input would at best reach on this scene. Prints a markdown row.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.schema import clip_scene
from genesis_drive.data.chamfer import chamfer_distance, filter_points
from genesis_drive.models.lidar.ae import LidarAE
from genesis_drive.models.lidar.bake import BakeConfig
from genesis_drive.models.lidar.march import MarchConfig
from genesis_drive.train.checkpoint import load_run_model
from genesis_drive.train.distributed import DistEnv
from genesis_drive.train.tasks.lidar_ae import LIDAR_AE_TASK, LidarAERunConfig, chamfer_region, evaluate_sweeps, sweep_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--render", choices=("exact", "baked", "march"), default="exact")
    ap.add_argument("--bake-z", type=int, default=32, help="lattice heights of the baked volume (--render baked|march)")
    ap.add_argument("--bake-occupancy", type=float, default=0.0, help="sparse bake above this occupancy probability (0: dense)")
    ap.add_argument("--march-skip", type=int, default=MarchConfig().skip_block, help="empty-space skipping blocks of the marcher (0: none)")
    ap.add_argument("--march-refine", type=int, default=MarchConfig().refine, help="sub-intervals per coarse interval near surfaces")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, cfg, info = load_run_model(a.run, LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")
    task = LIDAR_AE_TASK.build(replace(cfg, val_scenes=0), a.root)
    index: ClipIndex = task.clip_index()
    transform = task.make_transform(index.reader)
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    t0 = time.perf_counter()
    baked = None if a.render == "exact" else BakeConfig(z_samples=a.bake_z, occupancy_threshold=a.bake_occupancy)
    marched = MarchConfig(skip_block=a.march_skip, refine=a.march_refine) if a.render == "march" else None
    scores = evaluate_sweeps(model, index, list(range(len(index))), transform, env, cfg.render_chunk, baked=baked, marched=marched)
    seconds = time.perf_counter() - t0

    region = chamfer_region(model.cfg.grid)
    by_scene: dict[str, list[int]] = {}
    for i in range(len(index)):
        by_scene.setdefault(clip_scene(index.refs[i].clip_id), []).append(i)
    control = []
    for members in by_scene.values():
        n = len(members)
        for k, i in enumerate(members):
            j = members[(k + n // 2) % n]
            if i == j:
                continue
            p = filter_points(sweep_of(index.load(j))[:, :3].double().numpy(), **region)
            g = filter_points(sweep_of(index.load(i))[:, :3].double().numpy(), **region)
            control.append(chamfer_distance(p, g, squared=True, workers=1))
    result = {"run": str(a.run), "checkpoint": info["checkpoint"], "step": info["step"], "root": str(a.root),
              "render": a.render, "bake_z": a.bake_z if baked else None,
              "bake_occupancy": a.bake_occupancy if baked else None, "march_skip": a.march_skip if marched else None,
              "march_refine": a.march_refine if marched else None,
              "sweeps": len(index), "scores": scores, "control_chamfer": float(np.mean(control)),
              "seconds": seconds, "machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
    print(f"# {a.run} (step {info['step']}), {a.render} renderer, {len(index)} held-out keyframe sweeps of {a.root}; {a.threads} thread(s); {result['date']}")
    print("| Chamfer m^2 (AE) | Chamfer m^2 (control: another moment) | depth L1 m | drop accuracy | points ratio | s per sweep |")
    print("|---|---|---|---|---|---|")
    print(f"| {scores['chamfer']:.3f} | {result['control_chamfer']:.3f} | {scores['depth_l1']:.3f} | {scores['drop_acc']:.3f} | "
          f"{scores['points_ratio']:.3f} | {seconds / len(index):.2f} |")
    if a.json:
        atomic_write_json(a.json, result, indent=1)


if __name__ == "__main__":
    main()
