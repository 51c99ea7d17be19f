"""Camera rays as Plücker coordinates, one per latent pixel: the camera geometry the DiT sees.

A pinhole camera with intrinsics ``K`` (pixels, for an image of ``width`` x ``height``) and
``cam_to_ego`` (camera frame x right, y down, z forward -> ego frame x forward, y left, z up)
casts through the pixel position ``(u, v)`` the ray with origin ``o`` (the camera centre in the
ego frame, metres) and unit direction ``d = normalise(R K^-1 (u, v, 1))`` (ego frame). Its
Plücker coordinates are ``(d, o x d)`` (6 numbers; the moment ``o x d`` is in metres and does not
depend on which point of the ray is taken as origin).

On a latent grid of ``h x w`` cells over the image, cell ``(i, j)`` takes the ray through its
centre ``u = (j + 0.5) * width / w``, ``v = (i + 0.5) * height / h`` (pixel ``(x, y)`` covers
``[x, x + 1) x [y, y + 1)``, so ``u = fx * X / Z + cx`` as in :func:`data.geometry.project_points`).
"""

from __future__ import annotations

import torch

__all__ = ["plucker_rays"]


def plucker_rays(
    intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, image_size: tuple[int, int], grid: tuple[int, int]
) -> torch.Tensor:
    """Plücker rays ``(... h w 6)`` float32 = ``(d, o x d)`` in the ego frame.

    intrinsics: (... 3 3) pixels for an image of ``image_size`` = (width, height) pixels.
    cam_to_ego: (... 4 4). grid: (h, w) cells spanning the image (a latent grid).
    Computed in float32 with autocast off (the inverse of K is not bf16-safe).
    """
    if intrinsics.shape[-2:] != (3, 3) or cam_to_ego.shape[-2:] != (4, 4) or intrinsics.shape[:-2] != cam_to_ego.shape[:-2]:
        raise ValueError(f"plucker_rays: intrinsics (... 3 3) and cam_to_ego (... 4 4) with equal leading axes, got {tuple(intrinsics.shape)} {tuple(cam_to_ego.shape)}")
    width, height = image_size
    h, w = grid
    device = intrinsics.device
    with torch.autocast(device_type=device.type, enabled=False):
        k = intrinsics.float()
        m = cam_to_ego.float()
        v = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * (height / h)
        u = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * (width / w)
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        pix = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1)  # h w 3
        lead = k.shape[:-2]
        k_inv = torch.linalg.inv(k)
        cam_dirs = torch.einsum("...ij,hwj->...hwi", k_inv, pix)
        dirs = torch.einsum("...ij,...hwj->...hwi", m[..., :3, :3], cam_dirs)
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        origin = m[..., :3, 3].reshape(*lead, 1, 1, 3).expand_as(dirs)
        moment = torch.cross(origin, dirs, dim=-1)
        return torch.cat([dirs, moment], dim=-1)
