from dataclasses import replace

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.camera.conditions import CONDITION_GROUPS
from genesis_drive.models.camera.dit import DIT_PRESETS, MultiViewDiT, MultiViewDiTConfig, add_layout_hint, grow_depth
from genesis_drive.models.camera.layout_hint import LayoutHint
from genesis_drive.train.loop import enable_grad_checkpointing

from .helpers import conditions

C, H, W = 4, 3, 4  # latent channels and grid (32 x 24 pixel conditions)
#: condition keys with a view axis after the batch axis
PER_VIEW = ("intrinsics", "cam_to_ego", "caption_views", "caption_views_mask", "ped_keypoints_2d", "ped_depth",
            "ped_visible_2d", "ped_view_mask", "layout")  # fmt: skip


def make(seed=0, **kw) -> MultiViewDiT:
    torch.manual_seed(seed)
    return MultiViewDiT(replace(DIT_PRESETS["test"](C), **kw))


def pretrained_like(model: MultiViewDiT, seed=1, keep_control_zero=True) -> MultiViewDiT:
    """Give every zero-initialised parameter random values (a trained base); the control
    branch's zero projections stay zero unless ``keep_control_zero`` is False."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if keep_control_zero and name.startswith(("control_in", "control_out")):
                continue
            if (p == 0).all():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def inputs(b=2, t=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond = conditions(b, 4 * (t - 1) + 1)
    x = torch.randn(b, 6, t, C, H, W, generator=g)
    layout = torch.randn(b, 6, t, C, H, W, generator=g)
    time = torch.tensor([0.3, 0.8])[:b]
    return x, time, cond, layout


def permute_views(cond, perm):
    return {k: (v[:, perm] if k in PER_VIEW else v) for k, v in cond.items()}


@pytest.mark.parametrize("t", [1, 3])
def test_shapes_and_a_fresh_model_predicts_zero(t):
    model = make()
    x, time, cond, layout = inputs(t=t)
    out = model(x, time, cond, layout=layout)
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(out))  # adaLN-zero + zero final layer
    out = pretrained_like(model)(x, time, cond, layout=layout)
    assert out.shape == x.shape and torch.isfinite(out).all() and out.abs().mean() > 1e-3


@pytest.mark.parametrize("mode, perms", [
    ("all", [[3, 0, 5, 1, 4, 2]]),
    ("neighbours", [[1, 2, 3, 4, 5, 0], [5, 4, 3, 2, 1, 0]]),  # cyclic shift, reversed rig
])  # fmt: skip
def test_permuting_views_with_their_cameras_permutes_the_output(mode, perms):
    model = pretrained_like(make(cross_view=mode), keep_control_zero=False).eval()
    x, time, cond, layout = inputs()
    out = model(x, time, cond, layout=layout)
    for perm in perms:
        out_p = model(x[:, perm], time, permute_views(cond, perm), layout=layout[:, perm])
        assert torch.allclose(out_p, out[:, perm], atol=1e-5), (mode, perm, (out_p - out[:, perm]).abs().max())
    if mode == "neighbours":  # a swap of two views changes the neighbour sets: not equivariant
        perm = [1, 0, 2, 3, 4, 5]
        out_p = model(x[:, perm], time, permute_views(cond, perm), layout=layout[:, perm])
        assert not torch.allclose(out_p, out[:, perm], atol=1e-4)


def test_cameras_matter():
    model = pretrained_like(make()).eval()
    x, time, cond, layout = inputs()
    moved = dict(cond)
    moved["cam_to_ego"] = cond["cam_to_ego"].clone()
    moved["cam_to_ego"][:, 0, 0, 3] += 1.0  # front camera 1 m further forward
    out, out_m = model(x, time, cond), model(x, time, moved)
    assert not torch.allclose(out[:, 0], out_m[:, 0], atol=1e-4)


def test_zero_control_branch_changes_nothing_until_trained():
    model = pretrained_like(make())
    model.load_control_from_base()  # ControlNet: the control blocks start as copies of the trained base
    assert all(torch.equal(a, b) for a, b in zip(model.control_blocks[0].parameters(), model.blocks[0].parameters()))
    x, time, cond, layout = inputs()
    base = model(x, time, cond)
    assert torch.equal(model(x, time, cond, layout=layout), base)  # exactly
    opt = torch.optim.SGD([p for n, p in model.named_parameters() if n.startswith("control")], lr=0.5)
    target = torch.randn_like(x)
    for step in range(2):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x, time, cond, layout=layout), target).backward()
        opt.step()
        with torch.no_grad():
            assert torch.equal(model(x, time, cond), base)  # only the control branch was trained
            with_ctrl = model(x, time, cond, layout=layout)
        assert not torch.allclose(with_ctrl, base, atol=1e-6)
    with torch.no_grad():  # after two steps the layout values themselves matter
        assert not torch.allclose(model(x, time, cond, layout=layout + 1.0), with_ctrl, atol=1e-6)


def test_growing_the_depth_keeps_the_function_and_trains_the_new_blocks():
    small = pretrained_like(make(), keep_control_zero=False).eval()
    x, time, cond, layout = inputs()
    with torch.no_grad():
        before = small(x, time, cond, layout=layout)
    big = MultiViewDiT(replace(small.config, depth=4))
    big.load_state_dict(grow_depth(small.state_dict(), small.config, 4))
    big.eval()
    assert torch.equal(big.blocks[1].spatial.to_q.weight, small.blocks[1].spatial.to_q.weight)
    assert big.blocks[3].spatial.to_q.weight.abs().sum() > 0  # a fresh block, only its outputs zeroed
    assert torch.allclose(big(x, time, cond, layout=layout), before, atol=1e-6)  # the same function
    big(x, time, cond, layout=layout).square().mean().backward()
    assert big.blocks[3].mlp.fc2.weight.grad.abs().sum() > 0  # the new blocks learn from the first step
    with pytest.raises(ConfigError, match="must exceed"):
        grow_depth(small.state_dict(), small.config, 2)
    with pytest.raises(ConfigError, match="do not fit"):
        grow_depth({k: v for k, v in small.state_dict().items() if k != "final.linear.weight"}, small.config, 4)


def test_a_layout_hint_added_to_a_trained_dit_keeps_its_function_then_reads_the_layout_pixels():
    small = pretrained_like(make(), keep_control_zero=False).eval()
    x, time, cond, layout = inputs()
    video = cond["layout"]  # b v 9 3 24 32 uint8: the rendered layout of the test clip
    with torch.no_grad():
        before = small(x, time, cond, layout=layout)
    hinted = MultiViewDiT(replace(small.config, layout_hint=8))
    hinted.load_state_dict(add_layout_hint(small.state_dict(), small.config, 8))
    hinted.eval()
    assert torch.allclose(hinted(x, time, cond, layout=layout, layout_video=video), before, atol=1e-6)
    hinted(x, time, cond, layout=layout, layout_video=video).square().mean().backward()
    assert hinted.layout_hint.out.weight.grad.abs().sum() > 0  # trains from the first step
    with torch.no_grad():
        hinted.layout_hint.out.weight.normal_(0, 0.1)
        moved = video.roll(shifts=8, dims=-1)  # the same layout drawn 8 pixels to the right
        a = hinted(x, time, cond, layout=layout, layout_video=video)
        b = hinted(x, time, cond, layout=layout, layout_video=moved)
        dropped = {"layout": torch.tensor([True, False])}
        c = hinted(x, time, cond, layout=layout, layout_video=video, drop=dropped)
        d = hinted(x, time, cond, layout=layout, layout_video=moved, drop=dropped)
    assert not torch.allclose(a, b, atol=1e-4)  # the pixels now steer the output
    assert torch.equal(c[0], d[0]) and not torch.allclose(c[1], d[1], atol=1e-4)  # dropping the layout drops the hint too
    with pytest.raises(ValueError, match="pass layout_video"):
        hinted(x, time, cond, layout=layout)
    with pytest.raises(ConfigError, match="already"):
        add_layout_hint(hinted.state_dict(), hinted.config, 8)
    with pytest.raises(ConfigError, match="needs control_depth"):
        replace(small.config, control_depth=0, layout_hint=8)


def test_layout_hint_groups_frames_like_the_causal_vae():
    torch.manual_seed(0)
    hint = LayoutHint(8, downsample=8, temporal=4, width=16)
    torch.nn.init.normal_(hint.out.weight)
    video = torch.randint(0, 256, (1, 2, 9, 3, 24, 32), dtype=torch.uint8)
    out = hint(video)
    assert out.shape == (1, 2, 3, 12, 16)  # b v t' (3 x 4 tokens) d
    later = video.clone()
    later[:, :, 5] = 255 - later[:, :, 5]  # frame 5 belongs to latent frame 2 (frames 5..8)
    changed = (hint(later) - out).abs().amax(dim=(0, 1, 3, 4))
    assert changed[0] == 0 and changed[1] == 0 and changed[2] > 0
    with pytest.raises(ValueError, match="power of two"):
        LayoutHint(8, downsample=6, temporal=4, width=16)
    with pytest.raises(ValueError, match="do not tile"):
        hint(video[..., :20])


def test_deterministic_under_a_seed():
    x, time, cond, layout = inputs()
    a = pretrained_like(make(seed=3), seed=4)(x, time, cond, layout=layout)
    b = pretrained_like(make(seed=3), seed=4)(x, time, cond, layout=layout)
    c = pretrained_like(make(seed=5), seed=4)(x, time, cond, layout=layout)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_gradients_reach_every_parameter():
    model = pretrained_like(make(), keep_control_zero=False)
    x, time, cond, layout = inputs()
    model(x, time, cond, layout=layout).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_grad_checkpointing_gives_the_same_output_and_gradients():
    x, time, cond, layout = inputs()
    grads = []
    for flag in (False, True):
        model = pretrained_like(make(seed=2), keep_control_zero=False)
        if flag:
            assert enable_grad_checkpointing(model) == 3  # two base blocks, one control block
        assert all(b.grad_checkpointing == flag for b in list(model.blocks) + list(model.control_blocks))
        out = model(x, time, cond, layout=layout)
        out.square().mean().backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[0][1], grads[1][1]))


def test_given_frames_are_modulated_with_time_zero():
    model = pretrained_like(make()).eval()
    x, time, cond, layout = inputs()
    all_given = torch.ones(2, 3, dtype=torch.bool)
    assert torch.equal(model(x, time, cond, given=all_given), model(x, torch.zeros(2), cond))
    first = torch.tensor([[True, False, False]] * 2)
    out_first, out_none = model(x, time, cond, given=first), model(x, time, cond)
    assert not torch.allclose(out_first, out_none, atol=1e-5)


def test_dropping_every_group_removes_the_conditions_of_that_sample_only():
    model = pretrained_like(make(), keep_control_zero=False).eval()
    x, time, cond, layout = inputs()
    drop = {g: torch.tensor([True, False]) for g in CONDITION_GROUPS}
    out = model(x, time, cond, layout=layout, drop=drop)
    ref = model(x, time, cond, layout=layout)
    assert torch.equal(out[1], ref[1]) and not torch.allclose(out[0], ref[0], atol=1e-5)
    # sample 0's scene conditions (not its cameras) no longer matter
    other = dict(cond)
    other["box_corners"] = cond["box_corners"] + 3.0
    other["ego"] = cond["ego"] + 1.0
    other["caption_views"] = -cond["caption_views"]
    other["ped_keypoints_2d"] = cond["ped_keypoints_2d"] * 0.5
    out2 = model(x, time, other, layout=layout + 2.0, drop=drop)
    assert torch.allclose(out2[0], out[0], atol=1e-6)
    assert not torch.allclose(out2[1], out[1], atol=1e-5)
    # dropping only the layout equals running without the control branch for that sample
    only_layout = {"layout": torch.tensor([True, False])}
    assert torch.allclose(model(x, time, cond, layout=layout, drop=only_layout)[0], model(x, time, cond)[0], atol=1e-6)


def test_overfits_one_batch():
    model = make(seed=0)
    x, time, cond, layout = inputs()
    target = torch.randn_like(x)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, time, cond, layout=layout), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bf16_autocast_runs():
    model = pretrained_like(make()).eval()
    x, time, cond, layout = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, time, cond, layout=layout)
    ref = model(x, time, cond, layout=layout)
    assert torch.isfinite(out).all() and torch.allclose(out.float(), ref, atol=0.1 * ref.abs().max().item())


def test_bad_input_and_config():
    model = make()
    x, time, cond, layout = inputs()
    with pytest.raises(ValueError, match="latents"):
        model(x[:, :, :, :2], time, cond)
    with pytest.raises(ValueError, match="intrinsics"):
        model(x[:, :3], time, cond)
    with pytest.raises(ValueError, match="layout"):
        model(x, time, cond, layout=layout[:, :, :2])
    with pytest.raises(ValueError, match="latent frames"):
        model(x[:, :, :2], time, cond)
    with pytest.raises(ConfigError, match="cross_view"):
        MultiViewDiTConfig(latent_channels=4, cross_view="ring")
    with pytest.raises(ConfigError, match="control_depth"):
        MultiViewDiTConfig(latent_channels=4, depth=2, control_depth=3)
    with pytest.raises(ConfigError, match="RoPE"):
        MultiViewDiTConfig(latent_channels=4, width=32, heads=8)
    assert set(DIT_PRESETS) == {"test", "tiny", "paper"} and DIT_PRESETS["tiny"](8).latent_channels == 8
