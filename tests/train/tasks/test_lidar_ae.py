"""lidar-ae task: the beam model (estimate and returned/dropped cells), ray sampling, samples of the
hand-made root, KL warm-up, loss falls on one sweep, evaluation (Chamfer), previews, config checks,
the real training loop (loadable afterwards, exact resume). The latent calibration: test_calibration.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genesis_drive.config import apply_overrides
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.data.chamfer import chamfer_distance, filter_points
from genesis_drive.models.lidar.ae import LidarAE
from genesis_drive.models.lidar.beams import BeamModel, beam_cells, estimate_beams
from genesis_drive.models.lidar.voxel import BEVGrid, voxelize
from genesis_drive.train.checkpoint import load_run_model, load_weights
from genesis_drive.train.distributed import DistEnv
from genesis_drive.train.loop import train
from genesis_drive.train.tasks import TASKS
from genesis_drive.train.tasks.lidar_ae import (
    DROPPED,
    LIDAR_AE_PRESETS,
    LIDAR_AE_TASK,
    OUTSIDE,
    RETURNED,
    LidarAERunConfig,
    beam_labels,
    evaluate_sweeps,
    kl_weight_at,
    render_sweep,
    sample_rays,
    sweep_of,
)
from genesis_drive.train.tasks.clip_task import spread

from .overfit import overfit_losses

#: a small AE over the hand-made sweeps (uniform points in a +-20 m cube, rings 0..31)
SMALL = [
    "model.grid.x_range=[-24, 24]", "model.grid.y_range=[-24, 24]", "model.grid.z_range=[-24, 24]",
    "model.grid.resolution=1.5", "model.grid.height_bins=8",
    "model.widths=[8, 16]", "model.latent_channels=4", "model.hidden=8", "model.drop_channels=4", "model.drop_hidden=8",
    "model.n_proposal=8", "model.n_fine=[8]", "model.near=0.5",
    "rays.per_sweep=256", "rays.azimuth_bins=64", "val_scenes=0", "train.precision=fp32", "train.device=cpu",
]  # fmt: skip


def small_config(*extra: str) -> LidarAERunConfig:
    return apply_overrides(LIDAR_AE_PRESETS["tiny"](), [*SMALL, *extra])


def env() -> DistEnv:
    return DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


# ----------------------------------------------------------------------------- beam model


def synthetic_sweep(elev_deg: np.ndarray, bins: int, offset_deg: float, seed: int = 0) -> torch.Tensor:
    """Points of every (ring, bin) beam but a random 20 %, at ranges 3..50 m, azimuth jitter +-0.1 bin."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, el in enumerate(np.deg2rad(elev_deg)):
        for a in range(bins):
            if rng.random() < 0.2:
                continue
            az = np.deg2rad(offset_deg) + 2 * np.pi * (a + rng.uniform(-0.1, 0.1)) / bins
            r = rng.uniform(3, 50)
            rows.append([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el), 7.0, k])
    return torch.tensor(rows, dtype=torch.float32)


def test_beam_estimate_recovers_the_ring_elevations_and_azimuth_bins():
    elev = np.linspace(10.67, -30.67, 32)
    sweeps = [synthetic_sweep(elev, 360, 0.3, seed=s) for s in (0, 1)]
    beams = estimate_beams(sweeps)
    assert beams.rings == 32 and beams.azimuth_bins == 360
    np.testing.assert_allclose(np.rad2deg(beams.elevations), elev, atol=1e-4)  # float32 points
    assert math.degrees(beams.azimuth_offset) == pytest.approx(0.3, abs=0.02)
    assert estimate_beams(sweeps, azimuth_bins=720).azimuth_bins == 720
    # every point lands in its own beam: 80 % of the cells returned, none shared
    cells = beam_cells(beams, sweeps[0])
    assert int(cells.returned.sum()) == len(sweeps[0])
    d = beams.directions().reshape(32, 360, 3)
    assert d[3, 0, 2].item() == pytest.approx(math.sin(math.radians(elev[3])), abs=1e-5)
    assert math.degrees(math.atan2(d[0, 10, 1], d[0, 10, 0])) == pytest.approx(10.3, abs=0.02)
    with pytest.raises(ValueError, match="ring 1 of 0..2 has no point"):
        estimate_beams([torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 2]])])
    with pytest.raises(ValueError, match="ring column"):
        estimate_beams([torch.tensor([[1.0, 0, 0, 0, 0.5]])])


