"""depth task: sparse LiDAR targets of the hand-made scene, one batch overfits, previews, config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genesis_drive.config import apply_overrides
from genesis_drive.errors import ConfigError
from genesis_drive.train.tasks.depth import DEPTH_PRESETS, DEPTH_TASK

from .overfit import overfit_losses


def test_depth_task_targets_and_overfit(root):
    torch.manual_seed(0)
    cfg = DEPTH_PRESETS["tiny"]()
    task = DEPTH_TASK.build(cfg, root)
    ds = task.train_dataset()
    item = ds[0]
    assert item["images"].shape == (6, 3, 36, 64) and item["depth"].shape == (6, 18, 32)
    d = item["depth"]
    assert (d > 0).sum() > 20 and float(d[d > 0].min()) >= cfg.model.min_depth and float(d.max()) <= cfg.model.max_depth
    batch = task.collate([ds[0], ds[1]])
    model = task.build_model()
    losses = overfit_losses(task, model, batch, 25, 3e-3)
    assert losses[-1] < 0.5 * losses[0]
    assert task.preview(model, batch)["image_pred_lidar"].dtype == np.uint8


def test_config_checks():
    cfg = DEPTH_PRESETS["tiny"]()
    with pytest.raises(ConfigError, match="single keyframes"):
        apply_overrides(cfg, ["clips.rate=camera"])
    with pytest.raises(ConfigError, match="LIDAR_TOP"):
        DEPTH_TASK.build(cfg, None)
