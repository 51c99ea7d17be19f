"""FD_synth network: shapes, the frame/clip embedding paths agree, the temporal head sees frame order."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from genesis_drive.errors import ConfigError
from genesis_drive.models.evaluators.synth_features import (
    FRAME_ORDERS, SEG_CLASSES, PairMotion, SynthFeatureNet, SynthFeatureNetConfig, affine_flow_moments, block_flow,
)  # fmt: skip

TINY = SynthFeatureNetConfig(image_size=(64, 36), widths=(16, 32, 64), seg_stride=4, num_features=64, num_video_features=64,
                             temporal_width=64, motion_widths=(8, 16))  # fmt: skip
#: a very small net for the training test (16 x 8 pixels)
MICRO = SynthFeatureNetConfig(image_size=(16, 8), widths=(8, 8), seg_stride=2, num_features=8, num_video_features=8,
                              temporal_width=8, motion_widths=(8, 8))  # fmt: skip


def test_network_shapes_and_temporal_order_sensitivity():
    torch.manual_seed(0)
    net = SynthFeatureNet(TINY).eval()
    x = torch.rand(2, 4, 3, 36, 64) * 2 - 1
    with torch.no_grad():
        out = net(x)
        assert out["channel"].shape == (2, 4, 6) and out["layout"].shape == (2, 4, len(SEG_CLASSES), 9, 16)
        assert out["clip_features"].shape == (2, 64) and out["frame_features"].shape == (2, 4, 64)
        assert out["order"].shape == (2, len(FRAME_ORDERS)) and out["motion"].shape == (2, 2)
        torch.testing.assert_close(net.embed_frames(x[:, 0]), out["frame_features"][:, 0])
        torch.testing.assert_close(net.embed_clips(x), out["clip_features"])
        torch.testing.assert_close(net.order_logits(x), out["order"])
        for perm in ([3, 2, 1, 0], [1, 0, 3, 2], [0, 2, 1, 3]):
            order = torch.tensor([perm, perm])
            moved = net(x, order)
            torch.testing.assert_close(moved["frame_features"], out["frame_features"])  # frame heads see the input order
            torch.testing.assert_close(moved["clip_features"], net.embed_clips(x[:, perm]))
            # the same frames in another order: a permutation-invariant pooling would give the same vector
            assert (moved["clip_features"] - out["clip_features"]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="expects images"):
        net.embed_frames(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="at least 2 frames"):
        net.embed_clips(x[:, :1])


def test_pair_motion_tells_the_two_frames_apart():
    torch.manual_seed(0)
    pair = PairMotion(4, (8, 8)).eval()
    a, b = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    with torch.no_grad():
        assert (pair(a, b) - pair(b, a)).abs().max() > 1e-3
        assert pair(a, b).shape == (3, 16)


def _texture(h: int = 72, w: int = 128) -> torch.Tensor:
    """A smooth random grey texture (1, 1, h, w)."""
    return F.avg_pool2d(torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0)), 3, 1, 1)


@pytest.mark.parametrize("scale,dx,dy", [(1, 1, 0), (2, 4, 0), (2, 0, -2), (4, -8, 4)])
def test_block_flow_reads_a_known_shift(scale, dx, dy):
    """A texture moved by (dx, dy) pixels reads (dx, dy) / (scale radius) away from the borders
    (the soft-argmax pulls a little towards zero), and the pair swapped reads the opposite."""
    a = _texture()
    b = torch.roll(a, shifts=(dy, dx), dims=(-2, -1))
    radius = 2
    inner = (..., slice(3, -3), slice(3, -3))
    flow = block_flow(a, b, scale, radius)[inner]
    back = block_flow(b, a, scale, radius)[inner]
    assert flow.shape[1] == 3
    for k, true in ((0, dx), (1, dy)):
        got = flow[:, k].mean().item() * scale * radius
        assert abs(got - true) <= 0.15 * abs(true) + 0.1, (k, got, true)
        assert abs(back[:, k].mean().item() * scale * radius + true) <= 0.15 * abs(true) + 0.1
    assert flow[:, 2].mean() > 0.6  # the match is confident on texture
    flat = block_flow(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), 2, radius)
    assert flat[:, :2].abs().max() < 1e-4  # nothing to match: no displacement


def test_affine_flow_moments_of_known_fields():
    """Translation, expansion and rotation fields read in their own moments; reversal negates them."""
    h, w = 9, 16
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    x2, y2 = 4 * (xs**2).mean().item(), 4 * (ys**2).mean().item()
    fields = {
        "translation": (torch.full((h, w), 0.5), torch.full((h, w), -0.25), [2.0, -1.0, 0, 0, 0, 0]),
        "expansion": (xs, ys, [0, 0, x2, y2, 0, 0]),
        "rotation": (-ys, xs, [0, 0, 0, 0, -y2, x2]),
    }
    for name, (u, v, want) in fields.items():
        flow = torch.stack([u, v])[None]
        torch.testing.assert_close(affine_flow_moments(flow), torch.tensor([want]), atol=1e-5, rtol=1e-5, msg=name)
        torch.testing.assert_close(affine_flow_moments(-flow), -torch.tensor([want]), atol=1e-5, rtol=1e-5, msg=name)


def test_pair_motion_with_flow_moments():
    """flow_maps=False: the pair vector ends in the six affine moments of each scale's flow."""
    pair = PairMotion(3, (8, 8), flow_scales=(2, 4), flow_maps=False).eval()
    assert pair.out_dim == 16 + 12 and pair.net[0].in_channels == 5 * 3 + 2
    a = _texture(36, 64).expand(2, 3, 36, 64) * 2 - 1
    b = torch.roll(a, shifts=4, dims=-1)  # moved 4 px right
    with torch.no_grad():
        out, back = pair(a, b), pair(b, a)
    assert out.shape == (2, 28)
    # 4 x mean u: 4 px / (scale x radius 2) x 4 = 4 at scale 2 and 2 at scale 4, over the cells off the
    # border (the others read 0): 14 x 28 of 18 x 32 at scale 2, 5 x 12 of 9 x 16 at scale 4
    for k, want in ((16, 4.0 * 14 * 28 / (18 * 32)), (22, 2.0 * 5 * 12 / (9 * 16))):
        assert 0.8 * want < out[0, k] < 1.1 * want and -1.1 * want < back[0, k] < -0.8 * want
    # a translation neither expands nor contracts: the border cells would fake a contraction if they counted
    for k in (18, 19, 24, 25):
        assert abs(out[0, k]) < 0.1 and abs(back[0, k]) < 0.1


