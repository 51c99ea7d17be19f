"""Fine-tuning: ``init_from`` (``genesis-drive train --init-from``) starts a new run from another run's (EMA) weights."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.errors import ConfigError, DataError
from genesis_drive.train.checkpoint import latest_checkpoint, load_weights
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.frame_ae import FrameAETask

from .conftest import fast_config


def _train(root, run_dir, *overrides, task_name="frame_ae", init_from=None):
    cfg = fast_config(*overrides)
    return train(FrameAETask(cfg, root), cfg, run_dir, task_name=task_name, init_from=init_from)


def test_init_from_starts_at_the_source_ema_weights_and_fine_tunes(jpeg_root, tmp_path):
    src = _train(jpeg_root, tmp_path / "src", "train.steps=4", "train.lr=3e-3")
    want = load_weights(tmp_path / "src", ema=True)
    raw = {k: v.detach().clone() for k, v in src.model.state_dict().items()}
    assert any(not torch.equal(want[k], raw[k]) for k in want)  # EMA differs from the raw weights
    # the model the run starts from is the source's EMA, from a run dir or from a checkpoint dir
    for source in (tmp_path / "src", latest_checkpoint(tmp_path / "src")):
        probe = _train(jpeg_root, tmp_path / f"probe_{source.name}", "train.steps=1", "train.lr=1e-12", "train.min_lr=0",
                       init_from=source)
        got = probe.model.state_dict()
        assert all(torch.allclose(got[k].float(), want[k].float(), atol=1e-9) for k in want)
    # fine-tuning from it continues to lower the loss below a fresh run's after the same steps
    tuned = _train(jpeg_root, tmp_path / "tuned", "train.steps=4", "train.lr=3e-3", init_from=tmp_path / "src")
    fresh = _train(jpeg_root, tmp_path / "fresh", "train.steps=4", "train.lr=3e-3")
    assert tuned.metrics["loss"] < fresh.metrics["loss"]


def test_init_from_bad_sources_fail_clearly(jpeg_root, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint there"):
        _train(jpeg_root, tmp_path / "a", "train.steps=1", init_from=tmp_path / "missing")
    _train(jpeg_root, tmp_path / "src", "train.steps=1")
    with pytest.raises(ConfigError, match="written by task 'frame_ae', not 'other'"):
        _train(jpeg_root, tmp_path / "b", "train.steps=1", init_from=tmp_path / "src", task_name="other")
    with pytest.raises(DataError, match="do not fit this model"):
        _train(jpeg_root, tmp_path / "c", "train.steps=1", "model.latent_channels=8", init_from=tmp_path / "src")
