"""Per-scene work units of ``genesis-drive generate``: sharding over processes and resuming after a kill.

A generation is split into one *part* per chosen scene. Every scene's bytes depend only on the
arguments, the networks, the source root and the scene itself (seeds are hashed per scene,
:func:`generate.scene.chunk_seed`, :func:`generate.joint.window_seed`), so the parts can be made in
any order, by any process, and a finished one never needs redoing. The work folder is the sibling
``OUT.parts/`` of ``OUT`` (:func:`parts_dir`)::

    OUT.parts/<scene>/             a complete part: the scene's generated files at their OUT paths
    OUT.parts/<scene>/part.json    its marker: {"format", "scene", "fingerprint", "files", "rows"}
    OUT.parts/.<scene>.tmp-XXXX/   a part being written (or left by a killed process: discarded)

A part is filled in a hidden temporary folder and renamed into place with its marker inside
(:func:`data.atomic.replace_dir`), so ``OUT.parts/<scene>/`` exists only when it is complete. The
marker records the *fingerprint*: everything that determines the bytes (task, mode, seed, steps,
guidance, sampler, strength, reference, dropped conditions, the networks' weights and configs as
SHA-256, the captions manifest's SHA-256, the source root's identity: the SHA-256 of its tables).
:func:`run_parts` skips a scene whose part is complete with an equal fingerprint, regenerates one
whose fingerprint differs only with ``overwrite`` (else a DataError naming what differs) and
redoes a scene without a complete part.

Which scenes a process makes is a :class:`Split`: scene ``i`` of the *sorted* chosen scenes goes to
shard ``i % count``. When every part exists, the shard that merges (``Split.merge``: a plain run,
rank 0 of torchrun after a barrier, or a ``--merge-only`` step) writes ``OUT`` once, atomically,
from the parts' files and rows (the table rows need every scene), then removes ``OUT.parts``. A
shard that does not merge only writes parts, so there is never a race on ``OUT``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from ..data.atomic import atomic_write_json, replace_dir
from ..data.nuscenes import find_versions
from ..errors import ConfigError, DataError

__all__ = [
    "PART_FORMAT", "MARKER", "Split", "parse_shard", "torchrun_rank", "shard_scenes", "parts_dir", "weights_sha256",
    "network_identity", "config_sha256", "path_sha256", "source_identity", "fingerprint_diff", "PartStore", "link_files", "run_parts",
]  # fmt: skip

#: Version of the part layout (part of every fingerprint: parts of another layout are never reused).
PART_FORMAT = 1
#: A complete part's marker file.
MARKER = "part.json"


@dataclass(frozen=True)
class Split:
    """This process's share of a generation: it makes the parts of shard ``index`` of ``count``
    (:func:`shard_scenes`) when ``generate``, then calls ``barrier`` (torch.distributed: every rank
    waits for every rank's parts) and, when ``merge``, writes OUT from all parts. ``log``: print a
    line per skipped scene and a summary; ``position``: the tqdm line of this process's scene bar."""

    index: int = 0
    count: int = 1
    generate: bool = True
    merge: bool = True
    barrier: Optional[Callable[[], None]] = None
    log: bool = False
    position: Optional[int] = None

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"--shard: index {self.index} of {self.count} shards; expected 0 <= I < N")

    @property
    def name(self) -> str:
        return f"shard {self.index}/{self.count}"


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; ConfigError otherwise."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard: expected I/N (shard I of N, 0 <= I < N), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard: expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def torchrun_rank(environ: Mapping[str, str] = os.environ) -> Optional[tuple[int, int, int]]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` of a process started by torchrun (its environment), or
    None when ``WORLD_SIZE`` is not set. ConfigError for values that are not such integers."""
    if "WORLD_SIZE" not in environ:
        return None
    try:
        rank, world = int(environ.get("RANK", "0")), int(environ["WORLD_SIZE"])
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError(f"torchrun environment: RANK / WORLD_SIZE / LOCAL_RANK must be integers, got "
                          f"{environ.get('RANK')!r} / {environ.get('WORLD_SIZE')!r} / {environ.get('LOCAL_RANK')!r}") from None  # fmt: skip
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"torchrun environment: RANK {rank} of WORLD_SIZE {world} (LOCAL_RANK {local}) is not a rank")
    return rank, world, local


def shard_scenes(names: Iterable[str], index: int, count: int) -> list[str]:
    """Scenes of shard ``index`` of ``count``: scene ``i`` of the sorted ``names`` goes to ``i % count``."""
    return [n for i, n in enumerate(sorted(names)) if i % count == index]


def parts_dir(out: str | Path) -> Path:
    """The work folder of ``out``: its sibling ``OUT.parts``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def weights_sha256(module: Any) -> str:
    """SHA-256 of a network's weights (every ``state_dict`` entry: name, dtype, shape, bytes, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _tensor_bytes(t: Any) -> bytes:
    import torch

    flat = t.reshape(-1)
    return (flat.view(torch.uint8) if flat.dtype != torch.bool else flat.to(torch.uint8)).numpy().tobytes()


def network_identity(net) -> dict:
    """What of a network determines its outputs: its weights' SHA-256 (``state_dict``), its class,
    and for a latent codec its normalisation (scaling / shift factors)."""
    out = {"class": type(net).__name__, "weights": weights_sha256(net) if hasattr(net, "state_dict") else None}
    from ..models.codec import LatentCodec

    if isinstance(net, LatentCodec):
        out.update(version=net.version, scaling_factor=float(net.scaling_factor), shift_factor=float(net.shift_factor))
    return out


def config_sha256(cfg: Any) -> str:
    """SHA-256 of a (dataclass) config's JSON, keys sorted; Paths and other objects as strings."""
    obj = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def path_sha256(path: Optional[str | Path]) -> Optional[str]:
    """SHA-256 of a file, or of a folder's files (relative names and bytes, sorted); None for None."""
    from ..train.checkpoint import file_sha256

    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise DataError("not found", path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}|{file_sha256(f)}\n".encode())
    return h.hexdigest()


