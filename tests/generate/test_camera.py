"""Camera sampling with a tiny random DiT and a pooling codec: the three modes, rollout, determinism, kept given frames."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from genesis_drive.data.clips import ClipIndex, ClipSpec
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.errors import ConfigError
from genesis_drive.generate.camera import DEFAULT_FIRST_FRAME_STRENGTH, DEFAULT_STRENGTH, encode_frames, generate_chunk, mode_strength, sample_latents, static_video
from genesis_drive.generate.root import write_generated_root
from genesis_drive.generate.scene import frames_by_token, generate_scene
from genesis_drive.layout.conditions import ConditionTransform
from genesis_drive.models.camera.conditions import CONDITION_GROUPS
from genesis_drive.models.camera.dit import DIT_PRESETS, MultiViewDiT
from genesis_drive.models.codec import LatentCodec

from ..data.handmade import write_handmade
from ..models.camera.helpers import CONFIG, IMAGE_SIZE, conditions
from ..models.camera.test_dit import pretrained_like


class PoolCodec(LatentCodec):
    """A causal 8x spatial / 4x temporal codec by averaging (channels r, g, b, mean); decode repeats."""

    latent_channels = 4

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the codec a device

    def encode_raw(self, x, *, sample=False, generator=None):
        first, rest = x[:, :, :1], x[:, :, 1:]
        rest = rearrange(rest, "n c (k f) h w -> n c k f h w", f=4).mean(3)
        z = F.avg_pool3d(torch.cat([first, rest], 2), (1, 8, 8))
        return torch.cat([z, z.mean(1, keepdim=True)], 1)

    def decode_raw(self, z):
        x = F.interpolate(z[:, :3], scale_factor=(1, 8, 8), mode="nearest")
        return torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(4, dim=2)], 2)

    def latent_shape(self, input_shape):
        c, t, h, w = input_shape
        return (4, (t - 1) // 4 + 1, h // 8, w // 8)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return pretrained_like(MultiViewDiT(DIT_PRESETS["test"](4))).eval(), PoolCodec().eval()


@pytest.fixture(scope="module")
def cond():
    return {k: v[0] for k, v in conditions(1, 9).items() if isinstance(v, torch.Tensor)}


def _real(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (6, 9, IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["free", "first-frame", "noisy-latent"])
def test_modes_run_and_are_seeded(nets, cond, mode):
    dit, codec = nets
    real = _real()
    kw = dict(mode=mode, steps=2, guidance=2.0, strength=0.5 if mode == "noisy-latent" else 1.0,
              given_frames=real[:, :1] if mode == "first-frame" else None,
              real_frames=real if mode == "noisy-latent" else None)  # fmt: skip
    a = generate_chunk(dit, codec, cond, seed=1, **kw)
    b = generate_chunk(dit, codec, cond, seed=1, **kw)
    c = generate_chunk(dit, codec, cond, seed=2, **kw)
    assert a.shape == (6, 9, IMAGE_SIZE[1], IMAGE_SIZE[0], 3) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_first_frame_keeps_given_latents_exactly(nets, cond):
    dit, codec = nets
    batch = {k: v[None] for k, v in cond.items()}
    given = encode_frames(codec, torch.from_numpy(_real()[:, :5]))  # 2 latent frames
    shape = (1, 6, 3, 4, 3, 4)
    for method in ("euler", "heun"):
        z = sample_latents(dit, batch, shape, mode="first-frame", given_latents=given, steps=2, method=method, seed=0)
        assert torch.equal(z[:, :, :2], given)
        free = sample_latents(dit, batch, shape, mode="free", steps=2, method=method, seed=0)
        assert not torch.allclose(free[:, :, :2], given, atol=0.1)


def test_noisy_latent_strength(nets, cond):
    dit, codec = nets
    batch = {k: v[None] for k, v in cond.items()}
    real = encode_frames(codec, torch.from_numpy(_real()))
    shape = tuple(real.shape)
    z0 = sample_latents(dit, batch, shape, mode="noisy-latent", real_latents=real, strength=0.0, steps=4)
    assert torch.equal(z0, real)
    err = [float((sample_latents(dit, batch, shape, mode="noisy-latent", real_latents=real, strength=s, steps=4) - real).abs().mean())
           for s in (0.05, 0.5, 1.0)]
    assert err[0] < err[1] < err[2] and err[0] < 0.1 * err[2]


def test_first_frame_strength_starts_from_the_given_frame_held_still(nets, cond):
    dit, codec = nets
    given = _real(5)[:, :1]
    held = static_video(given, 9)
    assert held.shape == (6, 9) + given.shape[2:] and all(np.array_equal(held[:, k], given[:, 0]) for k in range(9))
    target = encode_frames(codec, torch.from_numpy(held))
    kw = dict(mode="first-frame", given_frames=given, steps=4, guidance=1.0, seed=0)

    def err(frames):
        return float((encode_frames(codec, torch.from_numpy(frames)) - target).abs().mean())

    e = [err(generate_chunk(dit, codec, cond, strength=s, **kw)) for s in (0.05, 0.5, 1.0)]
    assert e[0] < e[1] < e[2] and e[0] < 0.1 * e[2]  # near the held frame at a low strength, from noise at 1
    plain = generate_chunk(dit, codec, cond, **kw)  # the default: pure noise, as before
    assert plain.tobytes() == generate_chunk(dit, codec, cond, strength=1.0, **kw).tobytes()
    batch = {k: v[None] for k, v in cond.items()}
    with pytest.raises(ConfigError, match="needs the latents to start from"):
        sample_latents(dit, batch, tuple(target.shape), mode="first-frame", given_latents=target[:, :, :1], strength=0.5)


def test_mode_strength_defaults_and_refusals():
    assert mode_strength("noisy-latent", None) == DEFAULT_STRENGTH == 0.6
    assert mode_strength("first-frame", None) == DEFAULT_FIRST_FRAME_STRENGTH == 0.9
    assert mode_strength("free", None) == mode_strength("free", 1.0) == 1.0
    assert mode_strength("first-frame", 0.8) == 0.8
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\], got 1.5"):
        mode_strength("first-frame", 1.5)
    with pytest.raises(ConfigError, match="noisy-latent and first-frame only"):
        mode_strength("free", 0.5)


def test_a_dit_with_a_layout_hint_reads_the_rendered_layout_at_sampling(nets, cond):
    _, codec = nets
    torch.manual_seed(0)
    dit = pretrained_like(MultiViewDiT(replace(DIT_PRESETS["test"](4), layout_hint=8)), keep_control_zero=False).eval()
    kw = dict(mode="free", steps=2, seed=0)
    a = generate_chunk(dit, codec, cond, **kw)
    # generate_chunk hands the rendered layout video to the hint: zeroing the hint's output (as at
    # initialisation) removes what the pixels add, and the frames change
    with torch.no_grad():
        dit.layout_hint.out.weight.zero_()
        dit.layout_hint.out.bias.zero_()
    b = generate_chunk(dit, codec, cond, **kw)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_dropped_groups_leave_the_conditional_branch(nets, cond):
    _, codec = nets
    torch.manual_seed(0)
    dit = pretrained_like(MultiViewDiT(DIT_PRESETS["test"](4)), keep_control_zero=False).eval()  # the layout matters
    batch = {k: v[None] for k, v in cond.items()}
    layout = encode_frames(codec, torch.from_numpy(_real(3)))
    shape = tuple(layout.shape)
    kw = dict(mode="free", steps=2, seed=0, guidance=1.0)
    with_layout = sample_latents(dit, batch, shape, layout=layout, **kw)
    # dropping the layout group is the DiT without its control input, exactly
    no_layout = sample_latents(dit, batch, shape, layout=layout, drop=("layout",), **kw)
    assert torch.equal(no_layout, sample_latents(dit, batch, shape, layout=None, **kw))
    assert not torch.allclose(no_layout, with_layout, atol=1e-3)
    # the pedestrian keypoints: the same as the condition dropout the DiT trained with, every call
    calls = []
    dit_spy = lambda x, t, c, **k: calls.append(k.get("drop")) or dit(x, t, c, **k)  # noqa: E731
    dit_spy.parameters = dit.parameters
    peds = sample_latents(dit_spy, batch, shape, layout=layout, drop=("pedestrians",), **kw)
    assert len(calls) == 2 and all(set(d) == {"pedestrians"} and bool(d["pedestrians"].all()) for d in calls)
    assert not torch.equal(peds, with_layout)
    # with guidance the unconditional branch still drops everything
    calls.clear()
    sample_latents(dit_spy, batch, shape, layout=layout, drop=("boxes",), **{**kw, "guidance": 2.0})
    assert sorted(len(d) for d in calls) == [1, 1, len(CONDITION_GROUPS), len(CONDITION_GROUPS)]
    with pytest.raises(ConfigError, match=r"--drop-conditions: unknown camera condition group\(s\) \['camera'\]"):
        sample_latents(dit, batch, shape, drop=("camera",), **kw)


def test_bad_mode_and_strength(nets, cond):
    dit, codec = nets
    with pytest.raises(ConfigError, match="unknown mode"):
        generate_chunk(dit, codec, cond, mode="sideways")
    with pytest.raises(ConfigError, match=r"strength must be in \[0, 1\]"):
        generate_chunk(dit, codec, cond, mode="noisy-latent", real_frames=_real(), strength=1.5)
    with pytest.raises(ConfigError, match="needs given latent frames"):
        generate_chunk(dit, codec, cond, mode="first-frame")


def test_rollout_over_a_scene_writes_a_loadable_root(nets, tmp_path):
    dit, codec = nets
    root = write_handmade(tmp_path / "src", num_keyframes=4)  # 19 frames at 12 Hz
    spec = ClipSpec(num_frames=9, window_stride=1, views=CAMERA_CHANNELS, image_size=IMAGE_SIZE, lidar="none")
    index = ClipIndex(NuScenesReader(root), spec)
    transform = ConditionTransform(CONFIG)

    def chunk_fn(clip, given, seed):
        return generate_chunk(dit, codec, transform(clip), mode="first-frame" if given is not None else "free",
                              given_frames=given, steps=1, guidance=1.0, seed=seed)  # fmt: skip

    scene = index.reader.scene_tokens()[0]
    runs = [generate_scene(index, scene, chunk_fn, seed=5).frames for _ in range(2)]
    assert runs[0].shape == (6, 19, IMAGE_SIZE[1], IMAGE_SIZE[0], 3) and runs[0].tobytes() == runs[1].tobytes()
    video = generate_scene(index, scene, chunk_fn, seed=5)
    out = write_generated_root(root, tmp_path / "gen", ["scene-0001"], CAMERA_CHANNELS, frames_by_token(index.reader, video),
                               IMAGE_SIZE, clips=video.clips, progress=False)  # fmt: skip
    gen, src = NuScenesReader(out), index.reader
    for s in src.sample_tokens(scene):
        assert [b.token for b in gen.boxes(s)] == [b.token for b in src.boxes(s)]
    tok = gen.channel_tokens(scene, "CAM_FRONT")[10]
    assert gen.camera_frame(tok).image.shape == (IMAGE_SIZE[1], IMAGE_SIZE[0], 3)


@pytest.mark.parametrize("mode", ["free", "first-frame", "noisy-latent"])
def test_generate_root_all_modes(nets, tmp_path, mode):
    from genesis_drive.generate.pipeline import generate_root

    dit, codec = nets
    root = write_handmade(tmp_path / "src", num_keyframes=2)  # 7 frames: too short for a 9-frame chunk
    kw = dict(dit=dit, codec=codec, transform=ConditionTransform(CONFIG), views=CAMERA_CHANNELS, num_frames=5, mode=mode,
              strength=0.5 if mode == "noisy-latent" else None, steps=1, guidance=1.5, progress=False)  # fmt: skip
    out = generate_root(root, tmp_path / "gen", seed=3, **kw)
    again = generate_root(root, tmp_path / "gen2", seed=3, **kw)
    gen = NuScenesReader(out)
    scene = gen.scene_tokens()[0]
    for tok in gen.channel_tokens(scene, "CAM_BACK_LEFT"):
        sd = gen.sample_data(tok)
        assert (out / sd["filename"]).read_bytes() == (again / sd["filename"]).read_bytes()  # same seed, same bytes
    if mode == "first-frame":  # the real first frame is kept
        real = ClipIndex(NuScenesReader(root), ClipSpec(num_frames=5, views=CAMERA_CHANNELS, image_size=IMAGE_SIZE, lidar="none")).load(0)
        img = gen.camera_frame(gen.channel_tokens(scene, "CAM_FRONT")[0]).image
        assert np.abs(img.astype(int) - real.images[0, 0].astype(int)).mean() < 3  # JPEG
    with pytest.raises(Exception, match="already exists"):
        generate_root(root, tmp_path / "gen", **kw)
    with pytest.raises(Exception, match="lacks camera channels"):
        generate_root(root, tmp_path / "gen3", **{**kw, "views": ("CAM_FRONT", "CAM_SIDE")})
    assert not (tmp_path / "gen3").exists()


def test_dropped_groups_are_part_of_the_generation_and_its_fingerprint(nets, tmp_path):
    from genesis_drive.generate.pipeline import camera_fingerprint, generate_root
    from genesis_drive.generate.shard import fingerprint_diff

    dit, codec = nets
    root = write_handmade(tmp_path / "src", num_keyframes=2)
    kw = dict(dit=dit, codec=codec, transform=ConditionTransform(CONFIG), views=CAMERA_CHANNELS, num_frames=5, mode="free",
              steps=1, guidance=1.0, progress=False, seed=3)  # fmt: skip
    plain = generate_root(root, tmp_path / "plain", **kw)
    boxes = generate_root(root, tmp_path / "boxes", drop=("boxes",), **kw)
    gen = NuScenesReader(plain)
    tok = gen.channel_tokens(gen.scene_tokens()[0], "CAM_FRONT")[0]
    name = gen.sample_data(tok)["filename"]
    assert (plain / name).read_bytes() != (boxes / name).read_bytes()  # the box tokens were left out
    fp = dict(dit=dit, codec=codec, transform=kw["transform"], views=CAMERA_CHANNELS, num_frames=5, mode="free", strength=1.0,
              seed=3, steps=1, guidance=1.0, method="euler", shift=1.0, overlap_latents=1, captions=None)  # fmt: skip
    a, b = camera_fingerprint(root, **fp), camera_fingerprint(root, drop=("pedestrians", "boxes"), **fp)
    assert "drop" not in a and fingerprint_diff(a, b) == ["drop: '<absent>' != ['boxes', 'pedestrians']"]
    with pytest.raises(ConfigError, match="--drop-conditions: unknown camera condition group"):
        generate_root(root, tmp_path / "bad", drop=("reference",), **kw)
    assert not (tmp_path / "bad").exists()
