"""Checkpoint directories: safetensors for tensors, JSON for everything else, written atomically.

Layout of one checkpoint, ``RUN_DIR/checkpoints/step_00001000/``::

    model.safetensors      weights by parameter/buffer name (whole tensors, CPU)
    ema.safetensors        EMA weights (absent when EMA is off)
    optimizer.safetensors  optimizer state tensors, keys "<param name>/<state key>"
    state.json             step, task, config, RNG states per rank, optimizer hyperparameters,
                           file sizes (checked on read)

The directory is written as ``checkpoints/.tmp-step_...`` and renamed into place only when every
file is complete and flushed, so a kill at any moment leaves either the whole checkpoint or none.
Reading never unpickles anything: tensors come from safetensors, the rest from JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import config_from_saved
from ..data.atomic import replace_dir
from ..errors import ConfigError, DataError

__all__ = [
    "FORMAT",
    "CheckpointData",
    "checkpoint_root",
    "list_checkpoints",
    "latest_checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "read_state",
    "load_weights",
    "load_run_model",
    "find_checkpoint",
    "file_sha256",
    "export_checkpoint",
    "remove_stale_temporaries",
    "flatten_optimizer_state",
    "unflatten_optimizer_state",
]

FORMAT = "genesis-drive-checkpoint/1"
_NAME_RE = re.compile(r"step_(\d{8,})")
_TMP_PREFIX = ".tmp-"


@dataclass
class CheckpointData:
    """Everything one checkpoint holds, as plain tensors and JSON values."""

    state: dict[str, Any]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)
    ema: dict[str, torch.Tensor] | None = None

    @property
    def step(self) -> int:
        return int(self.state["step"])


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, path)``, oldest first (temporaries are skipped)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _NAME_RE.fullmatch(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def find_checkpoint(path: str | Path) -> Path | None:
    """``path`` itself when it is a checkpoint directory (has ``state.json``), else the newest
    complete checkpoint of the run directory ``path``; None when there is neither."""
    path = Path(path)
    return path if (path / "state.json").is_file() else latest_checkpoint(path)


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete half-written ``.tmp-*`` directories left by a killed run; returns what was removed."""
    root = checkpoint_root(run_dir)
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(_TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


# ----------------------------------------------------------------------------- optimizer state


def flatten_optimizer_state(osd: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a name-keyed optimizer state dict (``get_optimizer_state_dict`` form) into tensors + JSON.

    Tensors go to ``"<param name>/<key>"``; non-tensor per-parameter entries and the
    ``param_groups`` go to the JSON part.
    """
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, dict[str, Any]] = {}
    for pname, entries in osd.get("state", {}).items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pname}/{key}"] = value.detach().cpu().contiguous()
            else:
                extra.setdefault(str(pname), {})[key] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in osd.get("param_groups", [])
    ]
    return tensors, {"param_groups": groups, "state_extra": extra}


def unflatten_optimizer_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        pname, _, entry = key.rpartition("/")
        state.setdefault(pname, {})[entry] = value
    for pname, entries in meta.get("state_extra", {}).items():
        state.setdefault(pname, {}).update(entries)
    groups = []
    for g in meta.get("param_groups", []):
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------- write


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    plain: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in tensors.items():
        t = v.detach().cpu().contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in seen:  # tied weights: safetensors wants copies
            t = t.clone()
        if t.numel():
            seen.add(t.untyped_storage().data_ptr())
        plain[k] = t
    save_file(plain, str(path), metadata={"format": FORMAT})
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: Mapping[str, torch.Tensor],
    optimizer: Mapping[str, torch.Tensor],
    ema: Mapping[str, torch.Tensor] | None,
    state: Mapping[str, Any],
    keep_last: int,
) -> Path:
    """Write checkpoint ``step`` atomically, then delete all but the newest ``keep_last``.

    ``state`` holds JSON values (step and file sizes are added here). Call on one process only.
    """
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f"{_TMP_PREFIX}{final.name}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        _write_tensors(tmp / "model.safetensors", model)
        _write_tensors(tmp / "optimizer.safetensors", optimizer)
        if ema is not None:
            _write_tensors(tmp / "ema.safetensors", ema)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
        record = {**state, "format": FORMAT, "step": int(step), "files": files}
        with open(tmp / "state.json", "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():  # same step written again (e.g. a resumed run ending where it started)
            old = root / f"{_TMP_PREFIX}old-{final.name}-{time.time_ns()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old_path in list_checkpoints(run_dir)[:-keep_last]:
        doomed = root / f"{_TMP_PREFIX}del-{old_path.name}-{time.time_ns()}"
        os.rename(old_path, doomed)  # never leave a half-deleted directory under a complete name
        shutil.rmtree(doomed, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------- read


def read_state(path: str | Path) -> dict[str, Any]:
    """The JSON part of a checkpoint directory, checked for format and complete files."""
    path = Path(path)
    state_file = path / "state.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("not a checkpoint directory (no state.json)", path) from None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"corrupt checkpoint state: {e}", state_file) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"expected format {FORMAT!r}, got {state.get('format') if isinstance(state, dict) else state!r}",
                        state_file, "format")
    files = state.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise DataError("file list missing or without model.safetensors", state_file, "files")
    for name, size in files.items():
        f = path / name
        if not f.is_file():
            raise DataError("checkpoint file is missing", f)
        if f.stat().st_size != size:
            raise DataError(f"checkpoint file is truncated or altered ({f.stat().st_size} bytes, "
                            f"state.json records {size})", f)
    return state


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"corrupt safetensors file: {e}", path) from None


def read_checkpoint(path: str | Path) -> CheckpointData:
    """Read a whole checkpoint directory (tensors on CPU)."""
    path = Path(path)
    state = read_state(path)
    files = state["files"]
    return CheckpointData(
        state=state,
        model=_load_tensors(path / "model.safetensors"),
        optimizer=_load_tensors(path / "optimizer.safetensors") if "optimizer.safetensors" in files else {},
        ema=_load_tensors(path / "ema.safetensors") if "ema.safetensors" in files else None,
    )


def load_weights(path: str | Path, *, ema: bool = True) -> dict[str, torch.Tensor]:
    """Weights for inference from a checkpoint directory or a run directory (its latest checkpoint).

    ``ema=True`` returns the EMA weights when the checkpoint has them (buffers from the model
    weights), else the raw weights. Only safetensors and JSON are read: nothing is unpickled.
    """
    found = find_checkpoint(path)
    if found is None:
        raise DataError("no checkpoint here (expected a checkpoint directory or a run directory "
                        "with checkpoints/step_*/)", path)
    path = found
    state = read_state(path)
    weights = _load_tensors(path / "model.safetensors")
    if ema and "ema.safetensors" in state["files"]:
        weights.update(_load_tensors(path / "ema.safetensors"))
    return weights


def _merge(base: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in updates.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def export_checkpoint(
    source: str | Path,
    out: str | Path,
    *,
    config_updates: Mapping[str, Any] | None = None,
    extra_state: Mapping[str, Any] | None = None,
    transform: Callable[[dict[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
) -> Path:
    """Write the inference weights of ``source`` (a checkpoint directory, or a run directory: its
    latest checkpoint) as the checkpoint directory ``out``: ``model.safetensors`` (the EMA weights
    when there are any, buffers from the raw weights) and ``state.json`` (format, step, task, the
    run config with ``config_updates`` merged in (nested dicts, e.g. ``{"model": {"shift_factor":
    0.1}}``), the ``frozen`` helper versions when the run recorded them, ``extra_state`` keys). No optimizer state: a directory to load, not to resume.
    ``transform``: maps the weights before they are written (e.g. a network grown to the
    ``config_updates``' size, :func:`~genesis_drive.models.camera.dit.grow_depth`).

    Written as a temporary sibling and renamed into place (an existing ``out`` is replaced whole);
    the same source and updates give the same bytes. Returns ``out``.
    """
    source, out = Path(source), Path(out)
    ckpt = find_checkpoint(source)
    if ckpt is None:
        raise DataError("no checkpoint to export (expected a checkpoint directory or a run directory with checkpoints/step_*/)", source)
    state = read_state(ckpt)
    if not isinstance(state.get("config"), dict) or not state.get("task"):
        raise DataError("checkpoint state has no task and run config", ckpt / "state.json")
    weights = load_weights(ckpt, ema=True)
    weights = {k: v.contiguous() for k, v in (transform(weights) if transform is not None else weights).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f"{_TMP_PREFIX}{out.name}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": FORMAT})  # one key: a byte-stable header
        kept = {"frozen": state["frozen"]} if "frozen" in state else {}  # versions of the run's frozen helpers
        record = {"format": FORMAT, "step": int(state["step"]), "task": state["task"],
                  "config": _merge(state["config"], config_updates or {}), **kept, **dict(extra_state or {}),
                  "files": {"model.safetensors": (tmp / "model.safetensors").stat().st_size}}  # fmt: skip
        (tmp / "state.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        for f in ("model.safetensors", "state.json"):
            os.chmod(tmp / f, 0o644)  # package data: ordinary readable files
        os.chmod(tmp, 0o755)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_run_model(
    path: str | Path, config_type: type, make_model: Callable[[Any], nn.Module], *, task: str, ema: bool = True
) -> tuple[nn.Module, Any, dict]:
    """A trained model from a run directory (its latest checkpoint) or a checkpoint directory.

    The checkpoint must have been written by training task ``task`` (``state.json`` key ``task``):
    a checkpoint of another task is refused by name before its config is read.
    The run config is read from the checkpoint's ``state.json`` (key ``config``, as written by the
    training loop) into ``config_type`` (:func:`~genesis_drive.config.config_from_saved`: unknown
    keys are errors, keys added to the config since the checkpoint was written take their defaults
    and are listed in ``info["defaulted"]``); ``make_model(cfg)`` builds the network, whose
    weights (EMA when present and ``ema``) are loaded strictly from safetensors. Returns
    ``(model in eval mode, run config, info)``; info holds the checkpoint path, step, task name, the
    SHA-256 of the weight files used (for reference-statistics cache keys), ``ema`` and ``defaulted``.
    """
    path = Path(path)
    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise DataError("no checkpoint here (expected a run directory with checkpoints/step_*/ or a checkpoint directory)", path)
    state = read_state(ckpt)
    if state.get("task") != task:
        raise DataError(f"checkpoint was written by task {state.get('task')!r}, expected {task!r}", ckpt / "state.json", "task")
    raw = state.get("config")
    if not isinstance(raw, Mapping):
        raise DataError("checkpoint state has no run config (a mapping)", ckpt / "state.json", "config")
    try:
        cfg, defaulted = config_from_saved(config_type, raw)
    except ConfigError as e:
        raise DataError(f"run config does not fit {config_type.__name__}: {e}",
                        ckpt / "state.json", "config") from None
    model = make_model(cfg)
    weights = load_weights(ckpt, ema=ema)
    missing, unexpected = set(model.state_dict()) - set(weights), set(weights) - set(model.state_dict())
    if missing or unexpected:
        raise DataError(f"weights do not match {type(model).__name__}: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}", ckpt / "model.safetensors")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise DataError(f"weights do not match {type(model).__name__}: {e}", ckpt / "model.safetensors") from None
    files = [n for n in ("model.safetensors", "ema.safetensors") if n in state["files"] and (ema or n == "model.safetensors")]
    digest = hashlib.sha256("".join(file_sha256(ckpt / n) for n in files).encode()).hexdigest()
    info = {"checkpoint": str(ckpt), "step": int(state["step"]), "task": state.get("task"), "sha256": digest, "ema": ema,
            "defaulted": defaulted}
    return model.eval(), cfg, info
