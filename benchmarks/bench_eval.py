"""Evaluation-suite timings: feature extraction, Fréchet distance at 2048-d, Chamfer throughput.

    python benchmarks/bench_eval.py [--threads 2] [--quick] [--json OUT.json]

- Feature extraction with *random-weight* networks (the speed does not depend on the weights):
  FID Inception-v3 at 299x299 and FVD I3D at 16x224x224, small batches, reported per image /
  video and as clips/s for a 6-view 16-frame clip (FID: 96 images per clip; FVD: 6 videos).
- Fréchet distance at d=2048: ``eigh`` (torch, Cholesky + symmetric eigenvalues), ``sqrtm``
  (scipy), and the feature form for n=500 < d used by the bootstrap.
- BEV-histogram MMD kernel per pair of sweeps: spectral norm (LiDARGen) vs Frobenius.
- Chamfer on nuScenes-sized sweeps (~34k points, ViDAR protocol filters): our
  ``ChamferMetric.frame_distance`` (cKDTree, all cores) against a plain single-thread
  ``scipy.spatial.cKDTree`` reference computing the same squared Chamfer distance, same run; the
  two values are checked equal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import scipy
import torch
from scipy.spatial import cKDTree

from genesis_drive.data.chamfer import CHAMFER_PROTOCOLS, filter_points
from genesis_drive.eval.chamfer_metric import ChamferMetric
from genesis_drive.eval.extractors import ImageFeatureExtractor, VideoFeatureExtractor
from genesis_drive.eval.frechet import (
    GaussianStats,
    frechet_distance,
    trace_sqrt_product_features,
)
from genesis_drive.eval.i3d import InceptionI3D
from genesis_drive.eval.inception import FIDInceptionV3
from genesis_drive.eval.lidar_gen import bev_histogram, kernel_matrix


def timed(fn, repeat: int, warmup: bool = True) -> float:
    """Median wall time of ``repeat`` calls after one warm-up call (seconds)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_features(repeat: int, batch: int) -> dict:
    torch.manual_seed(0)
    fid = ImageFeatureExtractor(FIDInceptionV3().eval(), size=299)
    fvd = VideoFeatureExtractor(InceptionI3D().eval(), size=224)
    imgs = torch.randint(0, 256, (batch, 3, 900 // 4, 1600 // 4), dtype=torch.uint8)  # 400x225 frames, resized inside
    vids = torch.randint(0, 256, (1, 16, 3, 225, 400), dtype=torch.uint8)
    with torch.inference_mode():
        t_img = timed(lambda: fid(imgs), repeat) / batch
        t_vid = timed(lambda: fvd(vids), repeat)
    return {
        "inception_s_per_image": t_img,
        "fid_clips_per_s": 1.0 / (t_img * 6 * 16),
        "i3d_s_per_video": t_vid,
        "fvd_clips_per_s": 1.0 / (t_vid * 6),
        "batch_images": batch,
        "batch_videos": 1,
    }


def bench_frechet(repeat: int) -> dict:
    g = torch.Generator().manual_seed(0)
    d = 2048
    x = torch.randn(4096, d, generator=g, dtype=torch.float64) @ (torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5)
    y = x[:3000] + 0.1
    a, b = GaussianStats.from_features(x), GaussianStats.from_features(y)
    few = y[:500] - y[:500].mean(0)
    out = {
        "d": d,
        "eigh_s": timed(lambda: frechet_distance(a, b, "eigh"), repeat),
        "sqrtm_s": timed(lambda: frechet_distance(a, b, "sqrtm"), 1, warmup=False),  # minutes: once
        "features_n500_s": timed(lambda: trace_sqrt_product_features(a.cov, few), repeat),
    }
    out["eigh_vs_sqrtm_abs_diff"] = abs(frechet_distance(a, b, "eigh") - frechet_distance(a, b, "sqrtm"))
    return out


def synthetic_sweep(rng: np.random.Generator, n: int = 34_000) -> np.ndarray:
    """A nuScenes-like sweep: ground returns plus walls, 1-70 m, sensor frame (metres)."""
    r = rng.uniform(1.0, 70.0, n)
    a = rng.uniform(-np.pi, np.pi, n)
    z = np.where(rng.random(n) < 0.5, -1.8 + rng.normal(0, 0.05, n), rng.uniform(-1.8, 3.0, n))
    return np.stack([r * np.cos(a), r * np.sin(a), z], 1)


def reference_chamfer(p: np.ndarray, g: np.ndarray) -> float:
    """Plain scipy cKDTree, one thread, squared distances."""
    d_pg, _ = cKDTree(g).query(p, k=1)
    d_gp, _ = cKDTree(p).query(g, k=1)
    return 0.5 * (float(np.mean(d_pg**2)) + float(np.mean(d_gp**2)))


def bench_chamfer(repeat: int, pairs: int) -> dict:
    rng = np.random.default_rng(0)
    sweeps = [(synthetic_sweep(rng), synthetic_sweep(rng)) for _ in range(pairs)]
    proto = CHAMFER_PROTOCOLS["vidar"]
    metric = ChamferMetric(proto)

    def prep(x):
        return filter_points(filter_points(x, ego_box=proto.ego_box), proto.x_range, proto.y_range, proto.z_range)

    ours = [metric.frame_distance(p, g) for p, g in sweeps]
    ref = [reference_chamfer(prep(p), prep(g)) for p, g in sweeps]
    assert np.allclose(ours, ref, rtol=1e-12), "our Chamfer differs from the cKDTree reference"
    one = ChamferMetric(proto, workers=1)
    t_ours = timed(lambda: [metric.frame_distance(p, g) for p, g in sweeps], repeat) / pairs
    t_one = timed(lambda: [one.frame_distance(p, g) for p, g in sweeps], repeat) / pairs
    t_ref = timed(lambda: [reference_chamfer(prep(p), prep(g)) for p, g in sweeps], repeat) / pairs
    cd = ChamferMetric(proto, backend="cdist")
    t_cdist = timed(lambda: [cd.frame_distance(p, g) for p, g in sweeps[:1]], 1)
    return {
        "points_per_sweep": len(sweeps[0][0]),
        "ours_sweeps_per_s": 1.0 / t_ours,
        "ours_one_thread_sweeps_per_s": 1.0 / t_one,
        "ckdtree_reference_sweeps_per_s": 1.0 / t_ref,
        "torch_cdist_sweeps_per_s": 1.0 / t_cdist,
        "max_abs_diff": float(np.max(np.abs(np.array(ours) - np.array(ref)))),
    }


def bench_mmd(n: int = 60) -> dict:
    rng = np.random.default_rng(1)
    hists = torch.from_numpy(np.stack([bev_histogram(synthetic_sweep(rng, 5000)) for _ in range(n)])).float()
    hists = hists / hists.sum(dim=(1, 2), keepdim=True)
    a, b = hists[: n // 2], hists[n // 2 :]
    pairs = a.shape[0] * b.shape[0]
    t_spec = timed(lambda: kernel_matrix(a, b, norm="spectral"), 1)
    t_frob = timed(lambda: kernel_matrix(a, b, norm="frobenius"), 1)
    return {"pairs": pairs, "spectral_ms_per_pair": 1e3 * t_spec / pairs, "frobenius_ms_per_pair": 1e3 * t_frob / pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the cKDTree uses all cores)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeat = 1 if args.quick else 3
    env = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "load_average": os.getloadavg(),
    }
    res = {"env": env, "features": bench_features(repeat, batch=2), "frechet": bench_frechet(repeat), "chamfer": bench_chamfer(repeat, pairs=3),
           "mmd": bench_mmd()}  # fmt: skip
    f, fd, ch, mm = res["features"], res["frechet"], res["chamfer"], res["mmd"]
    print("| quantity | value |\n|---|---|")
    print(f"| Inception-v3 299x299, s/image (batch {f['batch_images']}) | {f['inception_s_per_image']:.3f} |")
    print(f"| FID feature extraction, clips/s (6 views x 16 frames) | {f['fid_clips_per_s']:.4f} |")
    print(f"| I3D 16x224x224, s/video (batch 1) | {f['i3d_s_per_video']:.3f} |")
    print(f"| FVD feature extraction, clips/s (6 views) | {f['fvd_clips_per_s']:.4f} |")
    print(f"| Fréchet distance d=2048, eigh (torch), s | {fd['eigh_s']:.2f} |")
    print(f"| Fréchet distance d=2048, sqrtm (scipy), s | {fd['sqrtm_s']:.2f} |")
    print(f"| trace term from 500 features (bootstrap draw), s | {fd['features_n500_s']:.3f} |")
    print(f"| |eigh - sqrtm| at d=2048 | {fd['eigh_vs_sqrtm_abs_diff']:.2e} |")
    print(f"| Chamfer (ViDAR filters), ours (workers=-1), sweeps/s ({ch['points_per_sweep']} pts) | {ch['ours_sweeps_per_s']:.2f} |")
    print(f"| Chamfer (ViDAR filters), ours (workers=1), sweeps/s | {ch['ours_one_thread_sweeps_per_s']:.2f} |")
    print(f"| Chamfer, plain scipy cKDTree reference, sweeps/s | {ch['ckdtree_reference_sweeps_per_s']:.2f} |")
    print(f"| Chamfer, torch.cdist backend, sweeps/s | {ch['torch_cdist_sweeps_per_s']:.3f} |")
    print(f"| BEV MMD kernel, spectral norm (LiDARGen), ms per sweep pair | {mm['spectral_ms_per_pair']:.3f} |")
    print(f"| BEV MMD kernel, Frobenius norm, ms per sweep pair | {mm['frobenius_ms_per_pair']:.4f} |")
    print(f"\nenv: {env}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
