"""Checks of a nuScenes-format root; every problem names the file and field.

:func:`check_tables` is the structural check the reader runs before the devkit loads anything
(tables present, valid JSON, required fields). :func:`validate_root` adds everything else:
token references, files on disk, calibrations, quaternions, timestamps, scene chains and maps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["Problem", "check_tables", "validate_root", "REQUIRED_FIELDS"]

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


@dataclass(frozen=True)
class Problem:
    """One problem: where (file, record token, field) and what."""

    path: str
    field: str
    message: str
    token: str = ""

    def __str__(self) -> str:
        rec = f" record {self.token}" if self.token else ""
        return f"{self.path}:{rec} field '{self.field}': {self.message}"


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


def check_tables(root: str | Path, version: str) -> list[Problem]:
    """Structural problems of the tables of ``root/version`` (empty list when loadable)."""
    problems = []
    for table, fields in REQUIRED_FIELDS.items():
        path = Path(root) / version / f"{table}.json"
        rows, prob = _load_table(path)
        if prob:
            problems.append(prob)
            continue
        if table == "map" and not rows:
            problems.append(Problem(str(path), "-", "the map table needs at least one record (with log_tokens)"))
        for r in rows:
            missing = [f for f in fields if f not in r]
            if missing:
                problems.append(Problem(str(path), ",".join(missing), "missing", str(r.get("token", ""))))
                if len(problems) > 200:
                    return problems
    return problems


def _bad_quat(q) -> bool:
    a = np.asarray(q, dtype=float)
    return a.shape != (4,) or not np.all(np.isfinite(a)) or abs(np.linalg.norm(a) - 1) > 1e-3


def _bad_vec(v, n: int = 3) -> bool:
    a = np.asarray(v, dtype=float)
    return a.shape != (n,) or not np.all(np.isfinite(a))


def validate_root(root: str | Path, version: str | None = None, check_files: bool = True) -> list[Problem]:
    """Every problem found in a root: structure, references, files, calibrations, time order."""
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
    problems = check_tables(root, version)
    if problems:
        return problems
    t = {name: _load_table(root / version / f"{name}.json")[0] for name in REQUIRED_FIELDS}
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
    logs_with_map = set()
    for r in t["map"]:
        for lt in r["log_tokens"]:
            logs_with_map.add(lt)
            if lt not in tokens["log"]:
                problems.append(Problem(tp["map"], "log_tokens", f"refers to missing log {lt!r}", r["token"]))
        if check_files and not (root / r["filename"]).is_file():
            problems.append(Problem(tp["map"], "filename", f"file {root / r['filename']} not found", r["token"]))
    for r in t["log"]:
        if r["token"] not in logs_with_map:
            problems.append(Problem(tp["log"], "token", "no map record lists this log in log_tokens", r["token"]))
        exp = root / "maps" / "expansion" / f"{r['location']}.json"
        if check_files and not exp.is_file():
            problems.append(Problem(str(exp), "location", "vector map missing (map conditions will be empty)", r["token"]))
    if check_files:
        from .maps import read_map_expansion

        for loc in sorted({r["location"] for r in t["log"]}):
            exp = root / "maps" / "expansion" / f"{loc}.json"
            if exp.is_file():
                try:
                    read_map_expansion(exp)
                except DataError as e:
                    problems.append(Problem(str(exp), e.field or "-", str(e)))
    return problems
