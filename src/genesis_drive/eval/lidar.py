"""LiDAR evaluation over files: generated sweeps paired with a nuScenes-format ground truth.

Generated directory layout::

    GEN/
      <sample_token>/        the current keyframe (t = 0) of a ground-truth root's sample
        1.pcd.bin            the sweep generated for the keyframe 1 step (0.5 s) later
        2.pcd.bin            ... k.pcd.bin: k keyframes ahead (0.pcd.bin: the current keyframe)
        ...

Each file holds float32 points, ``point_dims`` values per point (nuScenes: 5 = x, y, z,
intensity, ring; only x, y, z are used), in the LIDAR_TOP sensor frame *of the keyframe it
stands for*, metres. Its ground truth is the LIDAR_TOP keyframe sweep of the sample reached by
following ``sample.next`` k times in the reference root. Chamfer scores offsets >= 1 under the
chosen :class:`~genesis_drive.data.chamfer.ChamferProtocol`; MMD/JSD compare every generated
sweep with the set of their ground-truth sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.nuscenes import NuScenesReader
from ..errors import DataError
from ..data.chamfer import ChamferProtocol, EmptyCloudError
from .chamfer_metric import ChamferMetric
from .lidar_gen import BEVHistogramMetrics
from .report import MetricRow

__all__ = ["GeneratedSweep", "LidarEvaluator", "read_points", "scan_generated_sweeps"]


@dataclass(frozen=True)
class GeneratedSweep:
    sample_token: str  # the current (t = 0) keyframe
    offset: int  # keyframes ahead
    path: Path


def read_points(path: Path, point_dims: int = 5) -> np.ndarray:
    """Points ``(N, point_dims)`` float32 from a raw float32 file; clear errors for bad sizes."""
    try:
        raw = np.fromfile(path, dtype=np.float32)
    except FileNotFoundError:
        raise DataError("point file not found", path) from None
    if raw.size % point_dims:
        raise DataError(f"{raw.size} float32 values is not a multiple of {point_dims} per point (set --point-dims)", path)
    pts = raw.reshape(-1, point_dims)
    if point_dims < 3 or not np.isfinite(pts[:, :3]).all():
        raise DataError("points need finite x, y, z (at least 3 values per point)", path)
    return pts


def scan_generated_sweeps(root: str | Path) -> list[GeneratedSweep]:
    """Every ``GEN/<sample_token>/<k>.pcd.bin`` under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("generated LiDAR directory not found", root)
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(d.glob("*.pcd.bin")):
            stem = f.name[: -len(".pcd.bin")]
            if not stem.isdigit():
                raise DataError("file name must be <k>.pcd.bin with k the keyframe offset (0, 1, 2, ...)", f)
            out.append(GeneratedSweep(d.name, int(stem), f))
    if not out:
        raise DataError("no sweeps; expected GEN/<sample_token>/<k>.pcd.bin", root)
    return out


def _lidar_matrix(reader: NuScenesReader, sd_token: str) -> np.ndarray:
    """4x4 LiDAR sensor -> global of a sample_data."""
    sweep = reader.lidar_sweep(sd_token)
    return sweep.ego_to_global.matrix() @ sweep.sensor_to_ego.matrix()


