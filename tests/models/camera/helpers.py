"""Batched camera conditions for the model tests: the condition transform run on the hand-built
layout test clip (``tests/layout/scene.py``), with random caption embeddings."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import default_collate

from genesis_drive.layout.bev import BEV_PRESETS
from genesis_drive.layout.conditions import ConditionConfig, ConditionTransform
from genesis_drive.layout.tokens import TokenConfig

from ...layout.scene import make_clip

#: image size of the test conditions: 32 x 24 pixels (a 4 x 3 latent with an 8x VAE)
IMAGE_SIZE = (32, 24)
CONFIG = ConditionConfig(image_size=IMAGE_SIZE, tokens=TokenConfig(max_boxes=6, num_bands=3), bev=BEV_PRESETS["tiny"], max_pedestrians=2)


@lru_cache(maxsize=4)
def _sample(num_frames: int, seed: int) -> dict:
    clip = make_clip(num_frames=num_frames, width=160, height=90)
    rng = np.random.default_rng(seed)
    caps = {"global": rng.normal(size=384)} | {c: rng.normal(size=384) for c in clip.views[::2]}
    return ConditionTransform(CONFIG)(clip, caps)


def conditions(batch: int = 2, num_frames: int = 9) -> dict[str, torch.Tensor]:
    """A batch of ``batch`` condition dicts (sample i with caption seed i; sample 1 without a
    global caption), ``num_frames`` camera frames."""
    items = []
    for i in range(batch):
        s = dict(_sample(num_frames, i))
        if i == 1:
            s["caption_global_mask"] = torch.tensor(False)
            s["caption_global"] = torch.zeros(384)
        items.append(s)
    return default_collate(items)