def source_identity(root: str | Path) -> str:
    """Identity of a nuScenes-format root: the SHA-256 of its tables (``v1.0-*/*.json``, names and
    bytes). It does not depend on where the root lies (a copy or a re-render is the same root)."""
    root = Path(root)
    h = hashlib.sha256()
    for version in find_versions(root):
        for f in sorted((root / version).glob("*.json")):
            h.update(f"{version}/{f.name}|".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def fingerprint_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"key: OLD != NEW"`` for every (nested) key whose value differs; [] when equal."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "<absent>"), new.get(k, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += fingerprint_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            short = lambda v: (v[:12] + "..") if isinstance(v, str) and len(v) == 64 else v  # noqa: E731 (sha256)
            out.append(f"{prefix}{k}: {short(a)!r} != {short(b)!r}")
    return out


def _plain(obj: Any) -> Any:
    """The fingerprint as its JSON round trip (tuples become lists), so a marker compares equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _folder_name(scene: str) -> str:
    if not scene or scene.startswith(".") or "/" in scene or "\\" in scene:
        raise DataError(f"scene name {scene!r} cannot name a part folder (no '/', no leading '.')", None, "scene.name")
    return scene


class PartStore:
    """The parts of ``out`` (module docstring) for one ``fingerprint`` (a JSON-able dict).
    ``overwrite``: a part of another fingerprint counts as absent (it is replaced when its scene
    is generated) instead of being an error."""

    def __init__(self, out: str | Path, fingerprint: Mapping[str, Any], overwrite: bool = False):
        self.out = Path(out)
        self.root = parts_dir(self.out)
        self.fingerprint = _plain({"format": PART_FORMAT, **fingerprint})
        self.overwrite = overwrite

    def part(self, scene: str) -> Path:
        return self.root / _folder_name(scene)

    def marker(self, scene: str) -> dict:
        path = self.part(scene) / MARKER
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"unreadable part marker ({e})", path) from None

    def complete(self, scene: str) -> bool:
        """Whether ``scene`` has a complete part of this fingerprint. DataError (naming what differs)
        for a part of another fingerprint, unless ``overwrite``. Reads only (safe beside other shards)."""
        if not (self.part(scene) / MARKER).is_file():
            return False
        got = self.marker(scene)
        diff = fingerprint_diff(got.get("fingerprint", {}), self.fingerprint)
        if not diff:
            return True
        if self.overwrite:
            return False
        raise DataError(f"part of scene {scene} was generated with other arguments ({'; '.join(diff)}); pass --overwrite to "
                        f"regenerate it, or delete {self.root}", self.part(scene), "fingerprint")  # fmt: skip

    def write(self, scene: str, fill: Callable[[Path], Mapping[str, Any]]) -> Path:
        """Make the part of ``scene``: ``fill(tmp)`` writes the scene's files into the empty folder
        ``tmp`` and returns its rows (JSON-able); the marker is added and the folder renamed into
        place. Leftovers of a killed writer of this scene and a replaced part are removed first;
        on any exception ``tmp`` is removed."""
        name = _folder_name(scene)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if self.part(scene).exists():
            shutil.rmtree(self.part(scene))
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.root))
        try:
            rows = fill(tmp)
            files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
            atomic_write_json(tmp / MARKER, {"format": PART_FORMAT, "scene": scene, "fingerprint": self.fingerprint,
                                             "files": files, "rows": _plain(dict(rows or {}))}, indent=1)  # fmt: skip
            replace_dir(tmp, self.part(scene))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.part(scene)

    def files(self, scene: str) -> list[str]:
        """The recorded files of a complete part (paths relative to it); DataError when one is gone."""
        files = self.marker(scene).get("files", [])
        lost = [f for f in files if not (self.part(scene) / f).is_file()]
        if lost:
            raise DataError(f"part of scene {scene} lost {len(lost)} of its files (first: {lost[0]}); delete the part "
                            "folder to regenerate it", self.part(scene), "files")  # fmt: skip
        return files

    def remove_if_empty(self) -> None:
        try:
            self.root.rmdir()
        except OSError:
            pass

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def link_files(src_root: Path, files: Iterable[str], dst_root: Path) -> None:
    """Hard-link (else copy) ``src_root/f`` to ``dst_root/f`` for every relative path ``f``,
    replacing a file already there (the link is replaced, never written through)."""
    for rel in files:
        src, dst = src_root / rel, dst_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def run_parts(
    out: str | Path,
    names: Sequence[str],
    fingerprint: Mapping[str, Any],
    make_part: Callable[[str, Path], Mapping[str, Any]],
    merge: Callable[[PartStore, Sequence[str]], Any],
    *,
    split: Optional[Split] = None,
    overwrite: bool = False,
    progress: bool = True,
    on_skip: Optional[Callable[[str], None]] = None,
) -> Path:
    """Make this process's parts of the chosen scenes ``names`` and, when it merges, OUT.

    ``make_part(scene, tmp)`` writes one scene's files into ``tmp`` and returns its rows;
    ``merge(store, names)`` writes OUT (atomically) from the complete parts (:meth:`PartStore.files`,
    :meth:`PartStore.marker` ``["rows"]``); the work folder is removed after it. ``on_skip(scene)``:
    called for each of this shard's scenes whose part is already complete. Every part of this shard
    is checked before any is made (a mismatch is an error before any sampling). Returns ``out``
    (written only by the merging process)."""
    out = Path(out)
    split = split or Split()
    store = PartStore(out, fingerprint, overwrite)
    mine = shard_scenes(names, split.index, split.count) if split.generate else []
    done = [n for n in mine if store.complete(n)]
    todo = [n for n in mine if n not in done]
    for n in done:
        if on_skip is not None:
            on_skip(n)
        if split.log:
            print(f"{split.name}: scene {n}: complete part in {store.part(n)}, skipped")
    try:
        if mine:
            with tqdm(total=len(mine), desc=f"scenes ({split.name})", unit="scene", disable=not progress,
                      position=split.position) as bar:  # fmt: skip
                bar.update(len(done))
                bar.set_postfix(generated=0, skipped=len(done))
                for k, n in enumerate(todo, start=1):
                    store.write(n, lambda tmp, n=n: make_part(n, tmp))
                    bar.update(1)
                    bar.set_postfix(generated=k, skipped=len(done))
    finally:
        store.remove_if_empty()
    if split.log and split.generate:
        print(f"{split.name}: {len(todo)} scene(s) generated, {len(done)} skipped (complete parts), into {store.root}")
    if split.barrier is not None:
        split.barrier()
    if not split.merge:
        return out
    missing = [n for n in names if not store.complete(n)]
    if missing:
        raise DataError(f"no complete part for {len(missing)} of {len(names)} scenes (first: {missing[0]}): run every shard "
                        "(--shard I/N) with the same arguments before merging", store.root, "parts")  # fmt: skip
    merge(store, names)
    store.remove()
    return out
