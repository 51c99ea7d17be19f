"""lidar-dit task: forecast samples of the hand-made root (the reference moved by the ego motion, the
layout in the sensor grid, the lift inputs), encoding and the latent cache, the loss falls on one
batch, the real training loop (loadable afterwards) and config checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.data.clips import ClipDataset, ClipIndex, collate_clips
from genesis_drive.data.latent_cache import LatentCache
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.errors import ConfigError
from genesis_drive.layout.bev import bev_channel_names
from genesis_drive.models.lidar import dit as dit_presets
from genesis_drive.models.lidar.ae import LidarAE
from genesis_drive.models.lidar.dit import LidarDiT
from genesis_drive.models.lidar.voxel import voxel_indices, voxelize
from genesis_drive.train import checkpoint as ckpt
from genesis_drive.train.checkpoint import load_run_model
from genesis_drive.train.loop import train
from genesis_drive.train.tasks import TASKS
from genesis_drive.train.tasks.lidar_dit import LIDAR_DIT_PRESETS, LIDAR_DIT_TASK, LidarDiTRunConfig, move_points

from ...generate.tiny_checkpoints import save_vae
from .overfit import overfit_losses
from .test_lidar_ae import small_config

HORIZON = 2  # the hand-made root has 4 keyframes: 2 clips of 3


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """A random small lidar-ae checkpoint (grid +-24 m at 1.5 m, 2x down, 4 latent channels) and a
    random tiny camera VAE (4 latent channels, 64 x 32 images)."""
    base = tmp_path_factory.mktemp("nets")
    cfg = small_config()
    torch.manual_seed(0)
    ckpt.save_checkpoint(base / "ae", 1, model=LidarAE(cfg.model).state_dict(), optimizer={}, ema=None,
                         state={"task": "lidar-ae", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    return base / "ae", save_vae(base / "vae")


def config(nets, **changes) -> LidarDiTRunConfig:
    ae, vae = nets
    base = LIDAR_DIT_PRESETS["tiny"]()
    model = dataclasses.replace(dit_presets.test(4, len(bev_channel_names(base.bev_config())), 4), layout_stride=2)
    cfg = dataclasses.replace(
        base, model=model, ae=str(ae), vae=str(vae), horizon=HORIZON, image_size=(64, 32), max_boxes=4, val_scenes=0,
        sample_steps=2, clips=dataclasses.replace(base.clips, num_frames=HORIZON + 1),
        train=dataclasses.replace(base.train, steps=3, batch_size=2, log_every=1, ckpt_every=3, preview_every=3,
                                  preview_samples=1, warmup_steps=0, schedule="constant", ema_decay=0.9),
    )  # fmt: skip
    return dataclasses.replace(cfg, **changes)


def test_samples_move_the_reference_and_put_the_layout_in_the_sensor_grid(root, nets):
    cfg = config(nets)
    task = LIDAR_DIT_TASK.build(cfg, root)
    index = task.clip_index()
    assert len(index) == 2  # keyframes 0 and 1 have 2 keyframes after them
    clip = index.load(1)
    s = task.make_transform(index.reader)(clip)
    grid = task.grid
    assert s["occupancy"].shape == (HORIZON, grid.height_bins, grid.rows, grid.cols) and s["occupancy"].dtype == torch.uint8
    # the reference moved by the reader's own poses (an independent path: Pose objects)
    reader = NuScenesReader(root)
    sweeps = [reader.lidar_sweep(reader.nusc.get("sample", t)["data"]["LIDAR_TOP"]) for t in clip.sample_tokens]
    to_global = [sw.ego_to_global.matrix() @ sw.sensor_to_ego.matrix() for sw in sweeps]
    for k in range(1, HORIZON + 1):
        moved = move_points(sweeps[0].points, np.linalg.inv(to_global[k]) @ to_global[0])
        want = voxelize(grid, [torch.from_numpy(moved)])[0]
        assert torch.equal(s["reference_occupancy"][k - 1].bool(), want.bool())
        assert torch.equal(s["occupancy"][k - 1].bool(), voxelize(grid, [torch.from_numpy(sweeps[k].points)])[0].bool())
    # the hand-made ego drives +2 m/s in x, the car +5 m/s: the moved reference differs from the future sweep
    assert not torch.equal(s["reference_occupancy"][0], s["occupancy"][0])
    # the car's box lands in its sensor-grid cell in the layout channel box_car, at each future keyframe
    names = bev_channel_names(cfg.bev_config())
    car = names.index("box_car")
    for k in range(1, HORIZON + 1):
        box = [b for b in clip.boxes[k] if b.category == "vehicle.car"][0]
        centre_sensor = np.linalg.inv(np.asarray(clip.lidar_to_ego)) @ np.r_[box.center, 1.0]
        (cell,), inside = voxel_indices(grid, torch.tensor(centre_sensor[None, :3], dtype=torch.float32))
        assert inside.all()
        i, j = int(cell[1]), int(cell[2])
        assert s["layout"][k - 1, car, i, j] > 0.5
        assert s["layout"][k - 1, car].sum() < 12  # a 1.9 x 4.5 m box on 1.5 m cells, not a smear
    # the lift inputs: frame-0 images, cameras, each future sensor frame in the reference ego frame
    assert s["images"].shape == (6, 3, 32, 64) and s["grid_to_ego"].shape == (HORIZON, 4, 4)
    e0 = clip.ego_to_global[0]
    want = np.linalg.inv(e0) @ to_global[2]
    np.testing.assert_allclose(s["grid_to_ego"][1].numpy(), want, atol=1e-4)
    assert s["ego"].shape == (HORIZON, 4) and s["ego"][1, 0] == pytest.approx(2.0 * 1.0, abs=1e-3)  # 1 s at 2 m/s


def test_samples_read_only_the_reference_images(root, nets):
    """The task's clips carry the reference keyframe's images only, and give the sample a clip with
    every keyframe's images gives."""
    task = LIDAR_DIT_TASK.build(config(nets), root)
    index = task.clip_index()
    full = ClipIndex(index.reader, index.spec, scenes=list(dict.fromkeys(r.scene_token for r in index.refs)))
    transform = task.make_transform(index.reader)
    for i in range(len(index)):
        clip, whole = index.load(i), full.load(i)
        assert clip.images.shape[0] == 1 and whole.images.shape[0] == HORIZON + 1
        a, b = transform(clip), transform(whole)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), i


