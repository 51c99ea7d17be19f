"""Cached reference statistics: mean + covariance of reference features in a ``.safetensors`` file.

A cache file is keyed by the *protocol* that produced it: a JSON-able dict naming the metric, the
feature network (and its weight file's SHA-256), every preprocessing choice (frames, resize, views)
and the reference set. The file name carries a short hash of the key; the full key is stored in
the file's metadata and compared on load, so stale or foreign statistics are refused by name,
never reused silently.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..data.atomic import atomic_write_bytes
from ..errors import DataError
from .frechet import GaussianStats

__all__ = ["FORMAT", "cache_path", "load_cached", "load_stats", "protocol_hash", "save_stats"]

FORMAT = "genesis-drive/gaussian-stats/1"


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


def protocol_hash(key: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the canonical JSON of ``key``."""
    return hashlib.sha256(_canonical(key).encode()).hexdigest()[:12]


def cache_path(cache_dir: str | Path, name: str, key: dict[str, Any]) -> Path:
    """``<cache_dir>/<name>-<hash(key)>.safetensors``."""
    return Path(cache_dir) / f"{name}-{protocol_hash(key)}.safetensors"


def save_stats(path: str | Path, stats: GaussianStats, key: dict[str, Any]) -> Path:
    """Write ``stats`` (float64 mean, cov; int64 count) with ``key`` in the metadata, atomically."""
    tensors = {
        "mean": stats.mean.contiguous(),
        "cov": stats.cov.contiguous(),
        "count": torch.tensor([stats.count], dtype=torch.int64),
    }
    data = save(tensors, metadata={"format": FORMAT, "protocol": _canonical(key)})
    return atomic_write_bytes(path, data)


def load_stats(path: str | Path, key: dict[str, Any] | None = None) -> GaussianStats:
    """Read statistics; when ``key`` is given, refuse a file written under a different protocol."""
    path = Path(path)
    if not path.is_file():
        raise DataError("reference statistics file not found", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        raise DataError(f"not a readable safetensors file ({e})", path) from None
    if meta.get("format") != FORMAT:
        raise DataError(f"metadata 'format' is {meta.get('format')!r}, expected {FORMAT!r}", path, "format")
    missing = {"mean", "cov", "count"} - tensors.keys()
    if missing:
        raise DataError(f"missing tensors {sorted(missing)}", path)
    if key is not None:
        stored = json.loads(meta.get("protocol", "{}"))
        wanted = json.loads(_canonical(key))
        if stored != wanted:
            diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise DataError(
                "cached statistics were computed under another protocol; differing fields: "
                + ", ".join(f"{k} (file {stored.get(k)!r}, wanted {wanted.get(k)!r})" for k in diff),
                path,
                "protocol",
            )
    return GaussianStats(tensors["mean"], tensors["cov"], int(tensors["count"][0]))


def load_cached(cache_dir: str | Path, name: str, key: dict[str, Any]) -> GaussianStats | None:
    """The cached statistics for ``key`` under ``cache_dir``, or ``None`` when none were saved yet."""
    path = cache_path(cache_dir, name, key)
    return load_stats(path, key) if path.is_file() else None
