"""Checkpoint directories: round trip, keep-last-N, atomic writes, corrupt and mismatched input."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from genesis_drive.errors import ConfigError, DataError
from genesis_drive.train import checkpoint as ckpt
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.frame_ae import build

from .conftest import fast_config


def _model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    return model, opt


def _step(model, opt, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=g)
    model(x).square().mean().backward()
    opt.step()
    opt.zero_grad()


def test_round_trip_restores_weights_and_optimizer_so_training_continues_identically(tmp_path):
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    model, opt = _model_and_optimizer(0)
    for s in range(3):
        _step(model, opt, s)
    tensors, meta = ckpt.flatten_optimizer_state(get_optimizer_state_dict(model, opt))
    path = ckpt.save_checkpoint(tmp_path, 3, model=model.state_dict(), optimizer=tensors, ema=None,
                                state={"optimizer": meta, "note": "x"}, keep_last=2)
    assert path.name == "step_00000003" and ckpt.latest_checkpoint(tmp_path) == path

    data = ckpt.read_checkpoint(path)
    assert data.step == 3 and data.state["note"] == "x" and data.ema is None
    model2, opt2 = _model_and_optimizer(1)  # different initialisation
    model2.load_state_dict(data.model)
    set_optimizer_state_dict(model2, opt2, ckpt.unflatten_optimizer_state(data.optimizer, data.state["optimizer"]))
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    _step(model, opt, 3)
    _step(model2, opt2, 3)
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_keep_last_and_temporaries_are_never_listed(tmp_path):
    w = {"w": torch.arange(6.0).reshape(2, 3)}
    for step in (1, 2, 3, 4, 5):
        ckpt.save_checkpoint(tmp_path, step, model=w, optimizer={}, ema=w, state={}, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [4, 5]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000004", "step_00000005"]
    half = tmp_path / "checkpoints" / ".tmp-step_00000009-1-2"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    assert ckpt.latest_checkpoint(tmp_path).name == "step_00000005"
    assert ckpt.remove_stale_temporaries(tmp_path) == [half] and not half.exists()


def test_failure_during_write_leaves_no_checkpoint(tmp_path, monkeypatch):
    w = {"w": torch.ones(3)}
    ckpt.save_checkpoint(tmp_path, 1, model=w, optimizer={}, ema=None, state={}, keep_last=3)
    original = ckpt._write_tensors

    def fail_on_optimizer(path, tensors):
        if path.name == "optimizer.safetensors":
            raise OSError("disk full")
        original(path, tensors)

    monkeypatch.setattr(ckpt, "_write_tensors", fail_on_optimizer)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, 2, model=w, optimizer={}, ema=None, state={}, keep_last=3)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000001"]


def test_load_weights_prefers_ema_and_never_needs_pickle(tmp_path):
    model = {"w": torch.zeros(2), "buf": torch.tensor([7.0])}
    ema = {"w": torch.ones(2)}
    ckpt.save_checkpoint(tmp_path, 4, model=model, optimizer={}, ema=ema, state={}, keep_last=1)
    got = ckpt.load_weights(tmp_path)  # a run directory: its newest checkpoint
    assert torch.equal(got["w"], torch.ones(2)) and torch.equal(got["buf"], torch.tensor([7.0]))
    raw = ckpt.load_weights(tmp_path / "checkpoints" / "step_00000004", ema=False)
    assert torch.equal(raw["w"], torch.zeros(2))
    assert {p.suffix for p in (tmp_path / "checkpoints" / "step_00000004").iterdir()} == {".safetensors", ".json"}
    with pytest.raises(DataError, match="no checkpoint here"):
        ckpt.load_weights(tmp_path / "elsewhere")


def test_export_writes_ema_weights_updated_config_and_transformed_weights(tmp_path):
    model, ema = {"w": torch.zeros(2), "buf": torch.tensor([7.0])}, {"w": torch.ones(2)}
    state = {"task": "toy", "config": {"model": {"depth": 2, "width": 4}}}
    ckpt.save_checkpoint(tmp_path / "run", 3, model=model, optimizer={}, ema=ema, state=state, keep_last=1)
    out = ckpt.export_checkpoint(tmp_path / "run", tmp_path / "plain")
    assert ckpt.read_state(out)["config"] == state["config"] and ckpt.read_state(out)["step"] == 3
    assert torch.equal(ckpt.load_weights(out)["w"], torch.ones(2))  # the EMA weights, now the only weights
    again = ckpt.export_checkpoint(tmp_path / "run", tmp_path / "again")
    assert (out / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    grown = ckpt.export_checkpoint(tmp_path / "run", tmp_path / "grown", config_updates={"model": {"depth": 3}},
                                   transform=lambda w: {**w, "new": torch.full((2,), 5.0)})
    assert ckpt.read_state(grown)["config"]["model"] == {"depth": 3, "width": 4}
    got = ckpt.load_weights(grown)
    assert sorted(got) == ["buf", "new", "w"] and torch.equal(got["new"], torch.full((2,), 5.0))
    assert torch.equal(got["buf"], torch.tensor([7.0]))


def test_truncated_and_garbled_files_are_reported_by_name(tmp_path):
    w = {"w": torch.arange(100.0)}
    path = ckpt.save_checkpoint(tmp_path, 1, model=w, optimizer={}, ema=w, state={}, keep_last=1)
    f = path / "ema.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-10])
    with pytest.raises(DataError, match="ema.safetensors.*truncated"):
        ckpt.read_checkpoint(path)
    f.write_bytes(b"\xff" * len(data))
    with pytest.raises(DataError, match="ema.safetensors.*corrupt safetensors"):
        ckpt.read_checkpoint(path)
    (path / "state.json").write_text("{not json")
    with pytest.raises(DataError, match="state.json.*corrupt"):
        ckpt.read_checkpoint(path)


def _run(jpeg_root, run_dir, *overrides, resume=False):
    cfg = fast_config("train.steps=2", *overrides)
    return train(build(cfg, jpeg_root), cfg, run_dir, task_name="frame_ae", resume=resume)


def test_resume_rejects_changed_config_corrupt_files_and_other_models(jpeg_root, tmp_path):
    run = tmp_path / "run"
    _run(jpeg_root, run)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        _run(jpeg_root, run)
    with pytest.raises(ConfigError, match=r"train.lr: checkpoint 0.001, now 0.002"):
        _run(jpeg_root, run, "train.lr=2e-3", resume=True)
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        _run(jpeg_root, tmp_path / "empty", resume=True)
    # resuming with more steps is allowed and continues from step 2
    assert _run(jpeg_root, run, "train.steps=3", resume=True).step == 3
    # a field added to the config after the checkpoint was written counts as its default
    latest = ckpt.latest_checkpoint(run)
    state = json.loads((latest / "state.json").read_text())
    del state["config"]["train"]["deterministic"]
    (latest / "state.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match=r"train.deterministic: checkpoint False, now True"):
        _run(jpeg_root, run, "train.steps=4", "train.deterministic=true", resume=True)
    assert _run(jpeg_root, run, "train.steps=4", resume=True).step == 4

    # a checkpoint whose tensors belong to another model (state.json edited to claim this config)
    latest = ckpt.latest_checkpoint(run)
    state = json.loads((latest / "state.json").read_text())
    state["config"]["model"]["channels"] = [8, 16]
    (latest / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match="do not fit this model.*shape mismatch"):
        _run(jpeg_root, run, "train.steps=4", "model.channels=8,16", resume=True)

    model_file = latest / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])
    with pytest.raises(DataError, match="model.safetensors.*truncated"):
        _run(jpeg_root, run, "train.steps=4", resume=True)
