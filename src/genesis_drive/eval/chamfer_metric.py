"""Chamfer@horizon as a torchmetrics ``Metric`` under a :class:`~genesis_drive.data.chamfer.ChamferProtocol`.

``update`` scores one future frame of one sample: the predicted and ground-truth clouds of that
frame, each given in that frame's own LiDAR sensor frame (metres). The protocol then

1. removes points inside its ego box (own sensor frame),
2. moves both clouds to the scoring frame (``frame="reference"``: by ``sensor_to_reference``, the
   4x4 pose of this frame's LiDAR in the current keyframe's LiDAR frame),
3. keeps its region (prediction and ground truth filtered independently),
4. computes the (squared) Chamfer distance.

Per-frame values, their future keyframe offsets and sample ids are list states concatenated across
ranks; :meth:`compute` averages them per horizon, :meth:`bootstrap` resamples whole samples.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .bootstrap import BootstrapCI, bootstrap_ci
from ..data.chamfer import (
    CHAMFER_PROTOCOLS,
    ChamferProtocol,
    EmptyCloudError,
    chamfer_distance,
    filter_points,
)
from .states import is_empty

__all__ = ["ChamferMetric", "sample_id"]


def sample_id(key: str) -> int:
    """A stable non-negative int64 id of a sample key (e.g. its nuScenes sample token)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"sensor_to_reference must be a (4, 4) matrix, got {m.shape}")
    return points[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]


class ChamferMetric(Metric):
    """Chamfer distance per horizon; ``protocol`` is a :class:`ChamferProtocol` or a preset name.

    backend: ``"kdtree"`` (scipy cKDTree, ``workers`` threads, -1 = all cores) or ``"cdist"`` (torch).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, protocol: ChamferProtocol | str = "vidar", backend: str = "kdtree", workers: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(protocol, str):
            if protocol not in CHAMFER_PROTOCOLS:
                raise ValueError(f"unknown Chamfer protocol {protocol!r}; presets: {sorted(CHAMFER_PROTOCOLS)}")
            protocol = CHAMFER_PROTOCOLS[protocol]
        self.protocol, self.backend, self.workers = protocol, backend, workers
        self.add_state("values", [], dist_reduce_fx="cat")
        self.add_state("offsets", [], dist_reduce_fx="cat")
        self.add_state("samples", [], dist_reduce_fx="cat")
        self.add_state("num_empty", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def frame_distance(self, pred: np.ndarray, gt: np.ndarray, sensor_to_reference: np.ndarray | None = None) -> float | None:
        """The protocol's Chamfer distance of one frame (``None``: a cloud emptied and ``on_empty="zero"``)."""
        p = self.protocol
        pred, gt = np.asarray(pred), np.asarray(gt)
        for name, cloud in (("prediction", pred), ("ground truth", gt)):
            if cloud.ndim != 2 or cloud.shape[1] < 3:
                raise ValueError(f"{name} points must be (N, >=3) x, y, z metres, got {cloud.shape}")
        pred = filter_points(pred[:, :3], ego_box=p.ego_box)
        gt = filter_points(gt[:, :3], ego_box=p.ego_box)
        if p.frame == "reference":
            if sensor_to_reference is None:
                raise ValueError(f"protocol {p.name!r} scores in the reference LiDAR frame: pass sensor_to_reference (4, 4)")
            pred, gt = _apply(sensor_to_reference, pred), _apply(sensor_to_reference, gt)
        pred = filter_points(pred, p.x_range, p.y_range, p.z_range)
        gt = filter_points(gt, p.x_range, p.y_range, p.z_range)
        if len(pred) == 0 or len(gt) == 0:
            if p.on_empty == "zero":
                return None
            raise EmptyCloudError(
                f"protocol {p.name!r}: empty cloud after region/ego filtering (prediction {len(pred)}, ground truth {len(gt)} points)"
            )
        return chamfer_distance(pred, gt, squared=p.squared, backend=self.backend, workers=self.workers)

    def update(self, pred: np.ndarray, gt: np.ndarray, offset: int, sample: str, sensor_to_reference: np.ndarray | None = None) -> None:
        """Score future keyframe ``offset`` (>= 1) of ``sample`` (a key such as the current sample token)."""
        if int(offset) < 1:
            raise ValueError(f"offset counts future keyframes from 1, got {offset}")
        d = self.frame_distance(pred, gt, sensor_to_reference)
        if d is None:
            self.num_empty += 1
            d = 0.0
        dev = self.num_empty.device
        self.values.append(torch.tensor([d], dtype=torch.float64, device=dev))
        self.offsets.append(torch.tensor([int(offset)], dtype=torch.int64, device=dev))
        self.samples.append(torch.tensor([sample_id(sample)], dtype=torch.int64, device=dev))

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if is_empty(self.values):
            raise ValueError("Chamfer metric: no frames were scored")
        return tuple(dim_zero_cat(s).cpu().numpy() for s in (self.values, self.offsets, self.samples))

    def _horizons(self, offsets: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """``(label, frame mask)`` of every horizon that has scored frames (at least one must)."""
        out = [(label, np.isin(offsets, h)) for label, h in self.protocol.horizons]
        out = [(label, mask) for label, mask in out if mask.any()]
        if not out:
            raise ValueError(f"Chamfer metric: no scored frame has an offset of any horizon {dict(self.protocol.horizons)}")
        return out

    def missing_horizons(self) -> list[str]:
        """Horizons without any scored frame (left out of :meth:`compute`; synced)."""
        with self.sync_context(should_unsync=True):
            _, offsets, _ = self._arrays()
        return [label for label, h in self.protocol.horizons if not np.isin(offsets, h).any()]

    def compute(self) -> dict[str, torch.Tensor]:
        """``{horizon label: mean Chamfer distance}`` over all scored (sample, offset) pairs of that
        horizon; horizons without frames are left out (see :meth:`missing_horizons`)."""
        values, offsets, _ = self._arrays()
        return {label: torch.tensor(values[mask].mean(), dtype=torch.float64) for label, mask in self._horizons(offsets)}

    def per_frame(self) -> dict[int, float]:
        """Mean distance per future keyframe offset (synced)."""
        with self.sync_context(should_unsync=True):
            values, offsets, _ = self._arrays()
        return {int(o): float(values[offsets == o].mean()) for o in np.unique(offsets)}

    def counts(self) -> dict[str, int]:
        """Number of scored frames per horizon and of frames counted as 0 for an empty cloud (synced)."""
        with self.sync_context(should_unsync=True):
            _, offsets, _ = self._arrays()
            empty = int(self.num_empty)
        out = {label: int(np.isin(offsets, h).sum()) for label, h in self.protocol.horizons}  # 0 for missing ones
        out["empty_frames"] = empty
        return out

    def bootstrap(self, num_resamples: int = 1000, level: float = 0.95, seed: int = 0, method: str = "percentile") -> dict[str, BootstrapCI]:
        """Per-horizon bootstrap (percentile: means of frames), resampling whole samples (all their frames together)."""
        with self.sync_context(should_unsync=True):
            values, offsets, samples = self._arrays()
        out = {}
        for label, mask in self._horizons(offsets):
            v = values[mask]
            out[label] = bootstrap_ci(lambda idx, v=v: float(v[idx].mean()), len(v), groups=samples[mask],
                                      num_resamples=num_resamples, level=level, seed=seed, method=method)  # fmt: skip
        return out
