"""Box and ego-trajectory tokens of a clip (torch tensors for cross-attention conditions).

Shapes use einops names: ``t`` frames, ``n`` box slots (``max_boxes``), ``d`` features. One clip
gives ``t n ...`` tensors; ``torch.utils.data.default_collate`` of several clips' dicts gives
``b t n ...``.

Box tokens (:func:`box_tokens`), per frame, boxes in the ego frame of that frame:

* ``box_corners`` (t n 8 3) float32: the 8 corners, metres, :meth:`Box3D.corners` order;
* ``box_features`` (t n d_box) float32: :func:`fourier_features` of the 24 corner coordinates,
  ``d_box = 24 * (1 + 2 * num_bands)``;
* ``box_class`` (t n) int64: index into ``classes``; ``box_track`` (t n) int64: the box's track,
  an index within the clip (instances numbered by first appearance: frame, then list order);
* ``box_mask`` (t n) bool: True for real boxes. Padding slots hold zeros in the float tensors
  and -1 in ``box_class`` / ``box_track``.

Slots are filled nearest-first (distance of the box centre from the ego origin); boxes beyond
``max_boxes`` in a frame (the farthest) are left out. Boxes whose category has no detection class
in ``classes`` are left out.

Ego tokens (:func:`ego_tokens`): ``ego_trajectory`` (t 3) float32 ``x, y, yaw`` of each frame's
ego in the frame-0 ego frame (metres, radians) and ``ego_features`` (t d_ego) float32 =
``fourier_features(x, y)`` then ``cos(yaw), sin(yaw)``, ``d_ego = 2 * (1 + 2 * num_bands) + 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.schema import DETECTION_CLASSES, Clip
from ..errors import ConfigError

__all__ = ["TokenConfig", "TOKEN_PRESETS", "fourier_features", "box_tokens", "ego_tokens", "token_dims"]


@dataclass(frozen=True)
class TokenConfig:
    """max_boxes: box slots per frame. num_bands: Fourier frequency bands. max_range: the
    coordinate scale R in metres (coordinates are divided by R; the lowest band is unambiguous for
    |x| < R). classes: detection classes kept, in class-id order."""

    max_boxes: int = 64
    num_bands: int = 6
    max_range: float = 64.0
    classes: tuple[str, ...] = DETECTION_CLASSES

    def __post_init__(self) -> None:
        if self.max_boxes < 1 or self.num_bands < 1 or not self.max_range > 0:
            raise ConfigError(
                f"TokenConfig: max_boxes and num_bands must be >= 1 and max_range > 0 m, got "
                f"{self.max_boxes}, {self.num_bands}, {self.max_range}"
            )
        bad = [c for c in self.classes if c not in DETECTION_CLASSES]
        if bad:
            raise ConfigError(f"TokenConfig.classes: unknown class(es) {bad}; expected names from {DETECTION_CLASSES}")


#: Named token configurations.
TOKEN_PRESETS: dict[str, TokenConfig] = {
    "tiny": TokenConfig(max_boxes=16, num_bands=4, max_range=64.0),
    "paper": TokenConfig(max_boxes=64, num_bands=8, max_range=102.4),
}


def fourier_features(x: torch.Tensor, num_bands: int, max_range: float) -> torch.Tensor:
    """Fourier features of coordinates ``x`` (... k), metres -> (... k*(1 + 2*num_bands)).

    With ``xn = x / max_range``: ``[xn (k), sin(pi 2^j xn) (k, bands), cos(pi 2^j xn) (k, bands)]``
    flattened in that order (coordinate-major inside the sin and cos blocks), j = 0..bands-1.
    """
    xn = x / max_range
    freqs = math.pi * (2.0 ** torch.arange(num_bands, dtype=x.dtype, device=x.device))
    ang = xn[..., None] * freqs  # (... k bands)
    return torch.cat([xn, torch.sin(ang).flatten(-2), torch.cos(ang).flatten(-2)], dim=-1)


def token_dims(config: TokenConfig) -> tuple[int, int]:
    """(d_box, d_ego): feature sizes of :func:`box_tokens` and :func:`ego_tokens`."""
    per = 1 + 2 * config.num_bands
    return 24 * per, 2 * per + 2


def box_tokens(clip: Clip, config: TokenConfig = TokenConfig()) -> dict[str, torch.Tensor]:
    """Box tokens of every frame of ``clip`` (see the module docstring for keys and shapes)."""
    t, n = clip.num_frames, config.max_boxes
    corners = np.zeros((t, n, 8, 3), dtype=np.float64)
    cls = np.full((t, n), -1, dtype=np.int64)
    track = np.full((t, n), -1, dtype=np.int64)
    mask = np.zeros((t, n), dtype=bool)
    class_id = {c: i for i, c in enumerate(config.classes)}
    track_id: dict[str, int] = {}
    for f, boxes in enumerate(clip.boxes):
        kept = []  # (box, track index); tracks numbered by first appearance, counting every box
        for j, b in enumerate(boxes):
            if b.detection_class in class_id:
                key = b.instance_token or f"untracked:{f}:{j}"
                kept.append((b, track_id.setdefault(key, len(track_id))))
        kept.sort(key=lambda bt: float(np.linalg.norm(bt[0].center)))
        for i, (b, tr) in enumerate(kept[:n]):
            corners[f, i] = b.corners()
            cls[f, i] = class_id[b.detection_class]
            track[f, i] = tr
            mask[f, i] = True
    corners_t = torch.from_numpy(corners).float()
    feats = fourier_features(corners_t.flatten(-2), config.num_bands, config.max_range)
    feats = feats * torch.from_numpy(mask)[..., None]
    return {
        "box_corners": corners_t,
        "box_features": feats,
        "box_class": torch.from_numpy(cls),
        "box_track": torch.from_numpy(track),
        "box_mask": torch.from_numpy(mask),
    }


def ego_tokens(clip: Clip, config: TokenConfig = TokenConfig()) -> dict[str, torch.Tensor]:
    """Ego-trajectory tokens of ``clip``: ``ego_trajectory`` (t 3) and ``ego_features`` (t d_ego)."""
    traj = torch.from_numpy(np.asarray(clip.ego_trajectory, dtype=np.float32))
    xy = fourier_features(traj[:, :2], config.num_bands, config.max_range)
    yaw = traj[:, 2:3]
    return {"ego_trajectory": traj, "ego_features": torch.cat([xy, torch.cos(yaw), torch.sin(yaw)], dim=-1)}
