"""load_run_model: config read strictly from the checkpoint, EMA or raw weights, identity hashes, errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from genesis_drive.config import config_to_dict
from genesis_drive.errors import DataError
from genesis_drive.train.checkpoint import file_sha256, load_run_model, save_checkpoint


@dataclass(frozen=True)
class _Net:
    width: int = 3


@dataclass(frozen=True)
class _Run:
    model: _Net = field(default_factory=_Net)


def _make(cfg: _Run) -> nn.Module:
    return nn.Linear(2, cfg.model.width)


def _save(run, cfg: _Run, step: int = 4, ema_value: float | None = 1.0) -> nn.Module:
    torch.manual_seed(0)
    net = _make(cfg)
    ema = None if ema_value is None else {k: torch.full_like(v, ema_value) for k, v in net.state_dict().items()}
    save_checkpoint(run, step, model=net.state_dict(), optimizer={}, ema=ema, state={"task": "toy", "config": config_to_dict(cfg)}, keep_last=2)
    return net


def test_file_sha256_by_hand(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"genesis" * 200_000)  # more than one 1 MiB chunk
    assert file_sha256(p) == hashlib.sha256(b"genesis" * 200_000).hexdigest()


def test_ema_or_raw_weights_and_identity(tmp_path):
    cfg = _Run(_Net(width=5))
    net = _save(tmp_path / "run", cfg)
    model, got, info = load_run_model(tmp_path / "run", _Run, _make, task="toy")
    assert got == cfg and not model.training and info["step"] == 4 and info["task"] == "toy" and info["ema"]
    assert torch.equal(model.weight, torch.ones(5, 2))  # EMA weights by default
    raw, _, raw_info = load_run_model(tmp_path / "run", _Run, _make, task="toy", ema=False)
    assert torch.equal(raw.weight, net.weight)
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000004"
    assert raw_info["sha256"] == hashlib.sha256(file_sha256(ckpt / "model.safetensors").encode()).hexdigest()
    assert info["sha256"] != raw_info["sha256"] and info["checkpoint"] == str(ckpt)
    # a checkpoint directory works as well as its run directory; the newest checkpoint wins
    assert load_run_model(ckpt, _Run, _make, task="toy")[2]["sha256"] == info["sha256"]
    _save(tmp_path / "run", cfg, step=9, ema_value=None)
    newest, _, new_info = load_run_model(tmp_path / "run", _Run, _make, task="toy")
    assert new_info["step"] == 9 and torch.equal(newest.weight, net.weight)  # no EMA there: raw weights


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="no checkpoint here"):
        load_run_model(tmp_path, _Run, _make, task="toy")
    _save(tmp_path / "run", _Run(_Net(width=5)))

    @dataclass(frozen=True)
    class Other:
        size: int = 1

    with pytest.raises(DataError, match="written by task 'toy', expected 'other'") as e:
        load_run_model(tmp_path / "run", _Run, _make, task="other")
    assert e.value.field == "task"
    with pytest.raises(DataError, match="does not fit Other") as e:
        load_run_model(tmp_path / "run", Other, lambda c: nn.Linear(2, 5), task="toy")
    assert e.value.field == "config"
    with pytest.raises(DataError, match="weights do not match Linear"):
        load_run_model(tmp_path / "run", _Run, lambda c: nn.Linear(2, 7), task="toy")
    with pytest.raises(DataError, match="missing"):
        load_run_model(tmp_path / "run", _Run, lambda c: nn.Sequential(nn.Linear(2, 5)), task="toy")



@dataclass(frozen=True)
class _NetV2:
    width: int = 3
    bias: bool = True  # added after the checkpoint was written


@dataclass(frozen=True)
class _RunV2:
    model: _NetV2 = field(default_factory=_NetV2)


@dataclass(frozen=True)
class _NetNoDefault:
    width: int
    depth: int  # added later without a default: cannot be filled


@dataclass(frozen=True)
class _RunNoDefault:
    model: _NetNoDefault


def test_config_field_added_after_the_checkpoint_takes_its_default(tmp_path):
    """A field added to the config since the checkpoint was written (its default keeping the earlier
    behaviour) does not orphan the checkpoint: the default fills in and is reported."""
    _save(tmp_path / "run", _Run(_Net(width=5)))
    model, got, info = load_run_model(tmp_path / "run", _RunV2, lambda c: nn.Linear(2, c.model.width, bias=c.model.bias), task="toy")
    assert got == _RunV2(_NetV2(width=5, bias=True)) and info["defaulted"] == ["model.bias"]
    assert torch.equal(model.weight, torch.ones(5, 2))
    assert load_run_model(tmp_path / "run", _Run, _make, task="toy")[2]["defaulted"] == []
    with pytest.raises(DataError, match=r"missing key 'model.depth' \(int\)"):
        load_run_model(tmp_path / "run", _RunNoDefault, lambda c: nn.Linear(2, 5), task="toy")