def test_encoding_and_the_latent_cache(root, nets, tmp_path):
    cfg = config(nets, latent_cache=str(tmp_path / "cache"))
    task = LIDAR_DIT_TASK.build(cfg, root)
    ds = task.train_dataset()
    item = ds[0]
    assert set(item) >= {"latents", "reference", "camera", "layout", "box_corners", "ego", "clip_id"}
    assert item["latents"].shape == (HORIZON, 4, 16, 16) and item["camera"].shape == (HORIZON, 4, 16, 16)
    assert "occupancy" not in item and "images" not in item
    assert item["camera"].abs().sum() > 0  # the cameras see the grid around the ego
    # the cached item equals encoding the raw sample
    raw = ClipDataset(task.clip_index(), task.make_transform(None))[0]
    enc = task.encoder.encode({k: v[None] for k, v in raw.items() if isinstance(v, torch.Tensor)})
    for key in ("latents", "reference", "camera", "layout"):
        torch.testing.assert_close(item[key], enc[key][0], rtol=0, atol=0)
    again = ds[0]  # read back from the cache file
    assert torch.equal(again["latents"], item["latents"])
    cache = LatentCache(cfg.latent_cache, task.encoder.version, "x")
    with pytest.raises(Exception, match="spec"):
        cache.read(item["clip_id"])  # another spec fingerprint is refused


def test_loss_falls_when_overfitting_one_batch(root, nets):
    cfg = config(nets)
    task = LIDAR_DIT_TASK.build(cfg, root)
    batch = collate_clips([ClipDataset(task.clip_index(), task.make_transform(None))[i] for i in range(2)])
    batch = task.encoder.encode(batch)
    torch.manual_seed(0)
    model = LidarDiT(cfg.model)

    def fixed_loss() -> float:  # the same times, noise and condition drops before and after
        torch.manual_seed(123)
        with torch.no_grad():
            return float(np.mean([task.loss(model, batch)["loss"].item() for _ in range(8)]))

    before = fixed_loss()
    torch.manual_seed(1)
    losses = overfit_losses(task, model, batch, steps=60, lr=3e-3)
    assert all(math.isfinite(x) for x in losses)
    assert fixed_loss() < 0.6 * before, (before, losses[-5:])  # measured 0.52x


def test_three_steps_through_the_loop_then_load(root, nets, tmp_path):
    cfg = config(nets)
    run = tmp_path / "run"
    res = train(LIDAR_DIT_TASK.build(cfg, root), cfg, run, task_name="lidar-dit")
    assert res.step == 3 and math.isfinite(res.metrics["loss"])
    assert [p.name for p in (run / "previews").iterdir()] == ["step_00000003_forecast.png"]
    model, loaded, info = load_run_model(run, LidarDiTRunConfig, lambda c: LidarDiT(c.model), task="lidar-dit")
    assert loaded == cfg and info["step"] == 3 and isinstance(model, LidarDiT)
    state = ckpt.read_state(ckpt.latest_checkpoint(run))
    assert set(state["frozen"]) == {"ae", "vae"}  # the frozen networks' versions, for generate's checks
    assert not any(k.startswith(("ae.", "vae.")) for k in model.state_dict())


def test_config_checks(root, nets):
    with pytest.raises(ConfigError, match="clips must be 3 keyframes"):
        config(nets, clips=dataclasses.replace(config(nets).clips, num_frames=5))
    with pytest.raises(ConfigError, match="camera_channels"):
        config(nets, vae="")
    with pytest.raises(ConfigError, match="layout_channels"):
        config(nets, map_layers=("drivable_area",))
    bad = config(nets, model=dataclasses.replace(config(nets).model, latent_channels=8))
    with pytest.raises(ConfigError, match="latent channels"):
        LIDAR_DIT_TASK.build(bad, root)
    assert TASKS["lidar-dit"] is LIDAR_DIT_TASK and set(LIDAR_DIT_PRESETS) == {"tiny", "paper"}
    tiny = LIDAR_DIT_PRESETS["tiny"]()
    assert tiny.horizon == 6 and tiny.clips.num_frames == 7 and tiny.model.layout_stride == 4


def test_resume_matches_an_uninterrupted_run(root, nets, tmp_path):
    """The caption encoder gets no gradient without captions (no optimizer state for it): resuming
    must still work, and give the uninterrupted run's weights."""
    two, four = (config(nets, train=dataclasses.replace(config(nets).train, steps=n, ckpt_every=2, preview_every=0)) for n in (2, 4))
    train(LIDAR_DIT_TASK.build(two, root), two, tmp_path / "a", task_name="lidar-dit")
    resumed = train(LIDAR_DIT_TASK.build(four, root), four, tmp_path / "a", task_name="lidar-dit", resume=True)
    straight = train(LIDAR_DIT_TASK.build(four, root), four, tmp_path / "b", task_name="lidar-dit")
    assert resumed.step == straight.step == 4
    a, b = ckpt.load_weights(tmp_path / "a", ema=False), ckpt.load_weights(tmp_path / "b", ema=False)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
