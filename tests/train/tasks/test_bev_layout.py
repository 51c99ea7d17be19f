"""bev_layout task: targets of the hand-made scene, one batch overfits, previews, config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genesis_drive.config import apply_overrides
from genesis_drive.errors import ConfigError
from genesis_drive.eval.layout_bev import vehicle_centers
from genesis_drive.models.evaluators.bev_layout import BEV_CLASSES
from genesis_drive.train.checkpoint import load_weights
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.bev_layout import BEV_LAYOUT_PRESETS, BEV_LAYOUT_TASK, bev_targets

from .overfit import overfit_losses

#: the tiny preset's architecture at a fraction of its cost (seconds per test)
SMALL = ["model.image_size=64,36", "model.widths=8,16,32", "model.feature_dim=8", "model.bev_width=16", "model.bev_range=16",
         "model.bev_resolution=1"]  # fmt: skip


def test_targets_of_the_handmade_scene(root):
    cfg = BEV_LAYOUT_PRESETS["tiny"]()
    clip = BEV_LAYOUT_TASK.build(cfg, root).clip_index().load(0)
    tgt = bev_targets(clip, 0, cfg)
    grid = cfg.model.grid
    cell = grid.resolution**2  # m^2 of one cell
    assert tgt.shape == (len(BEV_CLASSES), *grid.shape) and grid.shape == (96, 96)
    centers = grid.cell_centers()
    x, y = centers[..., 0], centers[..., 1]
    drivable = tgt[BEV_CLASSES.index("drivable_area")]
    # road spans global x 80..200, y 44..56, the ego at x = 100 drives along y = 50: ego x >= -20, y in [-6, 6]
    assert np.all(drivable[(np.abs(y) < 5.5) & (x > -19.5)] == 1.0) and np.all(drivable[(np.abs(y) > 6.5) | (x < -20.5)] == 0.0)
    divider = tgt[BEV_CLASSES.index("divider")]
    assert np.all(divider[(np.abs(y) < 0.4) & (x > -19.5)] > 0.4) and np.all(divider[(np.abs(y) > 1.5) | (x < -21.5)] == 0.0)
    # the car at ego (10, 3.5), 1.9 x 4.5 m
    car = tgt[BEV_CLASSES.index("vehicle")]
    r, c = np.unravel_index(np.argmax(car), car.shape)
    assert abs(centers[r, c, 0] - 10) < 2.5 and abs(centers[r, c, 1] - 3.5) < 1.5
    assert car.sum() * cell == pytest.approx(1.9 * 4.5, rel=0.15)
    # the pedestrian (0.6 x 0.7 m) at ego (5, -4) is enlarged to 1 x 1 m (the raster's fillPoly also
    # covers boundary sub-cells: up to (1 + res / 4)^2 m^2 at supersample 4)
    ped = tgt[BEV_CLASSES.index("pedestrian")]
    assert 1.0 <= ped.sum() * cell <= (1 + grid.resolution / 4) ** 2 + 1e-6 and ped.max() >= 0.5
    r, c = np.unravel_index(np.argmax(ped), ped.shape)
    assert abs(centers[r, c, 0] - 5) <= 1.0 and abs(centers[r, c, 1] + 4) <= 1.0
    np.testing.assert_allclose(vehicle_centers(clip, 0, grid), [[10.0, 3.5]], atol=1e-6)


def test_overfit_one_batch_and_preview(root):
    torch.manual_seed(0)
    cfg = apply_overrides(BEV_LAYOUT_PRESETS["tiny"](), SMALL)
    task = BEV_LAYOUT_TASK.build(cfg, root)
    ds = task.train_dataset()
    batch = task.collate([ds[0], ds[1]])
    model = task.build_model()
    gh, gw = cfg.model.grid.shape
    assert model(batch["images"].float() / 127.5 - 1, batch["intrinsics"], batch["cam_to_ego"]).shape == (2, 5, gh, gw)
    losses = overfit_losses(task, model, batch, 20, 3e-3)
    assert losses[-1] < 0.5 * losses[0]
    prev = task.preview(model, batch)["bev_target_top_pred_bottom"]
    assert prev.shape == (2 * 2 * gh, 5 * gw, 3) and prev.dtype == np.uint8
    with pytest.raises(ValueError, match="BevLayoutNet expects"):
        model(torch.zeros(1, 6, 3, 10, 10), batch["intrinsics"][:1], batch["cam_to_ego"][:1])


def test_config_checks():
    cfg = BEV_LAYOUT_PRESETS["tiny"]()
    assert apply_overrides(cfg, ["clips.window_stride=3"]).clips.window_stride == 3
    with pytest.raises(ConfigError, match="single frames"):
        apply_overrides(cfg, ["clips.num_frames=2"])
    with pytest.raises(ConfigError, match="pos_weight must be 5 positive"):
        apply_overrides(cfg, ["pos_weight=1,2"])
    with pytest.raises(ConfigError, match="needs a data root"):
        BEV_LAYOUT_TASK.build(cfg, None)


def test_trains_and_resumes_through_the_loop(root, tmp_path):
    """2 steps + resume to 4 gives the weights of 4 uninterrupted steps (the clip task under the real loop)."""
    base = apply_overrides(BEV_LAYOUT_PRESETS["tiny"](), SMALL)
    fast = ["train.device=cpu", "train.precision=fp32", "train.batch_size=2", "train.ckpt_every=2", "train.preview_every=0",
            "train.log_every=1", "train.warmup_steps=0", "train.schedule=constant"]  # fmt: skip (a cosine depends on train.steps)
    two, four = apply_overrides(base, [*fast, "train.steps=2"]), apply_overrides(base, [*fast, "train.steps=4"])
    train(BEV_LAYOUT_TASK.build(two, root), two, tmp_path / "a", task_name="bev_layout")
    resumed = train(BEV_LAYOUT_TASK.build(four, root), four, tmp_path / "a", task_name="bev_layout", resume=True)
    straight = train(BEV_LAYOUT_TASK.build(four, root), four, tmp_path / "b", task_name="bev_layout")
    assert resumed.step == straight.step == 4
    a, b = load_weights(tmp_path / "a", ema=False), load_weights(tmp_path / "b", ema=False)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["bev_out.1.weight"], load_weights(tmp_path / "a" / "checkpoints" / "step_00000002", ema=False)["bev_out.1.weight"])


class _Constant(torch.nn.Module):
    """Zero logits of the BEV shape, whatever the views."""

    def __init__(self, shape: tuple[int, int]):
        super().__init__()
        self.shape = shape

    def forward(self, images, intrinsics, cam_to_ego):
        return torch.zeros(images.shape[0], len(BEV_CLASSES), *self.shape)


def test_pos_weight_scales_the_positive_cells_of_its_class(root):
    """At zero logits every cell costs log 2; vehicle positives cost pos_weight x log 2."""
    cfg = apply_overrides(BEV_LAYOUT_PRESETS["tiny"](), ["pos_weight=1,1,1,3,1", "dice_weight=0"])
    task = BEV_LAYOUT_TASK.build(cfg, root)
    gh, gw = cfg.model.grid.shape
    target = torch.zeros(2, len(BEV_CLASSES), gh, gw)
    target[:, BEV_CLASSES.index("vehicle")] = 1.0  # every vehicle cell positive
    batch = {"images": torch.zeros(2, 6, 3, 4, 4, dtype=torch.uint8), "intrinsics": None, "cam_to_ego": None, "target": target}
    out = task.loss(_Constant((gh, gw)), batch)
    assert float(out["loss_bce"]) == pytest.approx(np.log(2) * (4 + 3) / 5, rel=1e-6)
    assert float(out["loss"]) == pytest.approx(float(out["loss_bce"]))
