"""Preprocessing wrappers: value ranges, resize modes (incl. TF1 legacy bilinear), layouts, crops."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genesis_drive.eval.extractors import (
    ImageFeatureExtractor,
    VideoFeatureExtractor,
    resize_images,
    to_unit_float,
)


class Recorder(nn.Module):
    """Returns the per-sample mean and remembers its input."""

    num_features = 1

    def __init__(self):
        super().__init__()
        self.seen = None

    def forward(self, x):
        self.seen = x.clone()
        return x.flatten(1).mean(1, keepdim=True)


def test_value_ranges():
    x = torch.tensor([[0, 255]], dtype=torch.uint8).reshape(1, 1, 1, 2).expand(1, 3, 1, 2)
    rec = Recorder()
    ImageFeatureExtractor(rec, size=4)(x)
    assert rec.seen.shape == (1, 3, 4, 4)
    assert rec.seen.min() == -1.0 and rec.seen.max() == 1.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_unit_float(torch.full((1, 3, 2, 2), 2.0))
    with pytest.raises(ValueError, match="uint8"):
        to_unit_float(torch.zeros(1, 3, 2, 2, dtype=torch.int32))


def test_resize_modes():
    x = torch.rand(2, 3, 10, 14)
    torch.testing.assert_close(resize_images(x, (7, 5), "bilinear"), F.interpolate(x, size=(7, 5), mode="bilinear", align_corners=False))
    # TF1 legacy bilinear: source coordinate = dst * in / out, no half-pixel shift, clamped at the edge
    row = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2)
    up = resize_images(row, (1, 4), "bilinear_tf1")
    torch.testing.assert_close(up.flatten(), torch.tensor([0.0, 0.5, 1.0, 1.0]))
    down = resize_images(torch.arange(4.0).reshape(1, 1, 1, 4), (1, 2), "bilinear_tf1")
    torch.testing.assert_close(down.flatten(), torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match="resize mode"):
        resize_images(x, (3, 3), "lanczos")


def test_video_layout_and_center_crop():
    # frame t is uniformly t / 10; the left 20 % of each frame is black
    b, t = 2, 5
    x = torch.arange(t, dtype=torch.float32).div(10).reshape(1, t, 1, 1, 1).expand(b, t, 3, 20, 40).clone()
    x[..., :8] = 0
    rec = Recorder()
    VideoFeatureExtractor(rec, size=8, crop="center", mode="nearest")(x)
    assert rec.seen.shape == (b, 3, t, 8, 8)  # (b c t h w) for the I3D
    # centre crop of the 40-wide frame (scaled to 16 wide) drops the black left part
    for i in range(t):
        torch.testing.assert_close(rec.seen[:, :, i], torch.full((b, 3, 8, 8), 2 * i / 10 - 1))
    VideoFeatureExtractor(rec, size=8, crop="none", mode="nearest")(x)
    assert (rec.seen[:, :, 1, :, 0] == -1).all()  # squashed: the black stripe survives on the left
    with pytest.raises(ValueError, match=r"\(b, t, 3, h, w\)"):
        VideoFeatureExtractor(rec)(torch.rand(2, 3, 8, 8))
