import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from genesis_drive.data.schema import DETECTION_CLASSES
from genesis_drive.errors import ConfigError
from genesis_drive.layout.tokens import TOKEN_PRESETS, TokenConfig, box_tokens, ego_tokens, fourier_features, token_dims

from .scene import make_clip

CFG = TokenConfig(max_boxes=10, num_bands=4, max_range=64.0)
TRACKED = ("car-ahead", "truck-oncoming", "bus-behind", "ped-1", "cone-1", "barrier-1", "bike-1")  # bin-1 has no class


def test_fourier_features_layout_and_inverse():
    x = torch.tensor([[-50.0, 0.0, 12.5]])
    f = fourier_features(x, num_bands=3, max_range=64.0)
    assert f.shape == (1, 3 * 7)
    xn = x / 64.0
    assert torch.allclose(f[0, :3], xn[0])
    sin, cos = f[0, 3:12].reshape(3, 3), f[0, 12:21].reshape(3, 3)  # (coordinate, band)
    for j in range(3):
        assert torch.allclose(sin[:, j], torch.sin(math.pi * 2**j * xn[0]))
        assert torch.allclose(cos[:, j], torch.cos(math.pi * 2**j * xn[0]))
    assert torch.allclose(torch.atan2(sin[:, 0], cos[:, 0]) / math.pi * 64.0, x[0], atol=1e-4)


def test_box_token_shapes_and_padding(clip):
    tok = box_tokens(clip, CFG)
    d_box, _ = token_dims(CFG)
    assert d_box == 24 * 9
    assert tok["box_corners"].shape == (3, 10, 8, 3) and tok["box_corners"].dtype == torch.float32
    assert tok["box_features"].shape == (3, 10, d_box)
    assert tok["box_class"].shape == tok["box_track"].shape == tok["box_mask"].shape == (3, 10)
    assert tok["box_class"].dtype == torch.int64 and tok["box_mask"].dtype == torch.bool
    mask = tok["box_mask"]
    assert mask.sum(dim=1).tolist() == [7, 7, 7]  # 8 boxes, the bin has no detection class
    assert torch.all(mask[:, :7]) and not mask[:, 7:].any()  # real boxes first
    assert torch.all(tok["box_features"][~mask] == 0) and torch.all(tok["box_corners"][~mask] == 0)
    assert torch.all(tok["box_class"][~mask] == -1) and torch.all(tok["box_track"][~mask] == -1)


def test_box_tokens_reconstruct_corners_classes_and_tracks(clip):
    tok = box_tokens(clip, CFG)
    for t in range(clip.num_frames):
        boxes = sorted((b for b in clip.boxes[t] if b.detection_class), key=lambda b: np.linalg.norm(b.center))
        for i, box in enumerate(boxes):
            assert np.allclose(tok["box_corners"][t, i].numpy(), box.corners(), atol=1e-5)
            feats = tok["box_features"][t, i]
            assert np.allclose(feats[:24].numpy() * CFG.max_range, box.corners().reshape(-1), atol=1e-4)
            sin0, cos0 = feats[24:120].reshape(24, 4)[:, 0], feats[120:].reshape(24, 4)[:, 0]
            rec = torch.atan2(sin0, cos0) / math.pi * CFG.max_range
            assert np.allclose(rec.numpy(), box.corners().reshape(-1), atol=1e-3)
            assert DETECTION_CLASSES[tok["box_class"][t, i]] == box.detection_class
            # tracks are numbered by first appearance in frame 0 (list order of the scene)
            assert tok["box_track"][t, i] == TRACKED.index(box.instance_token)
    assert np.linalg.norm(tok["box_corners"][0, 0].mean(0).numpy()) < np.linalg.norm(tok["box_corners"][0, 6].mean(0).numpy())


def test_max_boxes_keeps_the_nearest(clip):
    tok = box_tokens(clip, TokenConfig(max_boxes=3, num_bands=2))
    assert tok["box_mask"].all()
    nearest = sorted((b for b in clip.boxes[0] if b.detection_class), key=lambda b: np.linalg.norm(b.center))[:3]
    assert [TRACKED[i] for i in tok["box_track"][0].tolist()] == [b.instance_token for b in nearest]


def test_ego_tokens_and_collate():
    clip = make_clip(num_frames=4, width=64, height=36, ego_speed=6.0)
    ego = ego_tokens(clip, CFG)
    _, d_ego = token_dims(CFG)
    assert ego["ego_trajectory"].shape == (4, 3) and ego["ego_features"].shape == (4, d_ego) == (4, 20)
    assert torch.allclose(ego["ego_trajectory"][:, 0], torch.tensor([0.0, 0.5, 1.0, 1.5]))
    assert torch.allclose(ego["ego_features"][:, :2] * CFG.max_range, ego["ego_trajectory"][:, :2])
    assert torch.allclose(ego["ego_features"][:, -2:], torch.tensor([[1.0, 0.0]] * 4))
    batch = default_collate([{**box_tokens(clip, CFG), **ego}, {**box_tokens(clip, CFG), **ego}])
    assert batch["box_features"].shape == (2, 4, 10, token_dims(CFG)[0])  # b t n d
    assert batch["ego_features"].shape == (2, 4, 20)


def test_config_errors_and_presets():
    with pytest.raises(ConfigError, match="max_boxes"):
        TokenConfig(max_boxes=0)
    with pytest.raises(ConfigError, match="unknown class"):
        TokenConfig(classes=("van",))
    assert token_dims(TOKEN_PRESETS["paper"]) == (24 * 17, 2 * 17 + 2)