def test_pair_motion_sees_the_flow_channels():
    """With flow_scales the pair vector depends on the block-matching flow: the same pair gives a
    different vector once the flow channels' weights are changed, and the pair swapped differs."""
    torch.manual_seed(0)
    pair = PairMotion(3, (8, 8), flow_scales=(2,)).eval()
    assert pair.net[0].in_channels == 5 * 3 + 2 + 3
    a = _texture(16, 32).expand(2, 3, 16, 32) * 2 - 1
    b = torch.roll(a, shifts=2, dims=-1)
    with torch.no_grad():
        before = pair(a, b)
        assert (before - pair(b, a)).abs().max() > 1e-3
        pair.net[0].weight[:, -3:] += 1.0
        assert (pair(a, b) - before).abs().max() > 1e-3


def _moving_squares(n: int, gen: torch.Generator) -> torch.Tensor:
    """Clips (n, 4, 3, 8, 16) in [-1, 1]: a bright 2x2 square moving 2 px right per frame over noise."""
    x = torch.rand(n, 4, 3, 8, 16, generator=gen) * 0.4 - 1
    for i in range(n):
        x0 = int(torch.randint(0, 8, (1,), generator=gen))
        y0 = int(torch.randint(0, 6, (1,), generator=gen))
        for t in range(4):
            x[i, t, :, y0 : y0 + 2, x0 + 2 * t : x0 + 2 * t + 2] = 1.0
    return x


