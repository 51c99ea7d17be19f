"""Training loss of the LiDAR BEV autoencoder (one function; the task wires it to data).

``total = depth * L1(depth on returned rays, metres) + occupancy * BCE(occupancy logits, input grid)
+ kl * KL(posterior || N(0, 1)) + drop * BCE(drop logit, ray not returned)
+ distortion * distortion loss (weights concentrated at the surface, positions in units of far)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ..codec import kl_divergence
from .ae import AEOutput
from .render import distortion_loss

__all__ = ["LidarAELossWeights", "lidar_ae_loss"]


@dataclass(frozen=True)
class LidarAELossWeights:
    """Weights of the loss terms; ``occupancy_pos_weight`` up-weights occupied voxels in the BCE
    (occupancy is sparse)."""

    depth: float = 1.0
    occupancy: float = 1.0
    kl: float = 1e-4
    drop: float = 0.1
    distortion: float = 0.01
    occupancy_pos_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("depth", "occupancy", "kl", "drop", "distortion"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.occupancy_pos_weight <= 0:
            raise ConfigError(f"loss.occupancy_pos_weight must be > 0, got {self.occupancy_pos_weight}")


def lidar_ae_loss(out: AEOutput, occupancy: torch.Tensor, depth: torch.Tensor, returned: torch.Tensor,
                  weights: LidarAELossWeights, far: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its (detached) terms.

    out: the autoencoder's pass. occupancy: the input grid (b z h w, 0/1). depth: target range per
    ray (b r) metres (ignored where not returned). returned: (b r) bool, the ray gave a point.
    Rays outside the grid (``out.render.valid`` false) are ignored; depth is supervised only on
    returned rays whose target lies inside the rendered interval. far: distortion length unit (m).
    """
    r = out.render
    valid = r.valid
    returned = returned.bool()
    sup = valid & returned & (depth <= r.t_far)
    depth_l1 = (r.depth - depth).abs()[sup].mean() if sup.any() else r.depth.sum() * 0.0
    pos = torch.tensor(weights.occupancy_pos_weight, device=occupancy.device)
    occ_bce = F.binary_cross_entropy_with_logits(out.occupancy, occupancy.float(), pos_weight=pos)
    kl = kl_divergence(out.mean, out.logvar)
    drop_bce = (F.binary_cross_entropy_with_logits(r.drop_logit[valid], (~returned[valid]).float())
                if valid.any() else r.drop_logit.sum() * 0.0)
    dist = distortion_loss(r.fine.weights, r.fine.edges, far)
    dist = dist[sup].mean() if sup.any() else dist.sum() * 0.0
    total = (weights.depth * depth_l1 + weights.occupancy * occ_bce + weights.kl * kl + weights.drop * drop_bce
             + weights.distortion * dist)
    terms = {"depth_l1": depth_l1, "occupancy_bce": occ_bce, "kl": kl, "drop_bce": drop_bce, "distortion": dist}
    return total, {k: v.detach() for k, v in terms.items()}
