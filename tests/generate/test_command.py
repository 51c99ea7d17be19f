"""`genesis-drive generate` end to end with tiny random checkpoints written as `genesis-drive train`
writes them: a devkit-loadable root with the source's tokens, same seed same bytes in every mode,
one clear error line (exit code 1, nothing at OUT) per bad input, and no OUT after a failure mid-way."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genesis_drive.generate.pipeline as pipeline_mod
import genesis_drive.generate.root as root_mod
from genesis_drive.cli import main
from genesis_drive.data.nuscenes import JPEG_QUALITY, NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.eval.video_io import DirectoryClipSource
from genesis_drive.generate.checkpoints import checkpoint_dirs, load_camera_networks
from genesis_drive.generate.root import generated_intrinsics, write_generated_root
from genesis_drive.train import checkpoint as ckpt

from ..data.handmade import H, W
from .tiny_checkpoints import SIZE, generate, save_vae


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_checkpoints_load_checked_and_ema(ckpts):
    nets = load_camera_networks(checkpoint_dirs(ckpts))
    assert nets.dit_config.views == CAMERA_CHANNELS and nets.dit_config.image_size == SIZE
    assert nets.info["camera_dit"]["task"] == "camera-dit" and nets.info["camera_dit"]["ema"]
    saved = ckpt.load_weights(ckpts / "camera_dit")
    assert all(torch.equal(saved[k], v) for k, v in nets.dit.state_dict().items())
    assert not nets.dit.training and not nets.vae.training


def test_generate_writes_a_devkit_root(source, ckpts, tmp_path, capsys):
    from nuscenes.nuscenes import NuScenes

    out = tmp_path / "gen"
    out.mkdir()  # an empty OUT is fine: it is replaced
    assert generate(source, out, ckpts, "--seed", "3") == 0
    cap = capsys.readouterr()
    assert f"wrote {out}" in cap.out
    bar = [line for line in cap.err.replace("\r", "\n").splitlines() if line.startswith("generate: 100%")]
    assert bar and "2/2" in bar[-1] and ("chunk/s" in bar[-1] or "s/chunk" in bar[-1])  # tqdm: chunks, rate ...
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", bar[-1])  # ... elapsed<ETA
    nusc, src = NuScenes(version="v1.0-mini", dataroot=str(out), verbose=False), NuScenesReader(source)
    assert sorted(s["token"] for s in nusc.sample) == sorted(src.sample_tokens(src.scene_tokens()[0]))
    assert sorted(a["token"] for a in nusc.sample_annotation) == sorted(
        b.token for s in src.sample_tokens(src.scene_tokens()[0]) for b in src.boxes(s))
    gen = NuScenesReader(out)
    scene = gen.scene_tokens()[0]
    for view in CAMERA_CHANNELS:
        toks = gen.channel_tokens(scene, view)
        assert toks == src.channel_tokens(scene, view) and len(toks) == 7
        frame = gen.camera_frame(toks[4])
        assert frame.image.shape == (SIZE[1], SIZE[0], 3)
        k_src = src.camera_frame(toks[4], load_image=False).intrinsics
        np.testing.assert_allclose(frame.intrinsics, generated_intrinsics(k_src, (W, H), SIZE))
        path, _, k_devkit = nusc.get_sample_data(toks[4])
        assert Path(path).is_file() and np.allclose(k_devkit, frame.intrinsics)
    assert (out / "generated" / "videos" / "scene-0001.mp4").stat().st_size > 0
    clips = dict(DirectoryClipSource(out / "generated" / "clips", tuple(CAMERA_CHANNELS)))
    assert sorted(clips) == ["scene-0001_0000", "scene-0001_0002"]  # the rollout's chunks
    assert clips["scene-0001_0000"].shape == (6, 5, SIZE[1], SIZE[0], 3)
    # the JPEGs are the generated frames of the clips (PNG, lossless), encoded as the source's JPEGs
    sd = gen.sample_data(gen.channel_tokens(scene, "CAM_FRONT")[3])
    buf = io.BytesIO()
    Image.fromarray(clips["scene-0001_0000"][0, 3]).save(buf, format="JPEG", quality=JPEG_QUALITY)
    assert (out / sd["filename"]).read_bytes() == buf.getvalue()
    assert all(r["generated"] for r in gen.extra_table("generation"))
    assert [p.name for p in tmp_path.iterdir()] == ["gen"]  # no temporary left beside OUT


@pytest.mark.parametrize("mode", ["free", "first-frame", "noisy-latent"])
def test_same_seed_same_bytes(source, ckpts, tmp_path, mode):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        strength = ("--strength", "0.7") if mode == "noisy-latent" else ()
        assert generate(source, tmp_path / name, ckpts, "--mode", mode, *strength, "--seed", str(seed), "--no-progress") == 0
        runs[name] = _files(tmp_path / name)
    assert runs["a"] == runs["b"]  # every file: tables, JPEGs, PNG clips, MP4
    cams = [k for k in runs["a"] if "/CAM_" in k and k.endswith(".jpg")]
    assert len(cams) == 6 * 7
    assert sum(runs["a"][k] != runs["c"][k] for k in cams) > len(cams) // 2  # another seed, other frames
    if mode == "first-frame":  # the scene's real first frame is kept
        gen, src = NuScenesReader(tmp_path / "a"), NuScenesReader(source)
        tok = gen.channel_tokens(gen.scene_tokens()[0], "CAM_FRONT")[0]
        from genesis_drive.data.clips import resize_crop

        real = resize_crop(src.camera_frame(tok).image, np.eye(3), SIZE)[0]
        assert np.abs(gen.camera_frame(tok).image.astype(int) - real.astype(int)).mean() < 3


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genesis-drive generate: error: "), err
    return err[0]


@pytest.mark.parametrize("extra,match", [
    (("--mode", "sideways"), "--mode: unknown camera mode 'sideways'; expected free | first-frame | noisy-latent"),
    (("--mode", "noisy-latent", "--strength", "1.5"), r"--strength must be in [0, 1], got 1.5"),
    (("--mode", "noisy-latent", "--strength", "-0.1"), r"--strength must be in [0, 1], got -0.1"),
    (("--mode", "free", "--strength", "0.5"), "--strength applies to --mode noisy-latent and first-frame only (got --mode free)"),
    (("--modalities", "camera,lidar"), "field '--checkpoints': no lidar_ae/ folder"),  # the camera-only checkpoints
    (("--modalities", "camera", "lidar", "--lidar-reference", "past"), "--lidar-reference: unknown 'past'; expected real | none"),
    (("--modalities", "radar"), "--modalities: unknown ['radar']"),
    (("--scenes", "scene-0042"), "unknown scenes ['scene-0042']"),
    (("--device", "toaster"), "--device: "),
])  # fmt: skip
def test_bad_options_one_line(source, ckpts, tmp_path, capsys, extra, match):
    assert generate(source, tmp_path / "out", ckpts, *extra) == 1
    assert match in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_occupied_out_refused(source, ckpts, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert generate(source, out, ckpts) == 1
    assert f"{out}: field '--out': already exists and is not empty (pass --overwrite to replace it)" in _one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert generate(source, out, ckpts, "--overwrite", "--no-progress") == 0
    assert not (out / "keep.txt").exists() and (out / "v1.0-mini" / "scene.json").is_file()


def test_root_without_the_cameras(source, ckpts, tmp_path, capsys):
    front_only = write_generated_root(source, tmp_path / "front", ["scene-0001"], ("CAM_FRONT",), {}, (W, H),
                                      uncovered="source", progress=False)  # fmt: skip
    assert generate(front_only, tmp_path / "out", ckpts) == 1
    line = _one_error_line(capsys)
    assert str(front_only) in line and "scene scene-0001 lacks camera channels ['CAM_FRONT_RIGHT'" in line
    assert not (tmp_path / "out").exists()
    assert generate(tmp_path / "nothing", tmp_path / "out", ckpts) == 1
    assert f"{tmp_path / 'nothing'}: field '--from': source root not found" in _one_error_line(capsys)


def _broken(ckpts: Path, tmp_path: Path, how: str) -> tuple[Path, str]:
    """A copy of the checkpoints broken ``how``; returns it and the expected error text."""
    bad = tmp_path / "bad"
    shutil.copytree(ckpts, bad)
    dit_ckpt = ckpt.latest_checkpoint(bad / "camera_dit")
    if how == "missing":
        shutil.rmtree(bad / "camera_dit")
        return bad, f"{bad}: field '--checkpoints': no camera_dit/ folder; train them with `genesis-drive train camera-vae"
    if how == "empty":
        shutil.rmtree(bad / "camera_dit" / "checkpoints")
        return bad, f"{bad / 'camera_dit'}: field '--checkpoints': holds no checkpoint"
    if how == "wrong-task":
        shutil.rmtree(bad / "camera_dit")
        shutil.copytree(bad / "camera_vae", bad / "camera_dit")
        return bad, "is a checkpoint of task 'camera-vae', expected 'camera-dit'"
    if how == "latent-channels":
        shutil.rmtree(bad / "camera_vae")
        save_vae(bad / "camera_vae", latent_channels=8)
        return bad, "the VAE has (latent channels, spatial, temporal factor) (8, 8, 4) but the DiT"
    if how == "truncated":
        f = dit_ckpt / "model.safetensors"
        f.write_bytes(f.read_bytes()[:-100])
        return bad, f"{f}: checkpoint file is truncated or altered"
    if how == "corrupt":
        f = dit_ckpt / "ema.safetensors"
        f.write_bytes(b"\xff" * f.stat().st_size)  # same size: only the parser can tell
        return bad, f"{f}: corrupt safetensors file"
    if how == "bad-state":
        (dit_ckpt / "state.json").write_text("{not json")
        return bad, f"{dit_ckpt / 'state.json'}: corrupt checkpoint state"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["missing", "empty", "wrong-task", "latent-channels", "truncated", "corrupt", "bad-state"])
def test_bad_checkpoints_one_line(source, ckpts, tmp_path, capsys, how):
    bad, match = _broken(ckpts, tmp_path, how)
    assert generate(source, tmp_path / "out", bad) == 1
    assert match in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_failure_mid_generation_leaves_no_out(source, ckpts, tmp_path, monkeypatch):
    real, calls = pipeline_mod.generate_chunk, []

    def crash_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("sampler crashed")
        return real(*a, **k)

    monkeypatch.setattr(pipeline_mod, "generate_chunk", crash_on_second)
    with pytest.raises(RuntimeError, match="sampler crashed"):
        generate(source, tmp_path / "out", ckpts, "--no-progress")
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_no_out(source, ckpts, tmp_path, monkeypatch):
    real, calls = root_mod.write_png, []

    def crash_later(*a, **k):
        calls.append(1)
        if len(calls) == 20:  # some clip frames are written by now
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(root_mod, "write_png", crash_later)
    with pytest.raises(KeyboardInterrupt):
        generate(source, tmp_path / "out", ckpts, "--no-progress")
    assert len(calls) == 20 and list(tmp_path.iterdir()) == []


@pytest.mark.slow  # two 1-step trainings through the real loop (~2 s in the suite, ~15 s alone: the training stack imports)
def test_runs_of_genesis_drive_train_feed_generate(source, tmp_path):
    """The checkpoint layout is what `genesis-drive train camera-vae / camera-dit` write (1 step each)."""
    d = tmp_path / "ckpt"
    vae = ["model.widths=8,8,8", "model.groups=4", "model.latent_channels=4", "model.shortcuts=false", "image_size=64,32",
           "clips.num_frames=5", "val_scenes=0", "train.steps=1", "train.precision=fp32", "train.preview_every=0",
           "train.eval_every=0", "train.ckpt_every=1", "train.device=cpu"]  # fmt: skip
    assert main(["train", "camera-vae", "--preset", "tiny", "--data", str(source), "--out", str(d / "camera_vae"), "--set", *vae]) == 0
    dit = [f"vae={d / 'camera_vae'}", "views=" + ",".join(CAMERA_CHANNELS), "train.device=cpu"]
    assert main(["train", "camera-dit", "--preset", "test", "--data", str(source), "--out", str(d / "camera_dit"), "--set", *dit]) == 0
    assert generate(source, tmp_path / "gen", d, "--no-progress") == 0
    gen = NuScenesReader(tmp_path / "gen")
    tok = gen.channel_tokens(gen.scene_tokens()[0], "CAM_BACK")[6]
    assert gen.camera_frame(tok).image.shape == (SIZE[1], SIZE[0], 3)


def test_a_vae_other_than_the_dits_is_refused(tmp_path):
    """The DiT checkpoint records its VAE's version (state.json frozen.vae); another VAE of the same
    shapes is refused, naming the field; the recorded one loads."""
    import json

    from genesis_drive.errors import DataError
    from genesis_drive.generate.checkpoints import checkpoint_dirs, load_camera_networks
    from genesis_drive.train.checkpoint import latest_checkpoint

    from .tiny_checkpoints import save_dit, save_vae

    ckpt = tmp_path / "ckpt"
    save_dit(ckpt / "camera_dit", save_vae(ckpt / "camera_vae"))
    dirs = checkpoint_dirs(ckpt)
    nets = load_camera_networks(dirs)
    state_file = (dirs["camera_dit"] if (dirs["camera_dit"] / "state.json").is_file() else latest_checkpoint(dirs["camera_dit"])) / "state.json"
    state = json.loads(state_file.read_text())
    state["frozen"] = {"vae": nets.vae.version}
    state_file.write_text(json.dumps(state))
    load_camera_networks(dirs)  # the recorded VAE: fine
    state["frozen"] = {"vae": "VideoVAE:0000000000000000"}
    state_file.write_text(json.dumps(state))
    with pytest.raises(DataError, match="frozen.vae"):
        load_camera_networks(dirs)
