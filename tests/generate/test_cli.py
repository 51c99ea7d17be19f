"""`generate` options and the checkpoint-folder layout: one clear error per bad input."""

from __future__ import annotations

import argparse

import pytest

from genesis_drive.errors import ConfigError, DataError
from genesis_drive.generate.checkpoints import SHIPPED_CHECKPOINTS, checkpoint_dirs
from genesis_drive.generate.cli import (
    DEFAULT_GUIDANCE, DEFAULT_LIDAR_GUIDANCE, add_arguments, camera_guidance, check_arguments, lidar_guidance, parse_modalities,
)


def _args(tmp_path, *extra):
    (tmp_path / "src").mkdir(exist_ok=True)
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_subparsers())
    return parser.parse_args(["generate", "--from", str(tmp_path / "src"), "--out", str(tmp_path / "out"), *extra])


def test_good_arguments_pass(tmp_path):
    args = _args(tmp_path, "--mode", "noisy-latent", "--strength", "0.3", "--seed", "4", "--scenes", "a", "b")
    check_arguments(args)
    assert args.scenes == ["a", "b"] and args.seed == 4 and args.strength == 0.3
    # camera generation drops its own condition groups (ablations), in any mode
    args = _args(tmp_path, "--modalities", "camera", "--mode", "first-frame", "--drop-conditions", "pedestrians", "boxes")
    check_arguments(args)
    assert args.drop_conditions == ["pedestrians", "boxes"]


@pytest.mark.parametrize("extra,match", [
    (("--mode", "sideways"), "--mode: unknown camera mode 'sideways'"),
    (("--modalities", "lidar", "--mode", "free"), "--mode: unknown lidar mode 'free'; expected forecast | copy-reference | reconstruct"),
    (("--modalities", "lidar", "--mode", "copy-reference", "--drop-conditions", "camera"), "--drop-conditions applies to --modalities lidar with --mode forecast only"),
    (("--modalities", "camera", "--drop-conditions", "camera"), r"--drop-conditions: unknown camera condition group\(s\) \['camera'\]"),
    (("--mode", "noisy-latent", "--strength", "1.5"), r"--strength must be in \[0, 1\], got 1.5"),
    (("--mode", "noisy-latent", "--strength", "-0.1"), r"--strength must be in \[0, 1\]"),
    (("--strength", "0.5"), r"--strength applies to --mode noisy-latent and first-frame only \(got --mode free\)"),
    (("--modalities", "camera,lidar", "--mode", "forecast"), "--mode: unknown camera mode 'forecast'"),
    (("--modalities", "camera", "--lidar-reference", "none"), "--lidar-reference applies to --modalities camera,lidar only"),
    (("--modalities", "sonar"), r"--modalities: unknown \['sonar'\]"),
    (("--guidance", "-1"), "--guidance must be >= 0"),
    (("--lidar-guidance", "-0.5"), "--lidar-guidance must be >= 0, got -0.5"),
    (("--sampler", "rk4"), "unknown sampler"),
    (("--steps", "0"), "--steps must be >= 1"),
])  # fmt: skip
def test_bad_options(tmp_path, extra, match):
    with pytest.raises(ConfigError, match=match):
        check_arguments(_args(tmp_path, *extra))


@pytest.mark.parametrize("extra,camera,lidar", [
    ((), DEFAULT_GUIDANCE, DEFAULT_LIDAR_GUIDANCE),
    (("--guidance", "3"), 3.0, DEFAULT_LIDAR_GUIDANCE),  # joint: --guidance is the camera DiT's only
    (("--guidance", "3", "--lidar-guidance", "1"), 3.0, 1.0),
    (("--modalities", "lidar", "--guidance", "1.25"), 1.25, 1.25),  # LiDAR alone: --guidance stands for it
    (("--modalities", "lidar", "--guidance", "3", "--lidar-guidance", "1"), 3.0, 1.0),
])  # fmt: skip
def test_guidance_per_network(tmp_path, extra, camera, lidar):
    args = _args(tmp_path, *extra)
    check_arguments(args)
    assert (camera_guidance(args), lidar_guidance(args)) == (camera, lidar)


def test_existing_out_refused(tmp_path):
    (tmp_path / "out").mkdir()
    check_arguments(_args(tmp_path))  # an empty OUT is replaced
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(DataError, match="already exists and is not empty"):
        check_arguments(_args(tmp_path))
    check_arguments(_args(tmp_path, "--overwrite"))
    with pytest.raises(DataError, match="--out must differ from --from"):
        check_arguments(_args(tmp_path, "--out", str(tmp_path / "src")))


def test_modalities_parsing():
    assert parse_modalities(["camera"]) == ("camera",)
    assert parse_modalities(["camera,", "CAMERA"]) == ("camera",)
    assert parse_modalities(["LIDAR"]) == ("lidar",)
    assert parse_modalities(["lidar,camera"]) == parse_modalities(["camera", "lidar"]) == ("camera", "lidar")
    with pytest.raises(ConfigError, match="give one of"):
        parse_modalities([","])


def test_checkpoint_layout(tmp_path):
    with pytest.raises(DataError, match="checkpoints folder not found"):
        checkpoint_dirs(tmp_path / "nope")
    (tmp_path / "camera_vae" / "checkpoints" / "step_00000010").mkdir(parents=True)
    (tmp_path / "camera_vae" / "checkpoints" / "step_00000010" / "state.json").write_text("{}")
    with pytest.raises(DataError, match="no camera_dit/ folder"):
        checkpoint_dirs(tmp_path)
    (tmp_path / "camera_dit").mkdir()
    with pytest.raises(DataError, match="holds no checkpoint"):
        checkpoint_dirs(tmp_path)
    (tmp_path / "camera_dit" / "state.json").write_text("{}")
    assert checkpoint_dirs(tmp_path) == {"camera_vae": tmp_path / "camera_vae", "camera_dit": tmp_path / "camera_dit"}


def test_shipped_checkpoints_and_their_absence(tmp_path, monkeypatch):
    import genesis_drive.generate.checkpoints as checkpoints

    for modality, names in (("camera", ("camera_vae", "camera_dit")), ("lidar", ("camera_vae", "lidar_ae", "lidar_dit"))):
        assert checkpoint_dirs(None, modality) == {n: SHIPPED_CHECKPOINTS / n for n in names}
    monkeypatch.setattr(checkpoints, "SHIPPED_CHECKPOINTS", tmp_path)  # an install without them
    with pytest.raises(DataError, match="shipped checkpoints are not installed") as e:
        checkpoint_dirs(None)
    assert str(tmp_path) in str(e.value) and "genesis-drive train camera-vae" in str(e.value)