@pytest.mark.parametrize("flow", [{}, {"flow_scales": (2,), "flow_radius": 1}, {"flow_scales": (2,), "flow_radius": 1, "flow_maps": False}])
def test_order_head_learns_the_direction_of_motion(flow):
    """Trained on squares moving right (in order) or left (reversed), the order head tells held-out
    clips apart; every frame set occurs in both orders, so no order-blind model can beat chance."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = SynthFeatureNet(replace(MICRO, **flow))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(50):
        x = _moving_squares(16, gen)
        kind = torch.randint(0, 2, (16,), generator=gen)
        x = torch.where(kind[:, None, None, None, None] == 1, x.flip(1), x)
        loss = F.cross_entropy(net.order_logits(x), kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = _moving_squares(32, gen)
    with torch.no_grad():
        fwd, rev = net.order_logits(x).argmax(1), net.order_logits(x.flip(1)).argmax(1)
    accuracy = ((fwd == 0).float().mean() + (rev == 1).float().mean()) / 2
    assert accuracy > 0.9


def test_config_checks():
    with pytest.raises(ConfigError, match="seg_stride"):
        SynthFeatureNetConfig(widths=(16, 32), seg_stride=8)
    with pytest.raises(ConfigError, match="motion_widths"):
        SynthFeatureNetConfig(widths=(16, 32), seg_stride=4, motion_widths=())
    with pytest.raises(ConfigError, match="divisible"):
        SynthFeatureNetConfig(image_size=(60, 36), widths=(16, 32, 64), seg_stride=8)
    with pytest.raises(ConfigError, match="flow_scales"):
        SynthFeatureNetConfig(image_size=(64, 36), widths=(16, 32, 64), seg_stride=4, flow_scales=(8,))
    with pytest.raises(ConfigError, match="flow_radius"):
        SynthFeatureNetConfig(image_size=(64, 36), widths=(16, 32, 64), seg_stride=4, flow_scales=(2,), flow_radius=0)


def test_multiview_order_head_paths_agree_and_read_views_by_position():
    torch.manual_seed(0)
    x = torch.rand(2, 6, 4, 3, 36, 64) * 2 - 1
    plain = SynthFeatureNet(TINY).eval()
    joint = SynthFeatureNet(replace(TINY, joint_order=4)).eval()
    with torch.no_grad():
        # without the head: the sum over the views of the per-view log-probabilities
        votes = plain.order_logits(x.flatten(0, 1)).log_softmax(-1).reshape(2, 6, -1).sum(1)
        torch.testing.assert_close(plain.multiview_order_logits(x), votes)
        ident = torch.arange(4).expand(12, 4)
        assert "order_joint" not in plain(x.flatten(0, 1), multiview_order=ident)
        out = joint(x.flatten(0, 1), multiview_order=ident)
        torch.testing.assert_close(joint.multiview_order_logits(x), out["order_joint"])
        assert out["order_joint"].shape == (2, len(FRAME_ORDERS)) and "order_joint" not in joint(x.flatten(0, 1))
        # its own frame order, apart from the per-view heads': reversed here, the per-view outputs as recorded
        rev = joint(x.flatten(0, 1), multiview_order=ident.flip(1))
        torch.testing.assert_close(rev["order_joint"], joint.multiview_order_logits(x.flip(2)))
        torch.testing.assert_close(rev["order"], out["order"])
        # the head reads each view at its place: the same six clips in another view order answer differently
        assert (joint.multiview_order_logits(x[:, [3, 4, 5, 0, 1, 2]]) - out["order_joint"]).abs().max() > 1e-4
    assert {k for k in joint.state_dict()} - {k for k in plain.state_dict()} == {
        k for k in joint.state_dict() if k.startswith(("joint_view.", "joint_head."))}  # old checkpoints load without it
    with pytest.raises(ValueError, match="multi-view clips"):
        joint.multiview_order_logits(x[:, :5])
    with pytest.raises(ConfigError, match="joint_order"):
        replace(TINY, joint_order=-1)


def test_multiview_order_head_learns_what_no_per_view_vote_can():
    """Multi-view clips whose front view (0) moves right and back view (3) moves left when in order
    (the other views: noise). One view clip alone is ambiguous: each direction occurs in order in
    one view and reversed in the other, and this net cannot tell the views apart (no view gate), so
    every per-view answer, and any vote over them, is at chance. The multi-view head reads the
    views at their places and learns it."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = SynthFeatureNet(replace(MICRO, joint_order=8))

    def clips(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(n, 6, 4, 3, 8, 16, generator=gen) * 0.4 - 1
        x[:, 0], x[:, 3] = _moving_squares(n, gen), _moving_squares(n, gen).flip(-1)
        kind = torch.randint(0, 2, (n,), generator=gen)
        return torch.where(kind[:, None, None, None, None, None] == 1, x.flip(2), x), kind

    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(60):
        x, kind = clips(8)
        loss = F.cross_entropy(net.multiview_order_logits(x), kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, kind = clips(64)
    with torch.no_grad():
        accuracy = (net.multiview_order_logits(x).argmax(1) == kind).float().mean()
    assert accuracy > 0.9
