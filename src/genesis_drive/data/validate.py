"""Checks of a nuScenes-format root; every problem names the file and field and has a severity.

Severity follows one rule: an **error** is what breaks loading (the devkit's or the reader's load
of the root, or the loading of a record or file that is referenced); a **warning** is an optional
part that is absent or harmlessly inconsistent (the root loads, something derived from that part
is empty). What real nuScenes ships separately is optional: the map expansion
(``maps/expansion/<location>.json``), CAN bus (``can_bus/``, not read), lidarseg / panoptic
(checked only when their tables are present); so are genesis-drive's extra tables
(``human_pose``, SynthTown's ``synthtown_*``), checked only when present.

:func:`check_tables` is the check the reader runs before the devkit loads anything (tables
present, valid JSON, required fields, and what the devkit's load itself needs: a map record for
every log, the raster map files, consistent lidarseg). :func:`validate_root` adds everything else:
token references, files on disk, calibrations, quaternions, timestamps, scene chains and maps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DataError

__all__ = [
    "Problem",
    "SEVERITIES",
    "check_tables",
    "errors",
    "missing_map_expansions",
    "validate_root",
    "REQUIRED_FIELDS",
    "DEVKIT_OPTIONAL_TABLES",
]

#: Problem severities: "error" breaks loading; "warning" is an absent or ignorable optional part.
SEVERITIES = ("error", "warning")

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "category": ("token", "name"),
    "attribute": ("token", "name"),
    "visibility": ("token", "level"),
    "instance": ("token", "category_token", "nbr_annotations", "first_annotation_token", "last_annotation_token"),
    "sensor": ("token", "channel", "modality"),
    "calibrated_sensor": ("token", "sensor_token", "translation", "rotation", "camera_intrinsic"),
    "ego_pose": ("token", "timestamp", "rotation", "translation"),
    "log": ("token", "location"),
    "scene": ("token", "log_token", "nbr_samples", "first_sample_token", "last_sample_token", "name"),
    "sample": ("token", "timestamp", "prev", "next", "scene_token"),
    "sample_data": (
        "token", "sample_token", "ego_pose_token", "calibrated_sensor_token", "timestamp",
        "fileformat", "is_key_frame", "filename", "prev", "next",
    ),
    "sample_annotation": (
        "token", "sample_token", "instance_token", "visibility_token", "attribute_tokens",
        "translation", "size", "rotation", "prev", "next", "num_lidar_pts",
    ),
    "map": ("token", "log_tokens", "filename"),
}  # fmt: skip

#: Tables the devkit loads when present (nuScenes-lidarseg, -panoptic, exported 2D boxes):
#: table name -> label-file suffix under ``ROOT/<table>/<version>/`` (None: no label files).
DEVKIT_OPTIONAL_TABLES: dict[str, str | None] = {"lidarseg": ".bin", "panoptic": ".npz", "image_annotations": None}

#: genesis-drive's extra tables the reader indexes when it opens a root: table -> required fields.
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {"human_pose": ("token", "sample_annotation_token", "keypoints", "visible")}

_MAX_PROBLEMS = 200


@dataclass(frozen=True)
class Problem:
    """One problem: where (file, record token, field), what, and its severity (:data:`SEVERITIES`)."""

    path: str
    field: str
    message: str
    token: str = ""
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Problem.severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        rec = f" record {self.token}" if self.token else ""
        return f"{self.severity}: {self.path}:{rec} field '{self.field}': {self.message}"


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The problems of severity ``error``."""
    return [p for p in problems if p.is_error]


def _load_table(path: Path) -> tuple[list | None, Problem | None]:
    if not path.is_file():
        return None, Problem(str(path), "-", "table file missing")
    try:
        rows = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return None, Problem(str(path), "-", f"not valid JSON ({e.__class__.__name__}: {e})")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return None, Problem(str(path), "-", "expected a JSON list of records (objects)")
    return rows, None


