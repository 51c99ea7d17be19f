"""Camera -> BEV lift: sample per-camera feature maps at the projections of BEV cells.

The conditioning the LiDAR DiT's control branch reads from the cameras (issue 11 item 4): every BEV
cell centre of a :class:`~genesis_drive.models.lidar.voxel.BEVGrid`, lifted to a few fixed heights,
is projected into every camera with its calibration; the camera feature maps (video latents of one
frame, or camera DiT intermediate features) are sampled bilinearly there, and the samples of the
``(view, height)`` pairs that see the point are averaged. No depth is estimated: a feature lands on
every cell whose pillar its pixel's ray crosses at one of the heights.

Frames (nuScenes conventions, :mod:`genesis_drive.data.geometry`): points are made in the BEV grid
frame (the LIDAR_TOP sensor frame: x right, y forward, z up, metres), taken to the ego frame by
``grid_to_ego`` and into each camera frame (x right, y down, z forward) by the inverse of its rigid
``cam_to_ego``. Pixels follow :func:`~genesis_drive.data.geometry.project_points`: continuous
``(u, v) = (fx X / Z + cx, fy Y / Z + cy)``, the image covering ``[0, W] x [0, H]`` and pixel
``(x, y)`` covering ``[x, x + 1) x [y, y + 1)``. A feature map ``fh x fw`` spans the whole image, so
feature cell ``(i, j)`` is centred on ``u = (j + 0.5) W / fw``, ``v = (i + 0.5) H / fh`` (as in
:func:`~genesis_drive.models.camera.rays.plucker_rays`) and ``grid_sample`` (``align_corners=False``)
reads image point ``(u, v)`` at normalised ``(2 u / W - 1, 2 v / H - 1)``.

A point is seen by a view when its camera-frame depth ``Z > near`` and ``0 <= u <= W``,
``0 <= v <= H``. Seen points within half a feature cell of the image border read the border cells
(``padding_mode="border"``), so a constant feature map lifts to exactly that constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .voxel import BEVGrid

__all__ = ["LiftConfig", "cell_points", "lift_to_bev"]


@dataclass(frozen=True)
class LiftConfig:
    """How BEV cells are lifted into the cameras.

    heights: z (metres, BEV grid frame, z up) at which each cell centre is projected.
    near: metres; a point at camera-frame depth ``<= near`` is not seen by that camera.
    out_stride: output cells per side pooled into one (1 = the grid's own resolution; 4 takes a
        128 x 128 grid to a 32 x 32 LiDAR latent grid). Pooling sums features and hit counts over
        each ``out_stride x out_stride`` block and divides (the mean over every hit in the block).
    """

    heights: tuple[float, ...] = (-1.0, 0.0, 1.0)
    near: float = 0.5
    out_stride: int = 1

    def __post_init__(self) -> None:
        heights = tuple(float(z) for z in self.heights)
        if not heights or not all(math.isfinite(z) for z in heights):
            raise ConfigError(f"model.lift.heights must be a non-empty tuple of finite metres, got {self.heights!r}")
        object.__setattr__(self, "heights", heights)
        if not (self.near > 0 and math.isfinite(self.near)):
            raise ConfigError(f"model.lift.near must be a positive number of metres, got {self.near!r}")
        if not isinstance(self.out_stride, int) or isinstance(self.out_stride, bool) or self.out_stride < 1:
            raise ConfigError(f"model.lift.out_stride must be an integer >= 1, got {self.out_stride!r}")


def cell_points(grid: BEVGrid, heights: Sequence[float], *, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Cell centres ``(z h w 3)`` (x, y, z metres, grid frame) at each of ``heights`` (z = len(heights)).

    Row ``i`` (h, along x) and column ``j`` (w, along y) as in :func:`voxel.voxelize`: centre
    ``x = x0 + (i + 0.5) r``, ``y = y0 + (j + 0.5) r``; the third coordinate is the height.
    """
    heights = [float(z) for z in heights]
    if not heights:
        raise ValueError("cell_points: heights must hold at least one height (metres)")
    r = grid.resolution
    x = grid.x_range[0] + (torch.arange(grid.rows, dtype=torch.float64, device=device) + 0.5) * r
    y = grid.y_range[0] + (torch.arange(grid.cols, dtype=torch.float64, device=device) + 0.5) * r
    z = torch.tensor(heights, dtype=torch.float64, device=device)
    zz, xx, yy = torch.meshgrid(z, x, y, indexing="ij")
    return torch.stack((xx, yy, zz), dim=-1).to(dtype)


