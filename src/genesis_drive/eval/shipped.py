"""Shipped evaluator weights: versioned, hash-checked checkpoint directories inside the package.

Layout (``src/genesis_drive/assets/evaluators/``)::

    MANIFEST.json            {"format": ..., "evaluators": {NAME: entry}}
    NAME/model.safetensors   the EMA weights of the trained run (buffers from the raw weights)
    NAME/state.json          format, step, task, config (the run config as the training loop
                             wrote it) and file sizes: a checkpoint directory for
                             :func:`genesis_drive.train.checkpoint.load_run_model`

A manifest entry holds ``version`` (e.g. ``synth_features-tiny-v1``), ``task``, ``files``
(name -> sha256 hex), ``command`` (the training command), ``data_command`` (the ``world``
command of its data), ``steps``, ``wall_time_s``, ``date`` (UTC, ISO 8601). The ``eval`` commands
use :func:`resolve_evaluator` when ``--model`` is not given: the files are verified against the
manifest before use, so a number names exactly which weights produced it. Nothing is unpickled.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_json
from ..errors import DataError
from ..train.checkpoint import export_checkpoint, file_sha256, read_state

__all__ = [
    "ASSETS_DIR",
    "MANIFEST_FORMAT",
    "manifest_entry",
    "resolve_evaluator",
    "shipped_evaluator",
    "write_shipped",
]

#: Directory of the shipped evaluator weights inside the installed package.
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "evaluators"
MANIFEST_FORMAT = "genesis-drive-evaluators/1"
_WEIGHTS = "model.safetensors"
_STATE = "state.json"


def _read_manifest(assets_dir: Path) -> dict[str, Any]:
    path = assets_dir / "MANIFEST.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": MANIFEST_FORMAT, "evaluators": {}}
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"corrupt evaluator manifest ({e}); reinstall genesis-drive or pass --model", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("evaluators"), dict):
        raise DataError(f"expected an evaluator manifest of format {MANIFEST_FORMAT!r}; reinstall genesis-drive or pass --model",
                        path, "format")  # fmt: skip
    return manifest


def manifest_entry(name: str, *, assets_dir: str | Path = ASSETS_DIR) -> dict[str, Any]:
    """The manifest entry of shipped evaluator ``name`` (DataError when none ships)."""
    assets_dir = Path(assets_dir)
    entries = _read_manifest(assets_dir)["evaluators"]
    if name not in entries:
        raise DataError(f"no shipped weights for evaluator {name!r} (shipped: {sorted(entries) or 'none'}); "
                        f"train one and pass --model RUN_DIR", assets_dir / "MANIFEST.json", name)  # fmt: skip
    return entries[name]


def shipped_evaluator(name: str, *, assets_dir: str | Path = ASSETS_DIR, task: str | None = None) -> Path:
    """Checkpoint directory of shipped evaluator ``name``, after checking every file's sha256
    against the manifest and (given ``task``) that its ``state.json`` is of that training task.

    A corrupt, altered or mismatched file raises one DataError naming it."""
    assets_dir = Path(assets_dir)
    entry = manifest_entry(name, assets_dir=assets_dir)
    ckpt = assets_dir / name
    files = entry.get("files")
    if not isinstance(files, dict) or set(files) != {_WEIGHTS, _STATE}:
        raise DataError(f"manifest entry of {name!r} must list sha256 of {_WEIGHTS} and {_STATE}", assets_dir / "MANIFEST.json", name)
    for fname, digest in files.items():
        path = ckpt / fname
        if not path.is_file():
            raise DataError("shipped evaluator file is missing; reinstall genesis-drive or pass --model", path)
        actual = file_sha256(path)
        if actual != digest:
            raise DataError(f"shipped evaluator file is corrupt or altered (sha256 {actual[:12]}..., manifest "
                            f"{entry.get('version')} records {str(digest)[:12]}...); reinstall genesis-drive or pass --model", path)  # fmt: skip
    state = read_state(ckpt)
    expected = task or entry.get("task")
    if state.get("task") != expected:
        raise DataError(f"shipped evaluator {name!r} holds a checkpoint of task {state.get('task')!r}, expected {expected!r}; "
                        f"reinstall genesis-drive or pass --model", ckpt / _STATE, "task")  # fmt: skip
    return ckpt


def resolve_evaluator(model: str | Path | None, name: str, task: str, *, assets_dir: str | Path = ASSETS_DIR) -> tuple[Path, dict[str, Any]]:
    """``(weights path, evaluator record for the report)``: ``model`` when given (record
    ``{"source": "user", "path": ...}``), else the verified shipped weights of ``name``
    (record with ``source: "shipped"``, version and per-file sha256)."""
    if model is not None:
        return Path(model), {"source": "user", "path": str(Path(model).resolve()), "version": None}
    path = shipped_evaluator(name, assets_dir=assets_dir, task=task)
    entry = manifest_entry(name, assets_dir=assets_dir)
    return path, {"source": "shipped", "name": name, "version": entry["version"], "sha256": dict(entry["files"]),
                  "path": str(path)}  # fmt: skip


def write_shipped(
    run_dir: str | Path,
    name: str,
    *,
    version: str,
    command: str,
    data_command: str,
    wall_time_s: float | None = None,
    assets_dir: str | Path = ASSETS_DIR,
) -> dict[str, Any]:
    """Write the EMA weights of a trained run (its latest checkpoint, or a checkpoint directory) as
    shipped evaluator ``name`` and record it in the manifest; returns the manifest entry.

    The directory is written by :func:`~genesis_drive.train.checkpoint.export_checkpoint` (a
    temporary sibling renamed into place); the manifest is rewritten atomically after it."""
    assets_dir = Path(assets_dir)
    final = export_checkpoint(run_dir, assets_dir / name, extra_state={"version": version})
    state = read_state(final)
    entry = {
        "version": version,
        "task": state["task"],
        "files": {f: file_sha256(final / f) for f in (_WEIGHTS, _STATE)},
        "bytes": {f: (final / f).stat().st_size for f in (_WEIGHTS, _STATE)},
        "steps": int(state["step"]),
        "command": command,
        "data_command": data_command,
        "wall_time_s": wall_time_s,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest = _read_manifest(assets_dir)
    manifest["evaluators"][name] = entry
    atomic_write_json(assets_dir / "MANIFEST.json", manifest, indent=1)
    return entry