def _field_problems(path: Path, rows: list[dict], fields: tuple[str, ...], problems: list[Problem]) -> None:
    for r in rows:
        missing = [f for f in fields if f not in r]
        if missing:
            problems.append(Problem(str(path), ",".join(missing), "missing", str(r.get("token", ""))))
            if len(problems) > _MAX_PROBLEMS:
                return


def _read_tables(root: Path, version: str) -> tuple[dict[str, list[dict]], list[Problem]]:
    """The required tables, and the problems that make any of them unusable (all errors)."""
    tables, problems = {}, []
    for table, fields in REQUIRED_FIELDS.items():
        path = root / version / f"{table}.json"
        rows, prob = _load_table(path)
        if prob:
            problems.append(prob)
            continue
        tables[table] = rows
        _field_problems(path, rows, fields, problems)
        if len(problems) > _MAX_PROBLEMS:
            break
    return tables, problems


def _load_problems(root: Path, version: str, tables: dict[str, list[dict]], check_files: bool) -> list[Problem]:
    """What the devkit's (and the reader's) load needs beyond well-formed required tables (errors)."""
    problems = []
    map_path, log_path = root / version / "map.json", root / version / "log.json"
    if not tables["map"]:
        problems.append(Problem(str(map_path), "-", "the map table needs at least one record (with log_tokens); the devkit reads map[0]"))
    listed = {lt for r in tables["map"] for lt in r["log_tokens"]}
    for r in tables["log"]:
        if r["token"] not in listed:
            problems.append(Problem(str(log_path), "token", "no map record lists this log in log_tokens (the devkit's load fails on it)", r["token"]))
    if check_files:
        for r in tables["map"]:
            if not (root / r["filename"]).is_file():
                problems.append(
                    Problem(str(map_path), "filename", f"raster map {root / r['filename']} not found (the devkit's load asserts on it; "
                            "it ships with every nuScenes version archive)", r["token"])
                )
    for table, suffix in DEVKIT_OPTIONAL_TABLES.items():
        path = root / version / f"{table}.json"
        if not path.is_file():
            continue
        rows, prob = _load_table(path)
        if prob:
            problems.append(prob)
            continue
        if suffix is None:
            continue
        unindexed = [c.get("token", "") for c in tables["category"] if "index" not in c]
        if unindexed:
            problems.append(Problem(str(root / version / "category.json"), "index",
                                    f"{table}.json is present, so every category needs 'index' (the category.json of nuScenes-{table})", unindexed[0]))
        folder = root / table / version
        if not folder.is_dir():
            problems.append(Problem(str(folder), "-", f"{table}.json is present but its label folder is missing (remove {path} or add the labels)"))
        elif check_files:
            n = sum(1 for p in folder.iterdir() if p.name.endswith(suffix))
            if n != len(rows):
                problems.append(Problem(str(folder), "-", f"{n} label files ({suffix}) for {len(rows)} {table} records; the devkit needs them equal"))
    for table, fields in _EXTRA_FIELDS.items():
        path = root / version / f"{table}.json"
        if path.is_file():
            rows, prob = _load_table(path)
            if prob:
                problems.append(prob)
            else:
                _field_problems(path, rows, fields, problems)
    return problems


def check_tables(root: str | Path, version: str, check_files: bool = True) -> list[Problem]:
    """Problems that stop ``root/version`` from loading (all errors; empty list when loadable).

    Required tables present, valid JSON, required fields; a non-empty map table listing every log;
    the raster map files (``check_files``); optional devkit tables (lidarseg, panoptic) consistent
    when present; genesis-drive's ``human_pose`` table well-formed when present.
    """
    root = Path(root)
    tables, problems = _read_tables(root, version)
    if problems:
        return problems
    return _load_problems(root, version, tables, check_files)


