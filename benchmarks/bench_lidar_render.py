"""LiDAR BEV autoencoder speed: rays/s rendered, and encode + decode time per sweep.

    python benchmarks/bench_lidar_render.py [--preset tiny] [--threads 1] [--beams 32] [--azimuths 1084]
        [--chunk 1024] [--warmup 1] [--repeats 3] [--device cpu] [--json OUT.json]
        [--bake-z 64] [--bake-xy 1] [--bake-proposal 32] [--bake-fine 16] [--bake-chunk 2048]
        [--march-bake-z 32] [--march-occupancy 0.01] [--march-skip 4] [--march-step 0.5] [--march-refine 8]
        [--march-interpolate pre_softplus] [--ae CKPT --sweep PCD_BIN]

A randomly initialised :class:`~genesis_drive.models.lidar.ae.LidarAE` of ``--preset`` (weights
do not change the compute: every ray evaluates ``n_proposal`` occupancy lookups and ``sum(n_fine)``
density-MLP samples whatever the field), one sweep of rays in SynthTown's beam pattern
(:func:`~genesis_drive.world.sensors.lidar_beam_directions` of the default ``LidarConfig``, or
``--beams`` x ``--azimuths``, turned from the ego frame into LIDAR_TOP's) from the sensor origin,
inference (eval mode, no grad). Timed
(median of ``--repeats`` after ``--warmup``):

1. ``encode``: occupancy grid -> latent (posterior mean); ``decode``: latent -> feature plane.
2. ``render``: feature plane -> depth and drop logit of every ray (proposal + importance passes
   of the density MLP + drop head), in chunks of ``--chunk`` rays. Rays/s = rays / render time.
3. ``proposal``: the proposal pass alone (uniform occupancy lookups + compositing), for context.
4. ``bake``: the density field on the lattice of :class:`~genesis_drive.models.lidar.bake.BakeConfig`
   (``--bake-z`` heights x ``--bake-xy``-times finer BEV cells); ``baked_render``: every ray by
   :func:`~genesis_drive.models.lidar.bake.render_baked` (``--bake-proposal`` uniform lookups +
   importance passes of ``--bake-fine`` + drop head). ``baked_rays_per_s`` excludes the bake,
   ``baked_rays_per_s_with_bake`` includes it (one bake per sweep); ``baked_depth_diff_*``: |baked -
   exact| depth (metres, valid rays) of this random model, for context.
5. ``march``: every ray by the compiled ray marcher
   :func:`~genesis_drive.models.lidar.march.render_marched` (numba, ``--threads`` threads) on its
   own bake (``march_bake``: ``--march-bake-z`` heights, ``--bake-xy``, sparse: only the nodes
   near voxels of occupancy probability above ``--march-occupancy``, 0 = every node; the
   default is ``sweep.MARCH_BAKE``'s): ``--march-step`` of a lattice cell per coarse interval, ``--march-refine``x
   refined near surfaces, empty-space skipping in blocks of ``--march-skip`` cells (0 = none),
   stops at transmittance 1e-3, drop head. ``march_rays_per_s`` excludes the bake,
   ``march_rays_per_s_with_bake`` includes it; ``march_depth_diff_*``: |march - exact| depth
   (metres, valid rays); ``march_nodes_evaluated``: the fraction of lattice nodes the sparse bake
   evaluated. The reference in the same run: the dense bake (``march_dense_bake_s``) and the march
   without skipping on it (``march_noskip_render_s``, ``march_ref_rays_per_s_with_bake``), and
   ``march_vs_ref_depth_diff_*``: |march - reference march| depth.

The march stops at the first surface, so its time depends on the weights (a random model's soft
field lets rays run ~14 m before they are opaque): ``--ae CKPT`` loads a trained autoencoder
(:func:`~genesis_drive.train.checkpoint.load_run_model`, e.g. the shipped
``src/genesis_drive/assets/checkpoints/lidar_ae``; its preset replaces ``--preset``) and
``--sweep`` a real ``.pcd.bin`` (LIDAR_TOP frame) whose voxelised occupancy is encoded.

The exact render, the bakes, the baked render and the march are timed interleaved (one of each per
repeat) so that load from other jobs falls on all of them alike. The first march of a process
loads (or, on a new machine, compiles) the numba kernel; it happens before the timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numba
import numpy as np
import torch

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.models.lidar.ae import PRESETS, LidarAE
from genesis_drive.models.lidar.bake import BakeConfig, bake_density, bake_grid, occupied_nodes, render_baked
from genesis_drive.models.lidar.march import MarchConfig, render_marched
from genesis_drive.models.lidar.render import ray_box_interval, render_uniform
from genesis_drive.models.lidar.sweep import MARCH_BAKE, read_pcd_bin
from genesis_drive.models.lidar.voxel import sample_volume, voxelize
from genesis_drive.world.config import LidarConfig
from genesis_drive.world.sensors import lidar_beam_directions


def timed_interleaved(fns: dict, warmup: int, repeats: int, device: str) -> dict[str, float]:
    """Median seconds of each of ``fns`` (name -> callable), run one after the other per repeat."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + repeats):
        for k, fn in fns.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def timed(fn, warmup: int, repeats: int, device: str) -> float:
    """Median seconds of ``fn``."""
    return timed_interleaved({"fn": fn}, warmup, repeats, device)["fn"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--beams", type=int, default=None)
    ap.add_argument("--azimuths", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    ap.add_argument("--bake-z", type=int, default=64)
    ap.add_argument("--bake-xy", type=int, default=1)
    ap.add_argument("--bake-proposal", type=int, default=32)
    ap.add_argument("--bake-fine", type=int, nargs="+", default=[16])
    ap.add_argument("--bake-chunk", type=int, default=2048)
    ap.add_argument("--march-bake-z", type=int, default=32)
    ap.add_argument("--march-occupancy", type=float, default=MARCH_BAKE.occupancy_threshold,
                    help="sparse march bake above this occupancy probability (0: every node)")
    ap.add_argument("--march-skip", type=int, default=MarchConfig().skip_block, help="empty-space skipping blocks (0: none)")
    ap.add_argument("--march-refine", type=int, default=MarchConfig().refine, help="sub-intervals per coarse interval near surfaces")
    ap.add_argument("--march-step", type=float, default=0.5)
    ap.add_argument("--march-interpolate", default="pre_softplus", choices=("pre_softplus", "density"))
    ap.add_argument("--ae", default=None, help="a trained lidar-ae checkpoint or run directory (default: random weights)")
    ap.add_argument("--sweep", default=None, help="a LIDAR_TOP .pcd.bin to encode (default: random 3 %% occupancy)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_start = os.getloadavg()[0]
    cfg = PRESETS[args.preset]()
    lidar = LidarConfig()
    if args.beams or args.azimuths:
        lidar = LidarConfig(beams=args.beams or lidar.beams, azimuth_steps=args.azimuths or lidar.azimuth_steps)
    dirs_np, _, _ = lidar_beam_directions(lidar)
    dev = torch.device(args.device)
    ego = dirs_np.reshape(1, -1, 3)  # ego frame (x forward, y left) -> LIDAR_TOP (x right, y forward)
    dirs = torch.from_numpy(np.stack((-ego[..., 1], ego[..., 0], ego[..., 2]), axis=-1)).float().to(dev)
    origins = torch.zeros_like(dirs)
    if args.ae:
        from genesis_drive.train.checkpoint import load_run_model
        from genesis_drive.train.tasks.lidar_ae import LidarAERunConfig

        model = load_run_model(args.ae, LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")[0].to(dev).eval()
        cfg = model.cfg
    else:
        model = LidarAE(cfg).to(dev).eval()
    if args.sweep:
        occ = voxelize(cfg.grid, torch.from_numpy(np.asarray(read_pcd_bin(args.sweep), dtype=np.float32))).to(dev)
    else:
        occ = (torch.rand((1, *cfg.grid.shape), device=dev) < 0.03).float()
    res: dict = {"preset": args.preset, "ae": args.ae, "sweep": args.sweep, "threads": args.threads, "device": args.device, "rays": dirs.shape[1],
                 "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
                 "n_proposal": cfg.n_proposal, "n_fine": list(cfg.n_fine), "grid": list(cfg.grid.shape),
                 "weights_M": sum(p.numel() for p in model.parameters()) / 1e6}
    with torch.no_grad():
        z = model.encode(occ)
        plane = model.decode(z)
        res["encode_s"] = timed(lambda: model.encode(occ), args.warmup, args.repeats, args.device)
        res["decode_s"] = timed(lambda: model.decode(z), args.warmup, args.repeats, args.device)
        bake = BakeConfig(z_samples=args.bake_z, xy_factor=args.bake_xy, n_proposal=args.bake_proposal,
                          n_fine=tuple(args.bake_fine), chunk=args.bake_chunk)
        volume = bake_density(model, plane, bake)
        mbake = BakeConfig(z_samples=args.march_bake_z, xy_factor=args.bake_xy, occupancy_threshold=args.march_occupancy)
        march = MarchConfig(step=args.march_step, interpolate=args.march_interpolate, skip_block=args.march_skip, refine=args.march_refine)
        mvolume = bake_density(model, plane, mbake)
        ref_bake = BakeConfig(z_samples=args.march_bake_z, xy_factor=args.bake_xy)  # the reference: dense, no skipping
        ref_march = MarchConfig(step=args.march_step, interpolate=args.march_interpolate, skip_block=0)
        ref_volume = bake_density(model, plane, ref_bake)
        render_marched(model, plane, mvolume, origins, dirs, march)  # load / compile the kernel
        t = timed_interleaved({"render_s": lambda: model.render(plane, origins, dirs, chunk=args.chunk),
                               "bake_s": lambda: bake_density(model, plane, bake),
                               "baked_render_s": lambda: render_baked(model, plane, volume, origins, dirs, bake),
                               "march_bake_s": lambda: bake_density(model, plane, mbake),
                               "march_render_s": lambda: render_marched(model, plane, mvolume, origins, dirs, march),
                               "march_dense_bake_s": lambda: bake_density(model, plane, ref_bake),
                               "march_noskip_render_s": lambda: render_marched(model, plane, ref_volume, origins, dirs, ref_march)},
                              args.warmup, args.repeats, args.device)
        res.update(t)
        exact, baked = model.render(plane, origins, dirs, chunk=args.chunk), render_baked(model, plane, volume, origins, dirs, bake)
        marched = render_marched(model, plane, mvolume, origins, dirs, march)
        diff = (baked.depth - exact.depth).abs()[exact.valid]
        mdiff = (marched.depth - exact.depth).abs()[exact.valid]
        rdiff = (marched.depth - render_marched(model, plane, ref_volume, origins, dirs, ref_march).depth).abs()[exact.valid]
        evaluated = (occupied_nodes(model, plane, bake_grid(cfg.grid, mbake), args.march_occupancy).float().mean()
                     if args.march_occupancy > 0 else torch.tensor(1.0))  # fmt: skip
        res.update(bake_z=args.bake_z, bake_xy=args.bake_xy, bake_proposal=args.bake_proposal, bake_fine=list(args.bake_fine),
                   baked_depth_diff_median_m=float(diff.median()), baked_depth_diff_p90_m=float(diff.quantile(0.9)),
                   march_bake_z=args.march_bake_z, march_step=args.march_step, march_interpolate=args.march_interpolate,
                   march_occupancy=args.march_occupancy, march_skip=args.march_skip, march_refine=args.march_refine, march_nodes_evaluated=float(evaluated),
                   march_vs_ref_depth_diff_median_m=float(rdiff.median()), march_vs_ref_depth_diff_p99_m=float(rdiff.quantile(0.99)),
                   march_vs_ref_depth_diff_max_m=float(rdiff.max()),
                   march_depth_diff_median_m=float(mdiff.median()), march_depth_diff_p90_m=float(mdiff.quantile(0.9)),
                   march_stopped_fraction=float((marched.fine.edges[..., 1] < marched.t_far)[exact.valid].float().mean()))
        occ_p = torch.sigmoid(model.split(plane).occupancy)
        t0, t1, _ = ray_box_interval(origins, dirs, cfg.grid.lower, cfg.grid.upper, cfg.near, cfg.far)

        def proposal_only() -> None:
            for s in range(0, dirs.shape[1], args.chunk):
                sl = slice(s, s + args.chunk)
                render_uniform(lambda p: cfg.proposal_density * sample_volume(cfg.grid, occ_p, p), origins[:, sl],
                               dirs[:, sl], t0[:, sl], t1[:, sl], cfg.n_proposal)

        res["proposal_s"] = timed(proposal_only, args.warmup, args.repeats, args.device)
    res["rays_per_s"] = res["rays"] / res["render_s"]
    res["field_samples_per_s"] = res["rays"] * sum(cfg.n_fine) / res["render_s"]
    res["baked_rays_per_s"] = res["rays"] / res["baked_render_s"]
    res["baked_rays_per_s_with_bake"] = res["rays"] / (res["baked_render_s"] + res["bake_s"])
    res["march_rays_per_s"] = res["rays"] / res["march_render_s"]
    res["march_rays_per_s_with_bake"] = res["rays"] / (res["march_render_s"] + res["march_bake_s"])
    res["march_ref_rays_per_s_with_bake"] = res["rays"] / (res["march_noskip_render_s"] + res["march_dense_bake_s"])
    res["load_avg_1min_start"] = load_start
    res["load_avg_1min"] = os.getloadavg()[0]
    for k, v in res.items():
        print(f"{k:>26}: {v:.4g}" if isinstance(v, float) else f"{k:>26}: {v}")
    if args.json:
        atomic_write_json(args.json, res, indent=1)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