def test_beam_cells_label_a_hand_made_point_set():
    beams = BeamModel(elevations=(0.0, -0.2), azimuth_bins=4, azimuth_offset=0.0)  # bins centred on +x, +y, -x, -y
    c, s = math.cos(-0.2), math.sin(-0.2)
    pts = torch.tensor([
        [5.0, 0.0, 0.0, 1, 0],                                        # ring 0, bin 0 (+x), 5 m
        [3 * math.cos(0.1), 3 * math.sin(0.1), 0.0, 1, 0],            # same cell, nearer: wins
        [-4 * math.cos(0.01), 4 * math.sin(0.01), 0.0, 1, 0],         # ring 0, bin 2 (-x), 4 m
        [0.0, 10 * c, 10 * s, 1, 1],                                  # ring 1, bin 1 (+y), 10 m
        [0.0, -6.0, 0.0, 1, 5],                                       # ring 5: not a ring of the model
        [0.0, 0.0, 0.0, 1, 0],                                        # at the sensor: ignored
    ])  # fmt: skip
    cells = beam_cells(beams, pts)
    assert cells.returned.tolist() == [True, False, True, False, False, True, False, False]
    torch.testing.assert_close(cells.depth, torch.tensor([3.0, 0, 4.0, 0, 0, 10.0, 0, 0]))
    torch.testing.assert_close(cells.point_dirs[0], torch.tensor([math.cos(0.1), math.sin(0.1), 0.0]))
    torch.testing.assert_close(cells.point_dirs[5], torch.tensor([0.0, c, s]))
    torch.testing.assert_close(cells.point_dirs[1], torch.tensor([0.0, 1.0, 0.0]), atol=1e-7, rtol=0)  # dropped: the beam
    torch.testing.assert_close(cells.point_dirs[7], torch.tensor([0.0, -c, s]), atol=1e-7, rtol=0)
    # labels: the 4 m return lies outside a +-3.5 m grid, the 10 m one too; near = 3.5 m drops the 3 m one
    grid = BEVGrid(x_range=(-3.5, 3.5), y_range=(-12.0, 12.0), z_range=(-4.0, 4.0), resolution=0.5, height_bins=4)
    lab = beam_labels(beams, grid, 1.0, pts)["ray_label"]
    assert lab.tolist() == [RETURNED, DROPPED, OUTSIDE, DROPPED, DROPPED, RETURNED, DROPPED, DROPPED]
    assert beam_labels(beams, grid, 3.5, pts)["ray_label"][0].item() == OUTSIDE


def test_sample_rays_balances_returned_and_dropped():
    label = torch.tensor([RETURNED] * 10 + [DROPPED] * 30 + [OUTSIDE] * 5, dtype=torch.int8)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    picks = sample_rays(label, 16, 0.5, g())
    assert len(picks) == 16 and len(set(picks.tolist())) == 16
    assert (label[picks] == RETURNED).sum() == 8 and (label[picks] == DROPPED).sum() == 8
    assert torch.equal(picks, sample_rays(label, 16, 0.5, g()))  # seeded
    assert not torch.equal(picks, sample_rays(label, 16, 0.5, torch.Generator().manual_seed(4)))
    short = sample_rays(label, 30, 0.5, g())  # 15 returned wanted, 10 exist: dropped make up the rest
    assert (label[short] == RETURNED).sum() == 10 and (label[short] == DROPPED).sum() == 20 and len(set(short.tolist())) == 30
    many = sample_rays(label, 50, 0.5, g())  # 40 usable beams: all of them, then 10 repeats; never OUTSIDE
    assert len(many) == 50 and set(many.tolist()) == set(range(40))
    with pytest.raises(ValueError, match="no usable beam"):
        sample_rays(torch.full((4,), OUTSIDE, dtype=torch.int8), 8, 0.5, g())


# ----------------------------------------------------------------------------- samples and loss


