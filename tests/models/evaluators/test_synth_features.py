"""FD_synth network: shapes, the frame/clip embedding paths agree, the temporal head sees frame order."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.evaluators.synth_features import SEG_CLASSES, SynthFeatureNet, SynthFeatureNetConfig

TINY = SynthFeatureNetConfig(image_size=(64, 36), widths=(16, 32, 64), seg_stride=4, num_features=64, num_video_features=64, temporal_width=64)


def test_network_shapes_and_temporal_order_sensitivity():
    torch.manual_seed(0)
    net = SynthFeatureNet(TINY).eval()
    x = torch.rand(2, 3, 3, 36, 64) * 2 - 1
    with torch.no_grad():
        out = net(x)
        assert out["channel"].shape == (2, 3, 6) and out["layout"].shape == (2, 3, len(SEG_CLASSES), 9, 16)
        assert out["clip_features"].shape == (2, 64) and out["frame_features"].shape == (2, 3, 64)
        torch.testing.assert_close(net.embed_frames(x[:, 0]), out["frame_features"][:, 0])
        torch.testing.assert_close(net.embed_clips(x), out["clip_features"])
        rev = torch.tensor([[2, 1, 0], [2, 1, 0]])
        shuffled = net(x, rev)
        torch.testing.assert_close(shuffled["frame_features"], out["frame_features"])  # frame heads see the input order
        torch.testing.assert_close(shuffled["clip_features"], net.embed_clips(x.flip(1)))
        assert not torch.allclose(shuffled["clip_features"], out["clip_features"])
    with pytest.raises(ValueError, match="expects images"):
        net.embed_frames(torch.zeros(1, 3, 32, 32))


def test_config_checks():
    with pytest.raises(ConfigError, match="seg_stride"):
        SynthFeatureNetConfig(widths=(16, 32), seg_stride=8)
    with pytest.raises(ConfigError, match="divisible"):
        SynthFeatureNetConfig(image_size=(60, 36), widths=(16, 32, 64), seg_stride=8)
