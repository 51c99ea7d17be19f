"""Merge nuScenes-format roots (optionally a subset of their scenes) into one root.

:func:`merge_roots` writes the union of the tables of several roots into a new root, with the data
files hard-linked (copied where linking fails, e.g. across file systems). Use it to train on real
and generated scenes together, or on a subset of a root's scenes (``scenes=[...]`` with one root).

Rules:

* **Tables.** Every ``<version>/*.json`` table of each root is read. Rows are keyed by ``token``;
  the same token in two roots is fine when both records are equal (shared vocabularies: category,
  attribute, visibility, sensor, whose tokens are hashes of their names) and a :class:`DataError`
  naming the table and the token when they differ. A record without a ``token`` (an extension
  table keyed by another record, e.g. ``generate``'s ``generation`` rows ``{sample_data_token,
  generated}``) is keyed by its whole content: equal rows collapse, others are all kept. A scene
  may appear in one root only. Map records of the same token with the same file are merged
  (union of their ``log_tokens``).
* **Scene subset.** With ``scenes`` (scene names), only those scenes and what they reach are kept:
  their logs, samples, sample_data, ego poses and calibrated sensors of those sample_data,
  annotations and their instances, the maps of their logs (``log_tokens`` cut to the kept logs).
  Vocabulary tables (category, attribute, visibility, sensor) are kept whole. A row of any other
  table (genesis-drive's ``human_pose``, SynthTown's ``synthtown_*``, lidarseg, ...) is dropped
  when one of its ``*_token`` fields names a dropped record.
* **Files.** A file named by a kept row's ``filename`` (sample_data, map, lidarseg ...) comes
  along; ``maps/expansion/<location>.json`` for every kept log's location; any other file of the
  root (outside the table folders) unless a component of its path is the name of a dropped scene
  (e.g. SynthTown's ``synthtown/buffers/<scene>/``). The same relative path from two roots must
  hold the same bytes.
* **Atomic.** The root is assembled in a hidden sibling of ``out`` and renamed into place
  (:func:`genesis_drive.data.atomic.atomic_dir`); on any error nothing is left at ``out``.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .atomic import atomic_dir, atomic_write_json
from .nuscenes import find_versions

__all__ = ["merge_roots"]

#: tables every scene shares (kept whole under a scene subset)
_VOCABULARY = ("category", "attribute", "visibility", "sensor")


@dataclass
class _Root:
    """One source root's tables (name -> rows, in file order) and what a scene subset keeps."""

    path: Path
    version: str
    tables: dict[str, list[dict]]
    dropped: set[str] = field(default_factory=set)  # tokens of records the subset leaves out
    dropped_scenes: set[str] = field(default_factory=set)  # names of scenes left out


def _read_root(path: Path, version: str | None) -> _Root:
    versions = find_versions(path)
    if version is None:
        if len(versions) != 1:
            raise DataError(f"expected one table folder v1.0-*/ with scene.json, found {versions or 'none'}; pass version=",
                            path, "version")  # fmt: skip
        version = versions[0]
    elif version not in versions:
        raise DataError(f"version {version!r} not found; available: {versions or 'none'}", path, "version")
    tables = {}
    for f in sorted((path / version).glob("*.json")):
        try:
            rows = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read table: {e}", f) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataError("a table must be a JSON list of records (objects)", f)
        tables[f.stem] = rows
    if "scene" not in tables:
        raise DataError("no scene table", path / version, "scene")
    return _Root(path, version, tables)


def _key(row: dict) -> str:
    """A record's identity: its ``token``, or its whole content for a record without one."""
    tok = row.get("token")
    return tok if isinstance(tok, str) else "row:" + json.dumps(row, sort_keys=True)


def _select(root: _Root, names: set[str]) -> None:
    """Mark what the scenes ``names`` of ``root`` do not reach (``root.dropped``)."""
    t = root.tables

    def rows(name: str) -> list[dict]:
        return t.get(name, [])

    scenes = [s for s in rows("scene") if s["name"] in names]
    root.dropped_scenes = {s["name"] for s in rows("scene")} - names
    keep: dict[str, set[str]] = {"scene": {s["token"] for s in scenes}, "log": {s.get("log_token") for s in scenes}}
    keep["sample"] = {r["token"] for r in rows("sample") if r.get("scene_token") in keep["scene"]}
    data = [r for r in rows("sample_data") if r.get("sample_token") in keep["sample"]]
    keep["sample_data"] = {r["token"] for r in data}
    keep["ego_pose"] = {r.get("ego_pose_token") for r in data}
    keep["calibrated_sensor"] = {r.get("calibrated_sensor_token") for r in data}
    anns = [r for r in rows("sample_annotation") if r.get("sample_token") in keep["sample"]]
    keep["sample_annotation"] = {r["token"] for r in anns}
    keep["instance"] = {r.get("instance_token") for r in anns}
    keep["map"] = {m["token"] for m in rows("map") if set(m.get("log_tokens", ())) & keep["log"]}
    for name, kept in keep.items():
        root.dropped |= {r["token"] for r in rows(name) if r["token"] not in kept}
    for name, table in t.items():  # every other table: drop rows naming a dropped record
        if name in keep or name in _VOCABULARY:
            continue
        for r in table:
            if any(k.endswith("_token") and isinstance(v, str) and v in root.dropped for k, v in r.items()):
                root.dropped.add(_key(r))
    for m in rows("map"):
        if m["token"] not in root.dropped:
            m["log_tokens"] = [lt for lt in m.get("log_tokens", ()) if lt in keep["log"]]