def missing_map_expansions(root: str | Path, locations: Iterable[str]) -> list[Problem]:
    """A warning per location whose vector map ``maps/expansion/<location>.json`` is absent."""
    root = Path(root)
    out = []
    for loc in sorted(set(locations)):
        exp = root / "maps" / "expansion" / f"{loc}.json"
        if not exp.is_file():
            out.append(
                Problem(str(exp), "location", f"vector map of location {loc!r} missing (the nuScenes map expansion is a separate "
                        "download): the root loads, map conditions will be empty, code that needs the map stops", severity="warning")
            )
    return out


def _extra_table_problems(root: Path, version: str) -> list[Problem]:
    """Extra tables (genesis-drive's, SynthTown's) present but not JSON lists: their readers fail."""
    known = set(REQUIRED_FIELDS) | set(DEVKIT_OPTIONAL_TABLES) | set(_EXTRA_FIELDS)
    out = []
    for path in sorted((root / version).glob("*.json")):
        if path.stem not in known:
            prob = _load_table(path)[1]
            if prob:
                out.append(prob)
    return out


def _bad_quat(q) -> bool:
    a = np.asarray(q, dtype=float)
    return a.shape != (4,) or not np.all(np.isfinite(a)) or abs(np.linalg.norm(a) - 1) > 1e-3


def _bad_vec(v, n: int = 3) -> bool:
    a = np.asarray(v, dtype=float)
    return a.shape != (n,) or not np.all(np.isfinite(a))


