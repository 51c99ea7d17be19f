"""The frame_ae task: its JPEG dataset, model shapes, config checks and CLI wiring."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from genesis_drive.config import apply_overrides
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.train import cli as train_cli
from genesis_drive.train.tasks import TASKS
from genesis_drive.train.tasks.frame_ae import FrameAE, FrameAEModelConfig, build, image_grid, tiny
from genesis_drive.train.tasks.frames import CameraFrames, find_camera_jpegs, split_files

from .conftest import fast_config


def _solid(path, rgb, size=(160, 90)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), rgb, dtype=np.uint8)).save(path, quality=95)


def test_dataset_reads_resizes_and_scales_to_minus_one_one(tmp_path):
    _solid(tmp_path / "samples/CAM_FRONT/a__CAM_FRONT__1.jpg", (255, 0, 128))
    _solid(tmp_path / "samples/CAM_BACK/a__CAM_BACK__1.jpg", (0, 255, 0))
    _solid(tmp_path / "sweeps/CAM_FRONT/a__CAM_FRONT__2.jpg", (9, 9, 9))  # not a key frame: ignored
    files = find_camera_jpegs(tmp_path, ("CAM_FRONT", "CAM_BACK"))
    assert [(p.parent.name, v) for p, v in files] == [("CAM_FRONT", 0), ("CAM_BACK", 1)]
    ds = CameraFrames(files, (32, 16))
    s0, s1 = ds[0], ds[1]
    assert s0["image"].shape == (3, 16, 32) and s0["image"].dtype == torch.float32 and s1["view"] == 1
    expect = torch.tensor([255, 0, 128]) / 127.5 - 1.0
    assert torch.allclose(s0["image"].mean((1, 2)), expect, atol=0.03)
    assert s1["image"][1].min() > 0.95 and s1["image"][0].max() < -0.95


def test_split_is_deterministic_and_disjoint(jpeg_root):
    files = find_camera_jpegs(jpeg_root, ("CAM_FRONT", "CAM_BACK"))
    train, val = split_files(files, 0.25, "train"), split_files(files, 0.25, "val")
    assert len(files) == 20 and len(val) == 5 and len(train) == 15
    assert set(train).isdisjoint(val) and sorted(train + val) == sorted(files)
    assert split_files(files, 0.0, "val") == []


def test_missing_and_unreadable_images_are_named(tmp_path):
    with pytest.raises(DataError, match="no samples/ directory"):
        find_camera_jpegs(tmp_path, ("CAM_FRONT",))
    (tmp_path / "samples/CAM_FRONT").mkdir(parents=True)
    with pytest.raises(DataError, match="no JPEG images"):
        find_camera_jpegs(tmp_path, ("CAM_FRONT",))
    bad = tmp_path / "samples/CAM_FRONT/x__CAM_FRONT__1.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="x__CAM_FRONT__1.jpg.*not a readable JPEG"):
        CameraFrames(find_camera_jpegs(tmp_path, ("CAM_FRONT",)), (32, 16))[0]


def test_model_latent_shape_and_config_checks():
    model = FrameAE(FrameAEModelConfig(channels=(8, 16, 16), latent_channels=5, groups=4))
    x = torch.randn(2, 3, 32, 64)
    z = model.encode(x)
    assert z.shape == (2, 5, 8, 16) and model(x).shape == x.shape
    with pytest.raises(ConfigError, match="divisible by the model's downsampling factor 4"):
        apply_overrides(tiny(), ["model.channels=8,16,16", "data.image_size=62,32"])
    with pytest.raises(ConfigError, match="model.groups=8 must divide"):
        apply_overrides(tiny(), ["model.channels=12,16"])


def test_image_grid_layout():
    a = torch.full((2, 3, 4, 5), -1.0)
    b = torch.full((2, 3, 4, 5), 1.0)
    g = image_grid([a, b], pad=1)
    assert g.shape == (2 * 6, 2 * 7, 3) and g.dtype == np.uint8
    assert (g[1:5, 1:6] == 0).all() and (g[7:11, 1:6] == 255).all() and (g[0] == 255).all()


def test_task_table_presets_and_cli_errors(jpeg_root, tmp_path, capsys):
    assert set(TASKS) == {"frame_ae", "synth_features", "bev_layout", "depth", "layout2d", "camera-vae", "camera-dit", "lidar-ae", "lidar-dit"}
    assert set(TASKS["frame_ae"].presets) == {"tiny", "small", "large"}
    for make in TASKS["frame_ae"].presets.values():
        cfg = make()
        assert cfg.data.image_size[0] % cfg.model.downsample == 0
    assert TASKS["frame_ae"].presets["large"]().train.parallel == "fsdp"
    with pytest.raises(ConfigError, match="needs --data ROOT"):
        build(fast_config(), None)

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())

    def run(*argv):
        args = parser.parse_args(["train", *argv])
        return args.func(args)

    with pytest.raises(ConfigError, match="unknown task 'frame-ae'.*did you mean 'frame_ae'"):
        run("frame-ae", "--out", str(tmp_path))
    with pytest.raises(ConfigError, match="unknown frame_ae preset 'huge'"):
        run("frame_ae", "--preset", "huge", "--out", str(tmp_path))
    with pytest.raises(ConfigError, match=r"train.steps: expected int, got '1.5'"):
        run("frame_ae", "--set", "train.steps=1.5", "--out", str(tmp_path))
    yaml_file = tmp_path / "o.yaml"
    yaml_file.write_text("train:\n  lr: 5e-4\n  steps: 7\nmodel:\n  latent_channels: 6\n")
    assert run("frame_ae", "--config", str(yaml_file), "--set", "train.steps=9", "--print-config") == 0
    printed = capsys.readouterr().out
    assert "lr: 0.0005" in printed and "steps: 9" in printed and "latent_channels: 6" in printed

    assert run("frame_ae", "--data", str(jpeg_root), "--out", str(tmp_path / "run"),
               "--set", "train.steps=2", "train.eval_every=0", "train.preview_samples=0", "train.batch_size=4") == 0
    assert (tmp_path / "run/checkpoints/step_00000002/model.safetensors").is_file()