def _check_shapes(features: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor,
                  grid_to_ego: torch.Tensor, image_size: tuple[int, int], grid: BEVGrid, stride: int) -> None:
    if features.ndim != 5:
        raise ValueError(f"lift_to_bev: features must be (b v c fh fw), got {tuple(features.shape)}")
    b, v = features.shape[:2]
    if tuple(intrinsics.shape) != (b, v, 3, 3):
        raise ValueError(f"lift_to_bev: intrinsics must be (b v 3 3) = {(b, v, 3, 3)} to match features, "
                         f"got {tuple(intrinsics.shape)}")
    if tuple(cam_to_ego.shape) != (b, v, 4, 4):
        raise ValueError(f"lift_to_bev: cam_to_ego must be (b v 4 4) = {(b, v, 4, 4)} to match features, "
                         f"got {tuple(cam_to_ego.shape)}")
    if tuple(grid_to_ego.shape) != (b, 4, 4):
        raise ValueError(f"lift_to_bev: grid_to_ego must be (b 4 4) = {(b, 4, 4)} to match features, "
                         f"got {tuple(grid_to_ego.shape)}")
    if len(image_size) != 2 or not all(float(s) > 0 for s in image_size):
        raise ValueError(f"lift_to_bev: image_size must be (W, H) positive pixels, got {image_size!r}")
    if grid.rows % stride or grid.cols % stride:
        raise ConfigError(f"model.lift.out_stride {stride} must divide the grid's {grid.rows} x {grid.cols} cells")


def lift_to_bev(features: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, grid_to_ego: torch.Tensor,
                image_size: tuple[int, int], grid: BEVGrid,
                config: LiftConfig = LiftConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Lift camera feature maps onto the BEV grid.

    features: (b v c fh fw) per-camera feature maps spanning the whole image (any fh, fw).
    intrinsics: (b v 3 3) pinhole K (last row 0 0 1), pixels of an image of ``image_size`` = (W, H).
    cam_to_ego: (b v 4 4) rigid camera -> ego transforms (ego frame of the capture time).
    grid_to_ego: (b 4 4) BEV grid (sensor) frame -> that same ego frame (``lidar_to_ego``, or composed
        with ego motion for another sensor pose).

    Returns ``(bev, count)``: ``bev`` (b c h w) in features' dtype, the mean of the samples over the
    ``(view, height)`` pairs that see each cell, 0 where none does; ``count`` (b 1 h w) float32, the
    number of such pairs. With ``config.out_stride = s`` both are ``(h / s, w / s)``: ``bev`` is the mean
    over every hit in the ``s x s`` block and ``count`` the mean hit count of its cells.
    Geometry runs in float32 (float64 for float64 features) with autocast off.
    """
    stride = config.out_stride
    _check_shapes(features, intrinsics, cam_to_ego, grid_to_ego, image_size, grid, stride)
    b, v, c, fh, fw = features.shape
    width, height = float(image_size[0]), float(image_size[1])
    device = features.device
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    z, h, w = len(config.heights), grid.rows, grid.cols
    with torch.autocast(device_type=device.type, enabled=False):
        pts = cell_points(grid, config.heights, dtype=dtype, device=device).reshape(-1, 3)  # n 3
        k = intrinsics.to(dtype)
        c2e = cam_to_ego.to(dtype)
        g2e = grid_to_ego.to(dtype)
        rot_t = c2e[..., :3, :3].transpose(-1, -2)  # ego -> camera rotation (rigid inverse)
        rot = rot_t @ g2e[:, None, :3, :3]  # b v 3 3: grid -> camera
        trans = (rot_t @ (g2e[:, None, :3, 3:] - c2e[..., :3, 3:]))[..., 0]  # b v 3
        cam = torch.einsum("bvij,nj->bvni", rot, pts) + trans[:, :, None]  # b v n 3
        depth = cam[..., 2]
        front = depth > config.near
        safe = torch.where(front, depth, torch.ones_like(depth))
        pix = torch.einsum("bvij,bvnj->bvni", k[..., :2, :], cam) / safe[..., None]  # b v n 2 (u, v)
        u, vv = pix[..., 0], pix[..., 1]
        seen = front & (u >= 0) & (u <= width) & (vv >= 0) & (vv <= height)
        coords = torch.stack((2.0 * u / width - 1.0, 2.0 * vv / height - 1.0), dim=-1)
        coords = torch.where(seen[..., None], coords, torch.zeros_like(coords))
        samples = F.grid_sample(features.reshape(b * v, c, fh, fw).to(dtype), coords.reshape(b * v, 1, -1, 2),
                                mode="bilinear", padding_mode="border", align_corners=False)  # (b v) c 1 n
        mask = seen.reshape(b * v, 1, 1, -1).to(dtype)
        total = (samples * mask).reshape(b, v, c, z, h, w).sum(dim=(1, 3))  # b c h w
        count = seen.reshape(b, v, z, h, w).to(dtype).sum(dim=(1, 2))[:, None]  # b 1 h w
        if stride > 1:
            total = F.avg_pool2d(total, stride)
            count = F.avg_pool2d(count, stride)
        bev = total / count.clamp(min=1.0 / (stride * stride))  # a hit makes count >= 1 / s^2; no hit: 0 / . = 0
    return bev.to(features.dtype), count.float()
