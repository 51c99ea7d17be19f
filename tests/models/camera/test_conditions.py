import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.camera.conditions import (
    CONDITION_GROUPS,
    ConditionEncoder,
    ConditionEncoderConfig,
    PoseNet,
    drop_token_groups,
    latent_frame_groups,
    random_drop,
    sinusoidal_index,
)

from .helpers import CONFIG, conditions

ENC = ConditionEncoderConfig(dim=32, num_bands=3, max_range=CONFIG.tokens.max_range)


@pytest.fixture(scope="module")
def cond():
    return conditions(batch=2, num_frames=9)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return ConditionEncoder(ENC).eval()


def test_latent_frame_groups():
    index, valid = latent_frame_groups(9, 4)
    assert index.tolist() == [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]]
    assert valid.tolist() == [[True, False, False, False], [True] * 4, [True] * 4]
    index, valid = latent_frame_groups(1, 4)
    assert index.tolist() == [[0, 0, 0, 0]] and valid.tolist() == [[True, False, False, False]]
    with pytest.raises(ValueError, match="4 k \\+ 1"):
        latent_frame_groups(8, 4)


def test_sinusoidal_index_padding_and_distinct():
    e = sinusoidal_index(torch.tensor([-1, 0, 1, 7]), 16)
    assert (e[0] == 0).all() and e[1, :8].eq(1).all() and not torch.allclose(e[2], e[3])


def test_context_layout_and_masks(encoder, cond):
    ctx, mask = encoder(cond, num_latent_frames=3)
    n, p, c = 6, 2, 4
    length = 4 + 2 + c * (1 + n + p)
    assert ctx.shape == (2, 6, 3, length, 32) and mask.shape == (2, 6, 3, length)
    assert mask[..., :4].all()  # null tokens always attended
    # caption: sample 0 has a global caption, sample 1 not; every other view has a camera caption
    assert mask[0, :, :, 4].all() and not mask[1, :, :, 4].any()
    assert mask[:, ::2, :, 5].all() and not mask[:, 1::2, :, 5].any()
    # ego: latent frame 0 has one frame, the others four
    ego = mask[..., 6:10]
    assert ego[:, :, 0].tolist() == [[[True, False, False, False]] * 6] * 2 and ego[:, :, 1:].all()
    # boxes: the 7 classed boxes of the scene fill the 6 slots of every real frame
    boxes = mask[..., 10 : 10 + c * n].unflatten(-1, (c, n))
    assert boxes[:, :, 1:].all() and boxes[:, :, 0, 0].all() and not boxes[:, :, 0, 1:].any()
    # pedestrians: one pedestrian, seen only by the views whose ped_view_mask says so
    peds = mask[..., 10 + c * n :].unflatten(-1, (c, p))
    seen = cond["ped_view_mask"][:, :, 1:5, 0]  # b v frames 1..4 -> latent frame 1
    assert torch.equal(peds[:, :, 1, :, 0], seen) and not peds[..., 1].any()
    assert seen.any() and not seen.all()


def test_dropping_a_group_masks_it_and_nothing_else(encoder, cond):
    ctx, mask = encoder(cond, 3)
    drop = {g: torch.tensor([False, False]) for g in CONDITION_GROUPS}
    drop["boxes"] = torch.tensor([True, False])
    ctx_d, mask_d = encoder(cond, 3, drop)
    assert torch.equal(ctx, ctx_d)  # dropout acts through the mask only
    box = slice(10, 34)
    assert not mask_d[0, ..., box].any() and torch.equal(mask_d[1], mask[1])
    other = torch.ones(mask.shape[-1], dtype=torch.bool)
    other[box] = False
    assert torch.equal(mask_d[0][..., other], mask[0][..., other])
    masks = {"caption": torch.ones(3, 2, dtype=torch.bool), "ego": torch.ones(3, 4, dtype=torch.bool)}
    out = drop_token_groups(masks, {"ego": torch.tensor([True, False, True])})
    assert out["caption"].all() and out["ego"].sum(1).tolist() == [0, 4, 0]
    with pytest.raises(ValueError, match="unknown condition group"):
        drop_token_groups(masks, {"text": torch.tensor([True, False, True])})


def test_per_view_pedestrian_tokens_depend_on_their_view_only(encoder, cond):
    tokens, _ = encoder.group_tokens(cond, 3)
    changed = dict(cond)
    changed["ped_keypoints_2d"] = cond["ped_keypoints_2d"].clone()
    changed["ped_keypoints_2d"][:, 5] += 0.05
    tokens2, _ = encoder.group_tokens(changed, 3)
    same = [0, 1, 2, 3, 4]
    assert torch.equal(tokens["pedestrians"][:, same], tokens2["pedestrians"][:, same])
    visible = cond["ped_visible_2d"][:, 5].any()
    assert visible and not torch.allclose(tokens["pedestrians"][:, 5], tokens2["pedestrians"][:, 5])
    assert torch.equal(tokens["boxes"], tokens2["boxes"])


def test_posenet_ignores_invisible_keypoints():
    torch.manual_seed(0)
    net = PoseNet(ENC)
    kp = torch.rand(3, 17, 2)
    depth = torch.rand(3, 17) * 20
    vis = torch.rand(3, 17) > 0.5
    track = torch.tensor([0, 1, -1])
    a = net(kp, depth, vis, track)
    kp2, depth2 = kp.clone(), depth.clone()
    kp2[~vis] = torch.rand(int((~vis).sum()), 2)
    depth2[~vis] = 99.0
    assert torch.allclose(a, net(kp2, depth2, vis, track))
    kp2[0, vis[0].nonzero()[0, 0]] += 0.1
    assert not torch.allclose(a[0], net(kp2, depth2, vis, track)[0])


def test_random_drop():
    g = torch.Generator().manual_seed(0)
    d = random_drop(1000, {"caption": 1.0, "boxes": 0.3}, g)
    assert set(d) == set(CONDITION_GROUPS)
    assert d["caption"].all() and not d["layout"].any() and 250 < int(d["boxes"].sum()) < 350
    with pytest.raises(ConfigError, match="unknown"):
        random_drop(2, {"text": 0.1})
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        random_drop(2, {"ego": 1.5})
