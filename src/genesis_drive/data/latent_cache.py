"""A latent cache: one safetensors file per clip, keyed by clip id, codec version and clip spec.

DiT steps read their latents (and the condition tensors computed with them) from here instead of
decoding JPEGs, rendering layouts and running the frozen VAE every step.

Layout of a cache folder::

    DIR/<clip-id-sanitised>-<hash8>.safetensors     one clip: every tensor the fill function made

Each file carries metadata: ``clip_id``, ``codec_version`` (``LatentCodec.version`` of the codec
that wrote the latents), ``spec`` (a fingerprint of the clip spec / condition config, see
:func:`fingerprint`) and ``extra`` (JSON of the clip's non-tensor values, e.g. its caption).

Policy on mismatch: a file written by another codec version or another spec is **refused** with a
:class:`DataError` naming the file and the two values (never silently reused or overwritten):
point the cache at a new folder or delete the old one. Files are written atomically (temp file, then
rename), so an interrupted fill leaves only whole files and resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import DataError
from .atomic import atomic_output

__all__ = ["LatentCache", "CachedLatentDataset", "FillingLatentDataset", "fill_latent_cache", "fingerprint", "encode_clip_item", "VIDEO_KEYS"]

#: Videos of a clip sample encoded into the cache: sample key -> cached latent key.
VIDEO_KEYS = {"images": "latents", "layout": "layout_latents"}


def fingerprint(*parts: Any) -> str:
    """A short stable hash (16 hex) of configs (frozen dataclasses, dicts, strings, numbers)."""

    def plain(x: Any) -> Any:
        if is_dataclass(x) and not isinstance(x, type):
            return {"__type__": type(x).__name__, **{k: plain(v) for k, v in asdict(x).items()}}
        if isinstance(x, Mapping):
            return {str(k): plain(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x if isinstance(x, (str, int, float, bool, type(None))) else repr(x)

    return hashlib.sha256(json.dumps([plain(p) for p in parts], sort_keys=True).encode()).hexdigest()[:16]


class LatentCache:
    """The cache folder ``root`` for one ``codec_version`` and one ``spec`` (a :func:`fingerprint`)."""

    def __init__(self, root: str | Path, codec_version: str, spec: str):
        if not codec_version or not spec:
            raise DataError("codec_version and spec must be non-empty strings", root, "LatentCache")
        self.root = Path(root)
        self.codec_version = str(codec_version)
        self.spec = str(spec)

    def path(self, clip_id: str) -> Path:
        """File of ``clip_id`` (sanitised name plus a hash of the exact id, so no two ids collide)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", clip_id)[:80]
        return self.root / f"{safe}-{hashlib.md5(clip_id.encode()).hexdigest()[:8]}.safetensors"

    def _metadata(self, path: Path) -> dict[str, str]:
        try:
            with safe_open(str(path), framework="pt") as f:
                return dict(f.metadata() or {})
        except (SafetensorError, OSError) as e:
            raise DataError(f"unreadable latent cache file ({e}); delete it to recompute", path) from None

    def _check(self, path: Path, clip_id: str, meta: Mapping[str, str]) -> None:
        for name, want in (("clip_id", clip_id), ("codec_version", self.codec_version), ("spec", self.spec)):
            got = meta.get(name)
            if got != want:
                raise DataError(
                    f"written for {name} {got!r}, expected {want!r} (a cache of another codec or clip spec is refused: "
                    "use a new cache folder or delete this one)",
                    path,
                    name,
                )

    def has(self, clip_id: str) -> bool:
        """True when ``clip_id`` is cached; raises :class:`DataError` when its file is of another version/spec."""
        path = self.path(clip_id)
        if not path.is_file():
            return False
        self._check(path, clip_id, self._metadata(path))
        return True

    def write(self, clip_id: str, tensors: Mapping[str, torch.Tensor], extra: Mapping[str, Any] | None = None) -> Path:
        """Store ``tensors`` (name -> tensor, saved on CPU, contiguous) for ``clip_id``, atomically.

        ``extra``: JSON-serialisable non-tensor values (e.g. the caption dict) returned by :meth:`read`.
        """
        if not tensors:
            raise DataError(f"nothing to cache for clip {clip_id}", self.root, "tensors")
        bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise DataError(f"values {bad} of clip {clip_id} are not tensors (pass them as extra)", self.root, "tensors")
        data = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        meta = {"clip_id": clip_id, "codec_version": self.codec_version, "spec": self.spec, "extra": json.dumps(dict(extra or {}))}
        path = self.path(clip_id)
        with atomic_output(path, suffix=".safetensors.tmp") as tmp:
            save_file(data, str(tmp), metadata=meta)
        return path

    def read(self, clip_id: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, extra)`` of ``clip_id``; :class:`DataError` when absent or of another version/spec."""
        path = self.path(clip_id)
        if not path.is_file():
            raise DataError(f"clip {clip_id} is not in the latent cache (fill it first)", path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                self._check(path, clip_id, meta)
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as e:
            raise DataError(f"unreadable latent cache file ({e}); delete it to recompute", path) from None
        return tensors, json.loads(meta.get("extra", "{}"))


def fill_latent_cache(
    cache: LatentCache,
    clip_ids: Iterable[str],
    compute: Callable[[int], tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]],
    progress: bool = True,
) -> dict[str, int]:
    """Compute and store every clip of ``clip_ids`` not yet cached (resumable: cached ones are skipped).

    ``compute(i)`` gets the index of the clip in ``clip_ids`` and returns ``(tensors, extra)``
    (e.g. the VAE latents of its images and its condition tensors). A tqdm bar shows progress and
    ETA. Returns ``{"computed": n, "skipped": m, "seconds": s}``.
    """
    ids = list(clip_ids)
    todo = [i for i, c in enumerate(ids) if not cache.has(c)]
    t0 = time.perf_counter()
    for i in tqdm(todo, desc=f"latent cache {cache.root.name}", unit="clip", disable=not progress):
        tensors, extra = compute(i)
        cache.write(ids[i], tensors, extra)
    return {"computed": len(todo), "skipped": len(ids) - len(todo), "seconds": int(time.perf_counter() - t0)}


@torch.no_grad()
def encode_clip_item(
    codec: torch.nn.Module, item: Mapping[str, Any], videos: Mapping[str, str] = VIDEO_KEYS
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, extra)`` to cache for one clip sample (a ClipDataset item with condition tensors).

    Each video ``item[key]`` (``v t c h w`` uint8, 4k+1 frames; views encoded as a batch) is replaced
    by its normalised latents ``(v t' c' h' w')`` float32 under ``videos[key]``, from
    ``codec.encode`` (a :class:`models.codec.LatentCodec`; posterior mean). Every other tensor is
    kept as it is (the condition tensors); JSON-serialisable non-tensors (caption, ...) go to
    ``extra``; ``clip_id`` is the cache key and is dropped.
    """
    device = next(codec.parameters()).device
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    for key, value in item.items():
        if key in videos:
            if not isinstance(value, torch.Tensor) or value.dim() != 5 or value.dtype != torch.uint8:
                raise DataError(f"video {key!r} must be a (v t c h w) uint8 tensor", item.get("clip_id"), key)
            x = value.to(device).float().div(127.5).sub(1.0).permute(0, 2, 1, 3, 4)  # v c t h w in [-1, 1]
            tensors[videos[key]] = codec.encode(x).permute(0, 2, 1, 3, 4).float().cpu()  # v t c h w
        elif isinstance(value, torch.Tensor):
            tensors[key] = value
        elif key != "clip_id" and value is not None:
            extra[key] = value
    missing = [k for k in videos if k not in item]
    if missing:
        raise DataError(f"sample lacks the videos {missing} to encode", item.get("clip_id"), missing[0])
    return tensors, extra