def _union(roots: Sequence[_Root]) -> dict[str, list[dict]]:
    """The tables of all roots (dropped records left out); DataError on a token collision."""
    out: dict[str, dict[str, dict]] = {}
    origin: dict[tuple[str, str], Path] = {}
    for root in roots:
        for name, rows in root.tables.items():
            table = out.setdefault(name, {})
            for r in rows:
                tok = _key(r)
                if tok in root.dropped:
                    continue
                if tok not in table:
                    table[tok], origin[name, tok] = r, root.path
                    continue
                first = table[tok]
                where = root.path / root.version / f"{name}.json"
                if name == "scene":
                    raise DataError(f"scene {r.get('name')!r} (token {tok}) is in both {origin[name, tok]} and {root.path}", where, "token")
                if name == "map" and {k: v for k, v in first.items() if k != "log_tokens"} == {k: v for k, v in r.items() if k != "log_tokens"}:
                    first["log_tokens"] = list(dict.fromkeys([*first.get("log_tokens", []), *r.get("log_tokens", [])]))
                    continue
                if first != r:
                    raise DataError(f"table {name}: token {tok} names different records in {origin[name, tok]} and {root.path}",
                                    where, "token")  # fmt: skip
    return {name: list(table.values()) for name, table in out.items()}


def _files(root: _Root) -> Iterable[str]:
    """Relative paths (posix) of the files ``root`` brings into the merged root."""
    referenced, kept = set(), set()
    for rows in root.tables.values():
        for r in rows:
            if isinstance(r.get("filename"), str) and r["filename"]:
                referenced.add(r["filename"])
                if _key(r) not in root.dropped:
                    kept.add(r["filename"])
    logs = root.tables.get("log", [])
    locations = {lg.get("location") for lg in logs}
    kept_locations = {lg.get("location") for lg in logs if lg["token"] not in root.dropped}
    yield from sorted(kept)
    for p in sorted(root.path.rglob("*")):
        rel = p.relative_to(root.path)
        if not p.is_file() or rel.parts[0].startswith("v1.0-") or rel.as_posix() in referenced:
            continue
        if len(rel.parts) == 3 and rel.parts[:2] == ("maps", "expansion") and rel.suffix == ".json" and rel.stem in locations:
            if rel.stem in kept_locations:
                yield rel.as_posix()
            continue
        if not set(rel.parts) & root.dropped_scenes:
            yield rel.as_posix()


def _place(src: Path, dst: Path, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    shutil.copy2(src, dst)


def merge_roots(
    roots: Sequence[str | Path],
    out: str | Path,
    *,
    scenes: Sequence[str] | None = None,
    version: str | None = None,
    link: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the union of nuScenes-format ``roots`` to a new root ``out``; returns ``out``.

    scenes: names of the scenes to keep (each must be in one of the roots); default every scene.
    version: the table folder to read in every root and write (default: each root's only one;
    the output is written under the first root's). link: hard-link data files (copy where that
    fails); False copies them. overwrite: replace an existing ``out``.
    DataError on a scene name in no root, a token naming different records in two roots, a scene
    in two roots, or one relative path holding different bytes in two roots (module docstring).
    """
    if not roots:
        raise DataError("merge_roots needs at least one root", None, "roots")
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("already exists (pass overwrite=True to replace it)", out)
    srcs = [_read_root(Path(r), version) for r in roots]
    if any(Path(r).resolve() == out.resolve() for r in roots):
        raise DataError("the output root is one of the roots to merge", out)
    if scenes is not None:
        wanted = set(scenes)
        known = {s["name"] for r in srcs for s in r.tables["scene"]}
        unknown = sorted(wanted - known)
        if unknown:
            raise DataError(f"scenes {unknown[:5]} are in none of the roots (known: {sorted(known)[:5]} ...)", None, "scenes")
        for r in srcs:
            _select(r, wanted)
    tables = _union(srcs)
    out_version = version or srcs[0].version
    placed: dict[str, tuple[Path, Path]] = {}  # relative path -> (source file, its root)
    with atomic_dir(out, tag="merge") as tmp:
        for root in srcs:
            for rel in _files(root):
                src = root.path / rel
                if rel in placed:
                    first, first_root = placed[rel]
                    if not (os.path.samefile(src, first) or filecmp.cmp(src, first, shallow=False)):
                        raise DataError(f"file {rel} differs between {first_root} and {root.path}", src)
                    continue
                if not src.is_file():
                    continue  # a referenced file absent from disk stays absent (validate_root reports it)
                _place(src, tmp / rel, link)
                placed[rel] = (src, root.path)
        for name, rows in tables.items():
            atomic_write_json(tmp / out_version / f"{name}.json", rows, indent=None)
    return out
