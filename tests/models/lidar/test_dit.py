"""LidarDiT: shapes, the zero-initialised control branch, dropping == leaving out, conditions that
matter, determinism and batch independence, bad input, and a flow-matching loss that falls."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.diffusion.flow import add_noise, flow_loss, velocity_target
from genesis_drive.models.lidar import dit as dit_presets
from genesis_drive.models.lidar.dit import LIDAR_DIT_GROUPS, LidarDiT, LidarDiTConfig
from genesis_drive.errors import ConfigError

C, CL, CC = 4, 5, 3  # latent, layout raster and camera feature channels of the test preset
H = W = 8  # latent grid; the layout raster is 2x (layout_stride 2)


def pretrained_like(model: LidarDiT, seed: int = 1) -> LidarDiT:
    """Random values in every all-zero parameter (a trained base), but the control branch's zero
    projections and the reference flag."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("control_in", "control_out")):
                continue
            if (p == 0).all():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def conditions(b: int = 2, t: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = 4
    return {
        "reference": torch.randn(b, t, C, H, W, generator=g),
        "layout": torch.rand(b, t, CL, 2 * H, 2 * W, generator=g),
        "camera": torch.randn(b, t, CC, H, W, generator=g),
        "box_corners": torch.randn(b, t, n, 8, 3, generator=g) * 10,
        "box_class": torch.randint(0, 10, (b, t, n), generator=g),
        "box_track": torch.randint(0, 6, (b, t, n), generator=g),
        "box_mask": torch.rand(b, t, n, generator=g) > 0.3,
        "ego": torch.randn(b, t, 4, generator=g),
        "caption_global": torch.randn(b, 384, generator=g),
    }


def model(seed: int = 0, **kw) -> LidarDiT:
    torch.manual_seed(seed)
    return LidarDiT(dit_presets.test(C, CL, CC, **kw) if kw else dit_presets.test(C, CL, CC)).eval()


def x_t(b: int = 2, t: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, C, H, W, generator=g), torch.rand(b, generator=g)


def test_shapes_and_zero_output_at_init():
    m = model()
    x, t = x_t()
    out = m(x, t, conditions())
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # adaLN-zero final layer


def test_zero_initialised_control_branch_changes_nothing_at_init():
    m = pretrained_like(model())
    x, t = x_t()
    cond = conditions()
    without = {k: v for k, v in cond.items() if k not in ("layout", "camera")}
    with torch.no_grad():
        a, b = m(x, t, cond), m(x, t, without)
        assert a.abs().mean() > 1e-3
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        # once the control projections are non-zero, layout and camera features change the output
        for p in list(m.control_in.parameters()) + list(m.control_out.parameters()):
            p.copy_(torch.randn_like(p) * 0.1)
        c = m(x, t, cond)
        assert (c - b).abs().mean() > 1e-3
        cam_changed = dict(cond, camera=cond["camera"] + 1.0)
        assert (m(x, t, cam_changed) - c).abs().mean() > 1e-4


def test_dropping_a_group_equals_leaving_it_out():
    m = pretrained_like(model())
    for p in list(m.control_in.parameters()) + list(m.control_out.parameters()):
        torch.nn.init.normal_(p, std=0.1)
    x, t = x_t()
    cond = conditions()
    yes, no = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        for group, keys in (("reference", ("reference",)), ("camera", ("camera",)), ("layout", ("layout",)),
                            ("boxes", ("box_corners", "box_class", "box_track", "box_mask")), ("ego", ("ego",)),
                            ("caption", ("caption_global",))):  # fmt: skip
            dropped = m(x, t, cond, drop={group: yes})
            left_out = m(x, t, {k: v for k, v in cond.items() if k not in keys})
            torch.testing.assert_close(dropped, left_out, rtol=1e-5, atol=1e-6, msg=group)
            assert (dropped - m(x, t, cond, drop={group: no})).abs().mean() > 1e-5, group
        # dropping per sample: sample 0 dropped, sample 1 kept
        mixed = m(x, t, cond, drop={"reference": torch.tensor([True, False])})
        torch.testing.assert_close(mixed[0], m(x, t, cond, drop={"reference": yes})[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mixed[1], m(x, t, cond)[1], rtol=1e-5, atol=1e-6)


def test_deterministic_and_batch_elements_independent():
    m1, m2 = pretrained_like(model(seed=3)), pretrained_like(model(seed=3))
    x, t = x_t()
    cond = conditions()
    with torch.no_grad():
        a = m1(x, t, cond)
        torch.testing.assert_close(a, m2(x, t, cond), rtol=0, atol=0)
        one = m1(x[1:], t[1:], {k: v[1:] for k, v in cond.items()})
    torch.testing.assert_close(a[1:], one, rtol=1e-5, atol=1e-6)


def test_frames_talk_through_temporal_attention():
    m = pretrained_like(model())
    x, t = x_t()
    cond = conditions()
    with torch.no_grad():
        a = m(x, t, cond)
        x2 = x.clone()
        x2[:, 2] += 1.0
        b = m(x2, t, cond)
    assert (a[:, 0] - b[:, 0]).abs().mean() > 1e-4  # frame 0 sees frame 2


def test_bad_inputs_and_configs():
    m = model()
    x, t = x_t()
    with pytest.raises(ValueError, match=r"latents must be \(b t c=4 h w\)"):
        m(x[:, :, :2], t, conditions())
    with pytest.raises(ValueError, match=r"cond\['reference'\] must have shape \(2, 3, 4, 8, 8\)"):
        m(x, t, dict(conditions(), reference=torch.zeros(2, 3, 4, 4, 4)))
    with pytest.raises(ValueError, match=r"cond\['layout'\] must have shape \(2, 3, 5, 16, 16\)"):
        m(x, t, dict(conditions(), layout=torch.zeros(2, 3, 5, 8, 8)))
    with pytest.raises(ValueError, match="unknown condition group"):
        m(x, t, conditions(), drop={"radar": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="control_depth"):
        LidarDiTConfig(4, 5, 3, depth=2, control_depth=3)
    with pytest.raises(ConfigError, match="head width"):
        LidarDiTConfig(4, 5, 3, width=30, heads=6)
    assert set(LIDAR_DIT_GROUPS) == {"reference", "layout", "camera", "boxes", "ego", "caption"}


def test_flow_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    m = LidarDiT(dit_presets.test(C, CL, CC)).train()
    cond = conditions()
    g = torch.Generator().manual_seed(5)
    x0 = cond["reference"] + 0.3 * torch.randn(cond["reference"].shape, generator=g)  # the target resembles the reference
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        gs = torch.Generator().manual_seed(100 + step % 4)
        noise = torch.randn(x0.shape, generator=gs)
        t = torch.rand(2, generator=gs)
        loss = flow_loss(m(add_noise(x0, noise, t), t, cond), velocity_target(x0, noise))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, (losses[:5], losses[-5:])
