"""Depth network: output scales with the focal length, stays in its range, checks its input."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.evaluators.depth import DepthNet, DepthNetConfig

W, H = 64, 36


def test_depthnet_focal_scaling_and_range():
    torch.manual_seed(0)
    net = DepthNet(DepthNetConfig(image_size=(W, H), widths=(8, 16, 16), min_depth=1.0, max_depth=50.0)).eval()
    x = torch.rand(2, 3, H, W) * 2 - 1
    fx = torch.tensor([40.0, 80.0])
    with torch.no_grad():
        d = net(x[:1].expand(2, -1, -1, -1), fx)
    assert d.shape == (2, 1, H // 2, W // 2)
    torch.testing.assert_close(d[1], 2 * d[0])
    ref = net.cfg.focal_ref_ratio * W
    assert float(d[0].min()) >= 1.0 * 40 / ref - 1e-5 and float(d[0].max()) <= 50.0 * 40 / ref + 1e-4
    with pytest.raises(ValueError, match="DepthNet expects"):
        net(torch.zeros(1, 3, H + 2, W), fx[:1])
    with pytest.raises(ConfigError, match="divisible"):
        DepthNetConfig(image_size=(60, 36), widths=(8, 16, 16))
