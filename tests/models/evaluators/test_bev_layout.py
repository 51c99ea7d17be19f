"""BEV layout network: the lift (hand-built geometry), the grid orientation, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.layout.bev import BevGrid
from genesis_drive.models.evaluators.bev_layout import BevLayoutNet, BevLayoutNetConfig, bev_points, lift_features, project_to_views

W, H = 64, 36
K = np.array([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]])
CAM_TO_FWD = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)


def camera(yaw: float, x: float = 1.0, z: float = 1.5) -> np.ndarray:
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ CAM_TO_FWD
    m[:3, 3] = [x * np.cos(yaw), x * np.sin(yaw), z]
    return m


def test_lift_samples_the_projected_pixel_and_averages_views():
    # ego (11, 2, 1.5) seen by a forward camera at (1, 0, 1.5): camera (-2, 0, 10) -> u = 50 * -0.2 + 32 = 22, v = 18
    pts = torch.tensor([[11.0, 2.0, 1.5], [-9.0, 0.0, 1.5], [11.0, 30.0, 1.5], [-11.0, -2.0, 1.5]])
    k = torch.from_numpy(np.stack([K, K])).float()[None]
    c2e = torch.from_numpy(np.stack([camera(0.0), camera(np.pi)])).float()[None]
    uv, valid = project_to_views(pts, k, c2e, (W, H), near=0.1)
    assert uv.shape == (1, 2, 4, 2)
    torch.testing.assert_close(uv[0, 0, 0], torch.tensor([22.0, 18.0]))
    # back camera at (-1, 0, 1.5) facing -x: ego (-11, -2) -> camera (-2, 0, 10), the same pixel
    torch.testing.assert_close(uv[0, 1, 3], torch.tensor([22.0, 18.0]))
    assert valid[0, 0].tolist() == [True, False, False, False]  # behind / outside / behind
    assert valid[0, 1].tolist() == [False, True, False, True]
    # stride-2 feature maps whose channels hold the image-pixel coordinates of their cell centres
    fu = (torch.arange(W // 2) + 0.5) * 2
    fv = (torch.arange(H // 2) + 0.5) * 2
    grid = torch.stack([fu[None].expand(H // 2, -1), fv[:, None].expand(-1, W // 2)])  # 2 h w
    feats = torch.stack([grid, grid + 100.0])[None]  # b v c h w; view 1 offset by 100
    lifted = lift_features(feats, uv, valid, (W, H))
    torch.testing.assert_close(lifted[0, :, 0], torch.tensor([22.0, 18.0]))  # only view 0 sees it: bilinear = exact
    torch.testing.assert_close(lifted[0, :, 3], torch.tensor([122.0, 118.0]))  # only view 1
    torch.testing.assert_close(lifted[0, :, 2], torch.zeros(2))  # nobody sees it
    # a point seen by both views gets the mean
    both = torch.tensor([[0.0, 0.0, 1.5]])
    k2 = torch.from_numpy(np.stack([K, K])).float()[None]
    c2e_wide = torch.from_numpy(np.stack([camera(0.0, x=-5.0), camera(np.pi, x=-5.0)])).float()[None]
    uv2, valid2 = project_to_views(both, k2, c2e_wide, (W, H), 0.1)
    assert valid2.all()
    torch.testing.assert_close(lift_features(feats, uv2, valid2, (W, H))[0, :, 0], torch.tensor([32.0 + 50.0, 18.0 + 50.0]))


def test_bev_points_follow_the_raster_orientation():
    grid = BevGrid((-4.0, 4.0), (-2.0, 2.0), 1.0)
    pts = bev_points(grid, (0.0, 1.5))
    assert pts.shape == (2, 8, 4, 3)
    np.testing.assert_allclose(pts[0, 0, 0], [3.5, 1.5, 0.0])  # row 0 far front, column 0 far left
    np.testing.assert_allclose(pts[1, 7, 3], [-3.5, -1.5, 1.5])


def test_every_parameter_takes_part():
    """Unused parameters would break resuming (no optimizer state) and DDP: deeper encoder stages are
    added top-down to the lifted level, and every BEV level, context block and head gets a gradient."""
    with pytest.raises(ConfigError, match="one of the encoder strides"):
        BevLayoutNetConfig(widths=(16, 32, 64), feature_stride=16)
    with pytest.raises(ConfigError, match="must divide by 2\\*\\*model.bev_levels = 4"):
        BevLayoutNetConfig(bev_range=9.0, bev_resolution=1.0, bev_levels=2)  # 18 cells
    with pytest.raises(ConfigError, match="bev_levels must be >= 1"):
        BevLayoutNetConfig(bev_levels=0)
    k = torch.from_numpy(np.stack([K, K])).float()[None]
    c2e = torch.from_numpy(np.stack([camera(0.0), camera(np.pi)])).float()[None]
    for levels, dilations, stride in ((1, (), 4), (2, (2, 4), 2)):
        torch.manual_seed(0)
        cfg = BevLayoutNetConfig(image_size=(W, H), views=("CAM_FRONT", "CAM_BACK"), widths=(8, 16), feature_stride=stride, feature_dim=8,
                                 heights=(0.0, 1.0), bev_range=8.0, bev_resolution=1.0, bev_width=8, bev_levels=levels,
                                 bev_dilations=dilations)  # fmt: skip
        net = BevLayoutNet(cfg)
        assert len(net.top_down) == (1 if stride == 2 else 0) and len(net.bev_down) == levels and len(net.bev_context) == len(dilations)
        out = net(torch.rand(1, 2, 3, H, W) * 2 - 1, k, c2e)
        assert out.shape == (1, 5, 16, 16)
        out.square().mean().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bev_context_reaches_along_the_rays():
    """The BEV U-Net with dilated context sees further than the single-level net: the lifted cells
    that move one output cell's logits noticeably (> 1% of the strongest gradient; GroupNorm makes
    every cell move it a little) span more rows (receptive field in cells)."""
    reach = {}
    for levels, dilations in ((1, ()), (2, (2, 4))):
        torch.manual_seed(0)
        cfg = BevLayoutNetConfig(image_size=(W, H), views=("CAM_FRONT",), widths=(8, 16), feature_stride=4, feature_dim=4,
                                 heights=(0.0,), bev_range=32.0, bev_resolution=1.0, bev_width=8, bev_levels=levels,
                                 bev_dilations=dilations)  # fmt: skip
        net = BevLayoutNet(cfg).eval()
        lifted = torch.zeros(1, 4, 64, 64, requires_grad=True)
        net.decode(lifted)[0, :, 32, 32].sum().backward()
        g = lifted.grad[0].abs().sum(0).amax(1)  # per row
        rows = torch.nonzero(g > 0.01 * g.max()).flatten()
        reach[levels] = int(rows.max() - rows.min())
    assert reach[1] <= 30 and reach[2] >= 2 * reach[1]