def test_samples_are_the_voxelised_sweep_and_its_beams(root):
    cfg = small_config()
    task = LIDAR_AE_TASK.build(cfg, root)
    ds = task.train_dataset()
    assert len(ds) == 4  # the 4 keyframe sweeps of the hand-made scene
    clip = task.clip_index().load(1)
    pts = sweep_of(clip)
    item = ds[1]
    assert torch.equal(item["occupancy"], voxelize(cfg.model.grid, pts)[0].to(torch.uint8))
    beams = task.beams()
    assert beams.rings == 32 and beams.azimuth_bins == 64 and item["ray_label"].shape == (32 * 64,)
    # brute force: the nearest point of every (ring, bin) cell
    az = torch.atan2(pts[:, 1], pts[:, 0]).double()
    cell = pts[:, 4].long() * 64 + beams.azimuth_bin(az)
    rng = pts[:, :3].norm(dim=1)
    for k in torch.unique(cell).tolist():
        j = int(torch.argmin(torch.where(cell == k, rng, torch.inf)))
        assert item["ray_label"][k].item() in (RETURNED, OUTSIDE)
        assert item["ray_depth"][k].item() == pytest.approx(rng[j].item(), rel=1e-6)
        torch.testing.assert_close(item["ray_dirs"][k] * item["ray_depth"][k], pts[j, :3], atol=1e-4, rtol=0)
    free = torch.ones(32 * 64, dtype=torch.bool)
    free[cell] = False
    assert (item["ray_label"][free] == DROPPED).all() and (item["ray_label"] == RETURNED).sum() > 100
    batch = task.collate([ds[0], ds[1]])
    assert batch["ray_dirs"].shape == (2, 32 * 64, 3) and batch["occupancy"].shape == (2, 8, 32, 32)


def test_kl_warm_up_and_loss_terms(root):
    cfg = small_config("loss.kl=0.001", "kl_warmup_steps=100", "rays.returned_fraction=0.5")
    assert [kl_weight_at(cfg, s) for s in (0, 50, 100, 400)] == pytest.approx([0.0, 5e-4, 1e-3, 1e-3])
    task = LIDAR_AE_TASK.build(cfg, root)
    torch.manual_seed(0)
    model = task.build_model()
    batch = task.collate([task.train_dataset()[0]])
    task.on_step(50)
    out = task.loss(model, batch)
    assert out["kl_weight"].item() == pytest.approx(5e-4)
    w = cfg.loss
    parts = (w.depth * out["depth_l1"] + w.occupancy * out["occupancy_bce"] + 5e-4 * out["kl"] + w.drop * out["drop_bce"]
             + w.distortion * out["distortion"])  # fmt: skip
    assert out["loss"].item() == pytest.approx(parts.item(), rel=1e-5)
    # the rays are a function of (seed, step, micro-batch): the same step draws the same rays again
    task.on_step(7)
    a = task.rays_of(batch, task._generator(torch.device("cpu")))
    task.on_step(7)
    b = task.rays_of(batch, task._generator(torch.device("cpu")))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    dirs, depth, returned = a
    assert dirs.shape == (1, 256, 3) and returned.sum() == 128 and (depth[returned] > 0).all()
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(1, 256))


def test_loss_falls_when_overfitting_one_sweep(root):
    task = LIDAR_AE_TASK.build(small_config("kl_warmup_steps=0", "sample_posterior=false", "jitter=false"), root)
    batch = task.collate([task.train_dataset()[0]])
    torch.manual_seed(0)
    losses = overfit_losses(task, task.build_model(), batch, 60, 3e-3)
    # recorded: 17.0 at step 0, 4.2 after 60 steps (seed 0, torch CPU, one thread); the bounds leave a margin
    assert losses[0] > 12 and losses[-1] < 6.5, losses[::10]


# ----------------------------------------------------------------------------- evaluation, preview


def test_evaluate_gives_the_chamfer_of_the_rendered_beams(root):
    cfg = small_config()
    task = LIDAR_AE_TASK.build(cfg, root)
    torch.manual_seed(0)
    model = task.build_model().eval()
    index = task.clip_index()
    transform = task.make_transform(index.reader)
    metrics = evaluate_sweeps(model, index, [2], transform, env(), chunk=500)
    assert math.isfinite(metrics["chamfer"]) and metrics["chamfer"] > 0 and metrics["empty_predictions"] == 0
    assert 0 <= metrics["drop_acc"] <= 1 and metrics["depth_l1"] > 0 and metrics["latent_std"] > 0
    # by hand: beams kept where drop probability <= 0.5, points o + D d, the region cut, reused Chamfer
    s = transform(index.load(2))
    depth, p_drop, valid, dirs, _ = render_sweep(model, s["occupancy"][None], task.beams(), 10_000)
    keep = valid[0] & (p_drop[0] <= 0.5)
    region = {"x_range": (-24.0, 24.0), "y_range": (-24.0, 24.0), "z_range": (-5.0, 3.0), "ego_box": ((-0.8, 0.8), (-1.5, 2.5))}
    pred = filter_points((dirs * depth[0][:, None])[keep].double().numpy(), **region)
    gt = filter_points(sweep_of(index.load(2))[:, :3].double().numpy(), **region)
    assert metrics["chamfer"] == pytest.approx(chamfer_distance(pred, gt), rel=1e-6)
    assert metrics["points_ratio"] == pytest.approx(len(pred) / len(gt))
    ret = s["ray_label"] == RETURNED
    assert metrics["depth_l1"] == pytest.approx((depth[0] - s["ray_depth"]).abs()[ret].mean().item(), rel=1e-5)
    assert task.evaluate(model, env()) == {}  # val_scenes=0
    batch = task.collate([task.train_dataset()[0], task.train_dataset()[1]])
    bev = task.preview(model, batch)["bev"]
    assert bev.shape == (2 * 32 + 4, 2 * 32 + 4, 3) and bev.dtype == np.uint8
    real = torch.flip(batch["occupancy"][0].amax(0).T, dims=[0]).numpy() * 255
    assert np.array_equal(bev[:32, :32, 0], real)  # left: the input occupancy, forward up


