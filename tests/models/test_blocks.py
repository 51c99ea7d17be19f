"""Shared conv blocks: input scaling by hand, encoder strides and shapes, residual skip."""

from __future__ import annotations

import pytest
import torch

from genesis_drive.errors import ConfigError
from genesis_drive.models.blocks import ConvBlock, ImageEncoder, encoder_strides, group_count, to_model_input


def test_to_model_input_values():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    torch.testing.assert_close(to_model_input(x), torch.tensor([-1.0, -0.6, 1.0]))
    torch.testing.assert_close(to_model_input(torch.tensor([0.0, 0.25, 1.0])), torch.tensor([-1.0, -0.5, 1.0]))
    with pytest.raises(ValueError, match="must lie in"):
        to_model_input(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(torch.zeros(2, dtype=torch.int32))


def test_encoder_strides_and_shapes():
    assert encoder_strides((8, 16, 32)) == (2, 4, 8)
    assert group_count(12) == 4 and group_count(64) == 8 and group_count(3) == 1
    enc = ImageEncoder((8, 16, 32))
    feats = enc(torch.zeros(2, 3, 32, 48))
    assert [tuple(f.shape) for f in feats] == [(2, 8, 16, 24), (2, 16, 8, 12), (2, 32, 4, 6)]
    assert enc.strides == (2, 4, 8)
    with pytest.raises(ConfigError, match="positive"):
        ImageEncoder(())


def test_conv_block_skip():
    torch.manual_seed(0)
    same = ConvBlock(8, 8)
    assert isinstance(same.skip, torch.nn.Identity)
    down = ConvBlock(8, 16, stride=2)
    assert tuple(down(torch.randn(1, 8, 10, 10)).shape) == (1, 16, 5, 5)
    # with the residual branch zeroed the block is silu(x) for an identity skip
    torch.nn.init.zeros_(same.conv2.weight)
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(same(x), torch.nn.functional.silu(x))