class CachedLatentDataset(Dataset):
    """Items of a filled cache: ``{**tensors, **extra, "clip_id": id}`` for each id of ``clip_ids``.

    Reads only the safetensors files (no JPEG decoding, no VAE). Picklable (a cache and a list of ids).
    """

    def __init__(self, cache: LatentCache, clip_ids: Iterable[str]):
        self.cache = cache
        self.clip_ids = list(clip_ids)
        missing = [c for c in self.clip_ids if not cache.has(c)]
        if missing:
            raise DataError(f"{len(missing)} clips are not in the latent cache (first: {missing[0]}); fill it first", cache.root)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, i: int) -> dict:
        tensors, extra = self.cache.read(self.clip_ids[i])
        return {**tensors, **extra, "clip_id": self.clip_ids[i]}


class FillingLatentDataset(Dataset):
    """A clip dataset seen through a cache that fills as it is read: item ``i`` is read from the
    cache when clip ``clip_ids[i]`` is there, else ``compute(base[i])`` gives ``(tensors, extra)``
    (e.g. :func:`encode_clip_item` with the frozen VAE), which is written first. The first pass over
    the data costs what the uncached one does; every later visit of a clip reads one file. Items
    have the form of :class:`CachedLatentDataset`'s, whether computed or read (a computed item is
    returned exactly as it is stored). Several processes may fill the same folder: writes are atomic
    and a clip's file is the same whoever writes it.
    """

    def __init__(self, base: Dataset, clip_ids: Iterable[str], cache: LatentCache,
                 compute: Callable[[Mapping[str, Any]], tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]]):
        self.base, self.cache, self.compute = base, cache, compute
        self.clip_ids = list(clip_ids)
        if len(self.clip_ids) != len(base):
            raise DataError(f"{len(self.clip_ids)} clip ids for a dataset of {len(base)} items", cache.root, "clip_ids")

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, i: int) -> dict:
        cid = self.clip_ids[i]
        if not self.cache.has(cid):
            item = self.base[i]
            if item.get("clip_id") not in (None, cid):
                raise DataError(f"dataset item {i} is clip {item.get('clip_id')}, expected {cid}", self.cache.root, "clip_ids")
            tensors, extra = self.compute(item)
            self.cache.write(cid, tensors, extra)
        tensors, extra = self.cache.read(cid)
        return {**tensors, **extra, "clip_id": cid}