def validate_root(root: str | Path, version: str | None = None, check_files: bool = True) -> list[Problem]:
    """Every problem found in a root: structure, references, files, calibrations, time order, maps.

    Errors first come from :func:`check_tables`; when the tables themselves are unusable nothing
    else is checked. See the module docstring for what is an error and what a warning.
    """
    from .nuscenes import find_versions

    root = Path(root)
    if not root.is_dir():
        return [Problem(str(root), "-", "dataset root not found")]
    versions = find_versions(root)
    if version is None:
        if len(versions) != 1:
            return [Problem(str(root), "version", f"expected exactly one v1.0-*/ folder with scene.json, found {versions or 'none'}")]
        version = versions[0]
    if not (root / version).is_dir():
        return [Problem(str(root / version), "version", f"version folder not found; available: {versions or 'none'}")]
    t, problems = _read_tables(root, version)
    if problems:
        return problems
    problems = _load_problems(root, version, t, check_files) + _extra_table_problems(root, version)
    tokens = {name: {r["token"]: r for r in rows} for name, rows in t.items()}
    tp = {name: str(root / version / f"{name}.json") for name in REQUIRED_FIELDS}

    def ref(table: str, rec: dict, field: str, target: str, allow_empty: bool = False) -> None:
        value = rec[field]
        if allow_empty and value == "":
            return
        if value not in tokens[target]:
            problems.append(Problem(tp[table], field, f"refers to missing {target} {value!r}", rec["token"]))

    for name, rows in t.items():
        seen = set()
        for r in rows:
            if r["token"] in seen:
                problems.append(Problem(tp[name], "token", "duplicate token", r["token"]))
            seen.add(r["token"])
    sensors = tokens["sensor"]
    for r in t["calibrated_sensor"]:
        ref("calibrated_sensor", r, "sensor_token", "sensor")
        if _bad_quat(r["rotation"]):
            problems.append(Problem(tp["calibrated_sensor"], "rotation", "must be a unit quaternion [w, x, y, z]", r["token"]))
        if _bad_vec(r["translation"]):
            problems.append(Problem(tp["calibrated_sensor"], "translation", "must be 3 finite numbers (metres)", r["token"]))
        modality = sensors.get(r["sensor_token"], {}).get("modality")
        k = np.asarray(r["camera_intrinsic"], dtype=float) if r["camera_intrinsic"] else None
        if modality == "camera":
            if k is None or k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] != 1:
                problems.append(Problem(tp["calibrated_sensor"], "camera_intrinsic", "a camera needs a 3x3 matrix with fx, fy > 0 and K[2][2] = 1", r["token"]))
    for r in t["ego_pose"]:
        if _bad_quat(r["rotation"]):
            problems.append(Problem(tp["ego_pose"], "rotation", "must be a unit quaternion [w, x, y, z]", r["token"]))
        if _bad_vec(r["translation"]):
            problems.append(Problem(tp["ego_pose"], "translation", "must be 3 finite numbers (metres)", r["token"]))
    for r in t["instance"]:
        ref("instance", r, "category_token", "category")
        ref("instance", r, "first_annotation_token", "sample_annotation")
    for r in t["scene"]:
        ref("scene", r, "log_token", "log")
        ref("scene", r, "first_sample_token", "sample")
    for r in t["sample"]:
        ref("sample", r, "scene_token", "scene")
        ref("sample", r, "prev", "sample", allow_empty=True)
        ref("sample", r, "next", "sample", allow_empty=True)
        nxt = tokens["sample"].get(r["next"])
        if nxt is not None and nxt["timestamp"] <= r["timestamp"]:
            problems.append(Problem(tp["sample"], "timestamp", "next sample is not later in time", r["token"]))
    for r in t["sample_data"]:
        ref("sample_data", r, "sample_token", "sample")
        ref("sample_data", r, "ego_pose_token", "ego_pose")
        ref("sample_data", r, "calibrated_sensor_token", "calibrated_sensor")
        ref("sample_data", r, "prev", "sample_data", allow_empty=True)
        ref("sample_data", r, "next", "sample_data", allow_empty=True)
        if check_files:
            path = root / r["filename"]
            if not path.is_file():
                problems.append(Problem(tp["sample_data"], "filename", f"file {path} not found", r["token"]))
            elif r["filename"].endswith(".pcd.bin") and path.stat().st_size % 20:
                problems.append(Problem(tp["sample_data"], "filename", f"{path}: size not a multiple of 20 bytes (float32 x 5)", r["token"]))
    for r in t["sample_annotation"]:
        ref("sample_annotation", r, "sample_token", "sample")
        ref("sample_annotation", r, "instance_token", "instance")
        ref("sample_annotation", r, "visibility_token", "visibility", allow_empty=True)
        for a in r["attribute_tokens"]:
            if a not in tokens["attribute"]:
                problems.append(Problem(tp["sample_annotation"], "attribute_tokens", f"refers to missing attribute {a!r}", r["token"]))
        if _bad_quat(r["rotation"]):
            problems.append(Problem(tp["sample_annotation"], "rotation", "must be a unit quaternion [w, x, y, z]", r["token"]))
        size = np.asarray(r["size"], dtype=float)
        if size.shape != (3,) or not np.all(size > 0):
            problems.append(Problem(tp["sample_annotation"], "size", "must be 3 positive numbers (w, l, h metres)", r["token"]))
    for r in t["map"]:
        for lt in r["log_tokens"]:
            if lt not in tokens["log"]:
                problems.append(Problem(tp["map"], "log_tokens", f"lists a log {lt!r} the log table lacks (ignored)", r["token"], "warning"))
    human_pose = root / version / "human_pose.json"
    if human_pose.is_file() and not errors(p for p in problems if p.path == str(human_pose)):
        for r in _load_table(human_pose)[0]:
            if r["sample_annotation_token"] not in tokens["sample_annotation"]:
                problems.append(Problem(str(human_pose), "sample_annotation_token", "refers to a missing sample_annotation (pose ignored)",
                                        str(r.get("token", "")), "warning"))
    locations = [r["location"] for r in t["log"]]
    if check_files:
        from .maps import read_map_expansion

        problems += missing_map_expansions(root, locations)
        for loc in sorted(set(locations)):
            exp = root / "maps" / "expansion" / f"{loc}.json"
            if exp.is_file():
                try:
                    read_map_expansion(exp)
                except DataError as e:
                    problems.append(Problem(str(exp), e.field or "-", str(e)))
    return problems
