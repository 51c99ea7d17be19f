"""Latent calibration (genesis_drive.train.calibration) of small camera-vae and lidar-ae runs on the
hand-made root: unit-normalised latents, the run's EMA weights, the record in the state, the LiDAR
drop threshold, bad arguments, and the ``genesis-drive calibrate`` command (same bytes, exit codes)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from genesis_drive.cli import main as cli_main
from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.errors import ConfigError
from genesis_drive.models.camera.vae import VideoVAE
from genesis_drive.models.lidar.ae import LidarAE
from genesis_drive.models.lidar.voxel import voxelize
from genesis_drive.train.calibration import DROP_THRESHOLDS, calibrate_camera_vae, calibrate_lidar_ae
from genesis_drive.train.checkpoint import load_run_model
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.camera_vae import CAMERA_VAE_TASK, CameraVAEConfig, VideoSamples, clip_spec_of, to_videos
from genesis_drive.train.tasks.lidar_ae import LIDAR_AE_TASK, LidarAERunConfig, sweep_of

from .test_camera_vae import small_config as small_vae_config
from .test_lidar_ae import small_config as small_ae_config


@pytest.fixture(scope="module")
def vae_run(root, tmp_path_factory):
    """2 steps of the small camera VAE through the real training loop: ``(cfg, run directory)``."""
    cfg = small_vae_config("train.steps=2", "train.ckpt_every=2", "train.preview_every=0", "train.eval_every=0")
    run = tmp_path_factory.mktemp("camera_vae") / "run"
    torch.set_num_threads(1)  # module-scoped: before the per-test thread fixture
    train(CAMERA_VAE_TASK.build(cfg, root), cfg, run, task_name="camera-vae")
    return cfg, run


@pytest.fixture(scope="module")
def ae_run(root, tmp_path_factory):
    """3 steps of the small LiDAR AE through the real training loop: ``(cfg, run directory)``."""
    cfg = small_ae_config("train.steps=3", "train.batch_size=2", "train.ckpt_every=3", "train.preview_every=0",
                          "train.eval_every=0", "kl_warmup_steps=4")
    run = tmp_path_factory.mktemp("lidar_ae") / "run"
    torch.set_num_threads(1)
    train(LIDAR_AE_TASK.build(cfg, root), cfg, run, task_name="lidar-ae")
    return cfg, run


def test_camera_vae_calibration_gives_unit_normalised_latents(vae_run, root, tmp_path):
    """The calibrated checkpoint's normalised latents have mean 0 and std 1 on the clips it measured,
    its weights are the run's EMA weights, and the statistics are recorded in its state."""
    cfg, run = vae_run
    stats = calibrate_camera_vae(run, root, tmp_path / "calibrated", clips=8, progress=False)
    assert stats["clips"] == 3 and stats["std"] > 0  # every non-overlapping 5-frame clip of the 19-frame scene
    raw, _, _ = load_run_model(run, CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
    vae, vcfg, _ = load_run_model(tmp_path / "calibrated", CameraVAEConfig, lambda c: VideoVAE(c.model), task="camera-vae")
    assert vcfg.model.shift_factor == pytest.approx(stats["mean"]) and vcfg.model.scaling_factor == pytest.approx(1 / stats["std"])
    assert vcfg == replace(cfg, model=replace(cfg.model, shift_factor=vcfg.model.shift_factor, scaling_factor=vcfg.model.scaling_factor))
    for k, v in raw.state_dict().items():
        assert torch.equal(v, vae.state_dict()[k]), k
    index = ClipIndex(NuScenesReader(root), clip_spec_of(cfg, non_overlapping=True))
    videos = [to_videos(VideoSamples()(index.load(i))["video"][None]) for i in range(len(index))]
    with torch.no_grad():
        z = torch.cat([vae.encode(x).flatten() for x in videos])
    assert z.numel() == stats["count"]
    assert abs(z.mean().item()) < 1e-4 and z.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    state = json.loads((tmp_path / "calibrated" / "state.json").read_text())
    rec = state["latent_statistics"]
    assert rec["count"] == stats["count"] and rec["clips"] == 3 and rec["data_root"] == str(root) and state["task"] == "camera-vae"
    assert rec["source"].endswith("step_00000002")
    with pytest.raises(ConfigError, match="clips"):
        calibrate_camera_vae(run, root, tmp_path / "x", clips=0)
    # the command: the same bytes as the function
    argv = ["calibrate", "camera-vae", str(run), "--data", str(root), "--out", str(tmp_path / "cli"), "--clips", "8"]
    assert cli_main(argv) == 0
    for name in ("model.safetensors", "state.json"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "calibrated" / name).read_bytes(), name


def test_lidar_ae_calibration_gives_unit_normalised_latents_and_a_drop_threshold(ae_run, root, tmp_path, capsys):
    """The calibrated checkpoint holds the run's EMA weights with the measured shift / scale and the
    drop threshold of the lowest Chamfer, its normalised latents of the measured sweeps have mean 0
    and std 1, and the statistics are recorded in its state."""
    cfg, run = ae_run
    out = tmp_path / "calibrated"
    stats = calibrate_lidar_ae(run, root, out, sweeps=8, progress=False)
    assert stats["sweeps"] == 4 and stats["count"] == 4 * 4 * 16 * 16 and stats["std"] > 0  # every keyframe sweep
    raw, _, _ = load_run_model(run, LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")
    ae, acfg, info = load_run_model(out, LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")
    assert info["task"] == "lidar-ae" and info["step"] == 3
    assert acfg.model.shift_factor == pytest.approx(stats["mean"]) and acfg.model.scaling_factor == pytest.approx(1 / stats["std"])
    by = {float(k): v for k, v in stats["chamfer_by_threshold"].items()}
    assert sorted(by) == sorted(DROP_THRESHOLDS)
    assert stats["drop_threshold"] == min(by, key=by.get)
    assert acfg.model.drop_threshold == stats["drop_threshold"] and stats["tune_sweeps"] == 4
    assert acfg == replace(cfg, model=replace(cfg.model, shift_factor=acfg.model.shift_factor, scaling_factor=acfg.model.scaling_factor,
                                              drop_threshold=acfg.model.drop_threshold))
    assert ae.shift_factor == acfg.model.shift_factor and ae.scaling_factor == acfg.model.scaling_factor
    for k, v in raw.state_dict().items():
        assert torch.equal(v, ae.state_dict()[k]), k
    index = LIDAR_AE_TASK.build(cfg, root).clip_index()
    occ = voxelize(cfg.model.grid, [sweep_of(index.load(i)) for i in range(len(index))])
    with torch.no_grad():
        z_raw, z = raw.encode(occ), ae.encode(occ)
    assert abs(z_raw.mean().item()) > 1e-3 or abs(z_raw.std(unbiased=False).item() - 1) > 1e-2  # calibration changes them
    assert abs(z.mean().item()) < 1e-4 and z.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    state = json.loads((out / "state.json").read_text())
    rec = state["latent_statistics"]
    assert rec["count"] == stats["count"] and rec["sweeps"] == 4 and rec["data_root"] == str(root) and state["task"] == "lidar-ae"
    assert rec["source"].endswith("step_00000003")
    with pytest.raises(ConfigError, match="sweeps"):
        calibrate_lidar_ae(run, root, tmp_path / "x", sweeps=0)
    # the command: same bytes, exit code 0; 1 with the error and nothing written for a bad root
    assert cli_main(["calibrate", "lidar-ae", str(run), "--data", str(root), "--out", str(tmp_path / "cli"), "--sweeps", "8"]) == 0
    for name in ("model.safetensors", "state.json"):
        assert (tmp_path / "cli" / name).read_bytes() == (out / name).read_bytes(), name
    capsys.readouterr()
    assert cli_main(["calibrate", "lidar-ae", str(run), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "bad")]) == 1
    assert "genesis-drive calibrate: error:" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_lidar_ae_calibration_without_tuning_keeps_the_drop_threshold(ae_run, root, tmp_path):
    cfg, run = ae_run
    stats = calibrate_lidar_ae(run, root, tmp_path / "c", sweeps=2, tune_sweeps=0, progress=False)
    assert stats["sweeps"] == 2 and stats["count"] == 2 * 4 * 16 * 16 and "drop_threshold" not in stats
    _, acfg, _ = load_run_model(tmp_path / "c", LidarAERunConfig, lambda c: LidarAE(c.model), task="lidar-ae")
    assert acfg.model.drop_threshold == cfg.model.drop_threshold
    assert acfg.model.scaling_factor == pytest.approx(1 / stats["std"])