class LidarEvaluator:
    """Chamfer (under ``protocol``) and BEV-histogram MMD/JSD of generated sweeps against a nuScenes root."""

    def __init__(self, reference: NuScenesReader, protocol: ChamferProtocol, chamfer: bool = True, generation: bool = True,
                 point_dims: int = 5, mmd_norm: str = "spectral", backend: str = "kdtree", workers: int = -1):  # fmt: skip
        if not chamfer and not generation:
            raise ValueError("enable Chamfer, the generation metrics, or both")
        self.reader, self.protocol, self.point_dims = reference, protocol, point_dims
        self.chamfer = ChamferMetric(protocol, backend=backend, workers=workers) if chamfer else None
        self.generation = BEVHistogramMetrics(norm=mmd_norm, progress=True) if generation else None

    def _future_sample(self, sample_token: str, offset: int) -> str:
        nusc = self.reader.nusc
        try:
            tok = nusc.get("sample", sample_token)["token"]
        except KeyError:
            raise DataError(f"sample token {sample_token!r} is not in the reference root", self.reader.root, "sample.token") from None
        for _ in range(offset):
            nxt = nusc.get("sample", tok)["next"]
            if not nxt:
                raise DataError(f"sample {sample_token} has no keyframe {offset} steps ahead in its scene", self.reader.root, "sample.next")
            tok = nxt
        return tok

    def _lidar_token(self, sample_token: str) -> str:
        data = self.reader.nusc.get("sample", sample_token)["data"]
        if "LIDAR_TOP" not in data:
            raise DataError(f"sample {sample_token} has no LIDAR_TOP data", self.reader.root, "sample.data")
        return data["LIDAR_TOP"]

    def evaluate(self, sweeps: list[GeneratedSweep], num_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[list[MetricRow], dict]:
        used = set(self.protocol.offsets)
        ref_cache: dict[str, np.ndarray] = {}
        scored = 0
        for s in tqdm(sweeps, desc="generated sweeps", unit="sweep"):
            gen = read_points(s.path, self.point_dims)
            target = self._future_sample(s.sample_token, s.offset)
            sd = self._lidar_token(target)
            gt = self.reader.lidar_sweep(sd).points
            if self.generation is not None and s.offset >= 1:  # offset 0 is the conditioning keyframe
                self.generation.update(gen[:, :3], real=False)
                if sd not in ref_cache:
                    ref_cache[sd] = gt
                    self.generation.update(gt[:, :3], real=True)
            if self.chamfer is not None and s.offset in used:
                to_ref = None
                if self.protocol.frame == "reference":
                    m0 = _lidar_matrix(self.reader, self._lidar_token(s.sample_token))
                    to_ref = np.linalg.inv(m0) @ _lidar_matrix(self.reader, sd)
                try:
                    self.chamfer.update(gen[:, :3], gt[:, :3], s.offset, s.sample_token, to_ref)
                except EmptyCloudError as e:
                    raise DataError(f"{e} (generated sweep vs ground truth {sd})", s.path, "points") from None
                scored += 1
        rows: list[MetricRow] = []
        meta: dict = {"chamfer_protocol": self.protocol.to_dict() if self.chamfer is not None else None}
        if self.chamfer is not None:
            if scored == 0:
                raise DataError(f"no generated sweep has an offset the protocol scores ({sorted(used)})")
            values = self.chamfer.compute()
            cis = self.chamfer.bootstrap(num_resamples, level, seed) if num_resamples else {}
            counts = self.chamfer.counts()
            unit = "m^2" if self.protocol.squared else "m"
            for label in values:
                rows.append(MetricRow(f"Chamfer@{label} ({self.protocol.name})", float(values[label]), cis.get(label), unit,
                                      {"frames": counts[label]}, note="bootstrap over samples"))  # fmt: skip
            meta["chamfer_per_frame"] = self.chamfer.per_frame()
            meta["chamfer_empty_frames"] = counts["empty_frames"]
            meta["chamfer_missing_horizons"] = self.chamfer.missing_horizons()
        if self.generation is not None:
            values = self.generation.compute()
            cis = self.generation.bootstrap(num_resamples, level, seed) if num_resamples else {}
            n = {"gen sweeps": len(sweeps), "ref sweeps": len(ref_cache)}
            notes = {"MMD": f"Gaussian-kernel MMD^2 (sigma {self.generation.sigma}, {self.generation.norm} norm)",
                     "JSD_distance": "scipy jensenshannon distance, natural log", "JS_divergence": "JSD_distance squared, nats"}  # fmt: skip
            for k in ("MMD", "JSD_distance", "JS_divergence"):
                rows.append(MetricRow(k, float(values[k]), cis.get(k), counts=n, note=notes[k] + "; bootstrap over generated sweeps"))
            meta["bev_histogram"] = self.generation.protocol()
        meta["reference_root"] = str(self.reader.root.resolve())
        meta["point_dims"] = self.point_dims
        return rows, meta