def test_config_and_root_checks(root):
    for bad, field in (("rays.per_sweep=0", "rays.per_sweep"), ("rays.returned_fraction=1.5", "rays.returned_fraction"),
                       ("clips.num_frames=2", "clips.num_frames"), ("clips.lidar=none", "clips.lidar"),
                       ("kl_warmup_steps=-1", "kl_warmup_steps"), ("eval_sweeps=0", "eval_sweeps"),
                       ("rays.azimuth_bins=-2", "rays.azimuth_bins"), ("model.grid.resolution=1.7", "model.grid")):  # fmt: skip
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            small_config(bad)
    with pytest.raises(ConfigError, match="data root"):
        LIDAR_AE_TASK.build(small_config(), None)
    with pytest.raises(DataError, match="val_scenes"):
        LIDAR_AE_TASK.build(small_config("val_scenes=1"), root).train_dataset()
    assert TASKS["lidar-ae"] is LIDAR_AE_TASK and set(LIDAR_AE_PRESETS) == {"tiny", "paper"}
    paper = LIDAR_AE_PRESETS["paper"]()
    assert paper.model.grid.x_range == (-51.2, 51.2) and paper.train.precision == "fp32" and paper.clips.lidar == "all"
    assert spread(384, 8)[0] == 0 and spread(384, 8)[-1] == 383


# ----------------------------------------------------------------------------- the training loop


@pytest.fixture(scope="module")
def three_steps(root, tmp_path_factory):
    """3 steps of the small AE through the real training loop: ``(cfg, result, run directory)``."""
    cfg = small_config("train.steps=3", "train.batch_size=2", "train.log_every=1", "train.ckpt_every=3",
                       "train.preview_every=3", "train.preview_samples=2", "train.eval_every=0", "kl_warmup_steps=4")
    run = tmp_path_factory.mktemp("lidar_ae") / "run"
    torch.set_num_threads(1)  # module-scoped: before the per-test thread fixture
    return cfg, train(LIDAR_AE_TASK.build(cfg, root), cfg, run, task_name="lidar-ae"), run


def test_a_few_steps_through_the_training_loop_then_load(three_steps):
    cfg, res, run = three_steps
    assert res.step == 3 and math.isfinite(res.metrics["loss"]) and res.metrics["kl_weight"] == pytest.approx(5e-5)
    assert [p.suffix for p in (run / "previews").iterdir()] == [".png"]
    model, loaded_cfg, info = load_run_model(run, LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")
    assert isinstance(model, LidarAE) and loaded_cfg == cfg and info["step"] == 3
    assert all(torch.equal(model.state_dict()[k], v) for k, v in res.ema.state_dict().items())


def test_resume_matches_an_uninterrupted_run(root, tmp_path):
    fast = ["train.batch_size=2", "train.ckpt_every=2", "train.preview_every=0", "train.log_every=1", "train.warmup_steps=0",
            "train.schedule=constant", "kl_warmup_steps=3"]  # fmt: skip
    two, four = small_config(*fast, "train.steps=2"), small_config(*fast, "train.steps=4")
    train(LIDAR_AE_TASK.build(two, root), two, tmp_path / "a", task_name="lidar-ae")
    resumed = train(LIDAR_AE_TASK.build(four, root), four, tmp_path / "a", task_name="lidar-ae", resume=True)
    straight = train(LIDAR_AE_TASK.build(four, root), four, tmp_path / "b", task_name="lidar-ae")
    assert resumed.step == straight.step == 4
    a, b = load_weights(tmp_path / "a", ema=False), load_weights(tmp_path / "b", ema=False)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = load_weights(tmp_path / "a" / "checkpoints" / "step_00000002", ema=False)
    assert not all(torch.equal(a[k], first[k]) for k in a)
