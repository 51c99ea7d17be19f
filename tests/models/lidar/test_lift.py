"""Camera -> BEV lift on SynthTown's nuScenes rig: a feature lands on the cells whose points project
onto it (checked against the numpy projection of data.geometry), constant features lift to that
constant, views average, the grid pose shifts the result by whole cells, gradients and batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genesis_drive.data.geometry import Pose, project_points
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.errors import ConfigError
from genesis_drive.models.lidar.lift import LiftConfig, cell_points, lift_to_bev
from genesis_drive.models.lidar.voxel import BEVGrid, voxel_indices
from genesis_drive.world.sensors import camera_calibrations, lidar_calibration

IMAGE = (256, 144)  # W, H pixels
FEAT = (18, 32)  # fh, fw: stride 8
STRIDE = IMAGE[0] / FEAT[1]
GRID = BEVGrid(x_range=(-32.0, 32.0), y_range=(-32.0, 32.0), z_range=(-5.0, 3.0), resolution=0.5, height_bins=16)
CFG = LiftConfig()
CALS = camera_calibrations(IMAGE)
LIDAR = lidar_calibration().sensor_to_ego  # grid (LIDAR_TOP) frame -> ego
FRONT, FRONT_LEFT = CAMERA_CHANNELS.index("CAM_FRONT"), CAMERA_CHANNELS.index("CAM_FRONT_LEFT")


def rig(views=None, grid_to_ego: Pose = LIDAR):
    """(intrinsics (1 v 3 3), cam_to_ego (1 v 4 4), grid_to_ego (1 4 4)) float32 of the chosen views."""
    views = range(len(CALS)) if views is None else views
    k = torch.tensor(np.stack([CALS[i].intrinsics for i in views]), dtype=torch.float32)[None]
    c = torch.tensor(np.stack([CALS[i].sensor_to_ego.matrix() for i in views]), dtype=torch.float32)[None]
    g = torch.tensor(grid_to_ego.matrix(), dtype=torch.float32)[None]
    return k, c, g


def project(views, grid_pts: np.ndarray, grid_to_ego: Pose = LIDAR):
    """Numpy reference: pixels (v, n, 2), seen mask (v, n) of grid-frame points (n, 3) in each view."""
    ego = grid_to_ego.apply(grid_pts)
    uvs, seen = [], []
    for i in views:
        cam = CALS[i].sensor_to_ego.inverse().apply(ego)
        uv, front = project_points(cam, CALS[i].intrinsics, min_depth=CFG.near)
        inside = front & (np.nan_to_num(uv[:, 0], nan=-1) >= 0) & (np.nan_to_num(uv[:, 0], nan=-1) <= IMAGE[0])
        inside &= (np.nan_to_num(uv[:, 1], nan=-1) >= 0) & (np.nan_to_num(uv[:, 1], nan=-1) <= IMAGE[1])
        uvs.append(uv)
        seen.append(inside)
    return np.stack(uvs), np.stack(seen)


def cell_of(p) -> tuple[int, int]:
    """Row, column of the BEV cell holding grid-frame point ``p``."""
    idx, inside = voxel_indices(GRID, torch.tensor(np.asarray(p, dtype=np.float64)[None]))
    assert inside.all()
    return int(idx[0, 1]), int(idx[0, 2])


def test_cell_points_are_the_voxel_centres():
    pts = cell_points(GRID, (-1.0, 0.25))
    assert pts.shape == (2, GRID.rows, GRID.cols, 3)
    assert pts[0, 0, 0].tolist() == [-31.75, -31.75, -1.0]
    assert pts[1, 5, 7].tolist() == [-31.75 + 5 * 0.5, -31.75 + 7 * 0.5, 0.25]
    idx, inside = voxel_indices(GRID, pts.reshape(-1, 3).double())
    assert inside.all()
    rows, cols = torch.meshgrid(torch.arange(GRID.rows), torch.arange(GRID.cols), indexing="ij")
    assert torch.equal(idx[:, 1].reshape(2, GRID.rows, GRID.cols), rows.expand(2, -1, -1))
    assert torch.equal(idx[:, 2].reshape(2, GRID.rows, GRID.cols), cols.expand(2, -1, -1))


def test_delta_in_one_camera_lands_in_the_cell_of_its_point():
    # a point 10 m ahead of LIDAR_TOP, slightly right, 1 m below it (grid frame: x right, y forward)
    p = np.array([0.75, 10.25, -1.0])
    uv, seen = project(range(6), p[None])
    assert seen[:, 0].tolist() == [i == FRONT for i in range(6)]  # only CAM_FRONT sees it
    u, v = uv[FRONT, 0]
    j, i = int(u // STRIDE), int(v // STRIDE)
    feats = torch.zeros(1, 6, 2, *FEAT)
    feats[0, FRONT, 0, i, j] = 1.0
    bev, count = lift_to_bev(feats, *rig(), IMAGE, GRID, CFG)
    row, col = cell_of(p)
    # bilinear weight of the delta at the projection; the other heights of that pillar project rows away
    weight = max(0.0, 1 - abs(u / STRIDE - 0.5 - j)) * max(0.0, 1 - abs(v / STRIDE - 0.5 - i))
    assert weight > 0.25
    assert count[0, 0, row, col] == 3  # CAM_FRONT sees all three heights of the pillar
    assert bev[0, 0, row, col].item() == pytest.approx(weight / 3, abs=1e-5)
    assert bev[0, 1].abs().max() == 0  # the empty channel stays empty
    # elsewhere the delta reaches only cells along the same camera ray: every cell is the sum over
    # heights of the bilinear weight at its projection, so nothing off the ray's azimuth, nothing
    # behind the camera and nothing far beyond the point (heights 0 and 1 lie above the camera,
    # their rays never reach the delta's row below the horizon)
    pts = cell_points(GRID, CFG.heights).reshape(-1, 3).double().numpy()
    uv, seen = project([FRONT], pts)
    uv = np.nan_to_num(uv[0])
    wu = np.clip(1 - np.abs(uv[:, 0] / STRIDE - 0.5 - j), 0, None)
    wv = np.clip(1 - np.abs(uv[:, 1] / STRIDE - 0.5 - i), 0, None)
    expected = (wu * wv * seen[0]).reshape(len(CFG.heights), GRID.rows, GRID.cols)
    assert expected[1:].max() == 0
    n = count[0, 0].numpy()
    np.testing.assert_allclose(bev[0, 0].numpy(), expected.sum(0) / np.maximum(n, 1), atol=1e-5)
    hit = (bev[0, 0] > 1e-6).reshape(-1).numpy()
    centres = pts[: GRID.rows * GRID.cols]
    cam = CALS[FRONT].sensor_to_ego.inverse().apply(LIDAR.apply(centres))
    p_cam = CALS[FRONT].sensor_to_ego.inverse().apply(LIDAR.apply(p))
    azimuth = np.degrees(np.arctan2(cam[:, 0], cam[:, 2]) - np.arctan2(p_cam[0], p_cam[2]))
    assert 5 <= hit.sum() < 200 and np.abs(azimuth[hit]).max() < 4.0
    ahead = centres[hit, 1] - p[1]
    assert ahead.min() > -5.0 and ahead.max() < 17.0


def test_ramp_features_match_the_numpy_projection_in_all_cameras():
    # channel 0 = u, channel 1 = v of each feature cell's centre: bilinear reads a linear ramp exactly
    # (clamped to the outer centres at the border), so the lift must equal the reference projection
    fh, fw = FEAT
    uc = (torch.arange(fw) + 0.5) * STRIDE
    vc = (torch.arange(fh) + 0.5) * (IMAGE[1] / fh)
    ramp = torch.stack((uc.expand(fh, fw), vc[:, None].expand(fh, fw)))
    bev, count = lift_to_bev(ramp.expand(1, 6, 2, fh, fw), *rig(), IMAGE, GRID, CFG)
    pts = cell_points(GRID, CFG.heights).reshape(-1, 3).double().numpy()
    uv, seen = project(range(6), pts)
    lo = np.array([STRIDE / 2, IMAGE[1] / fh / 2])
    value = np.clip(np.nan_to_num(uv), lo, np.array(IMAGE) - lo) * seen[..., None]  # v n 2
    n = seen.reshape(6, len(CFG.heights), GRID.rows, GRID.cols).sum(axis=(0, 1))
    mean = value.reshape(6, len(CFG.heights), GRID.rows, GRID.cols, 2).sum(axis=(0, 1)) / np.maximum(n, 1)[..., None]
    assert np.array_equal(count[0, 0].numpy(), n.astype(np.float32))
    assert 0.95 < (n > 0).mean() < 1.0 and n.max() >= 4  # most cells seen, some by two cameras
    np.testing.assert_allclose(bev[0].permute(1, 2, 0).numpy(), mean, atol=2e-3)


def test_constant_features_and_empty_frustum():
    feats = torch.full((1, 6, 3, *FEAT), 0.7)
    bev, count = lift_to_bev(feats, *rig(), IMAGE, GRID, CFG)
    seen = count[0, 0] > 0
    assert seen.float().mean() > 0.95
    assert torch.allclose(bev[0][:, seen], torch.tensor(0.7), rtol=0, atol=1e-6)
    assert bev[0][:, ~seen].abs().max() == 0
    # a single forward camera: nothing behind it (grid y is forward; CAM_FRONT is 0.76 m ahead of
    # LIDAR_TOP) and nothing outside its +-32 deg field of view
    bev, count = lift_to_bev(feats[:, [FRONT]], *rig([FRONT]), IMAGE, GRID, CFG)
    pts = cell_points(GRID, (0.0,))[0]
    x, y = pts[..., 0], pts[..., 1]
    cam_y = y - 0.756
    assert count[0, 0][y < 0.5].abs().max() == 0
    outside = (torch.atan2(x.abs(), cam_y) > math.radians(35.0))
    assert count[0, 0][outside].abs().max() == 0 and bev[0][:, outside].abs().max() == 0
    ahead = cell_of((0.25, 10.25, 0.0))
    assert count[0, 0, ahead[0], ahead[1]] == 3
    assert torch.allclose(bev[0][:, count[0, 0] > 0], torch.tensor(0.7), rtol=0, atol=1e-6)


def test_near_plane():
    # at the camera's own height (grid z = 1.511 - 1.84 m) the cells straight ahead of CAM_FRONT
    # (0.756 m ahead of LIDAR_TOP) have depths 0.494 m (y = 1.25) and 0.994 m (y = 1.75)
    feats = torch.ones(1, 1, 1, *FEAT)
    near_cell, far_cell = cell_of((0.25, 1.25, 0.0)), cell_of((0.25, 1.75, 0.0))
    counts = {}
    for near in (0.4, 0.6, 1.1):
        _, count = lift_to_bev(feats, *rig([FRONT]), IMAGE, GRID, LiftConfig(heights=(1.511 - 1.84,), near=near))
        counts[near] = (count[0, 0][near_cell].item(), count[0, 0][far_cell].item())
    assert counts == {0.4: (1.0, 1.0), 0.6: (0.0, 1.0), 1.1: (0.0, 0.0)}


def test_two_views_average():
    views = [FRONT, FRONT_LEFT]
    k, c, g = rig(views)
    one = LiftConfig(heights=(0.0,))
    a, b = 2.0, -4.0
    feats = torch.stack((torch.full((1, *FEAT), a), torch.full((1, *FEAT), b)))[None]  # 1 2 1 fh fw
    bev, count = lift_to_bev(feats, k, c, g, IMAGE, GRID, one)
    both = count[0, 0] == 2
    assert both.sum() > 50  # the two frusta overlap around 23-32 deg left
    assert torch.allclose(bev[0, 0][both], torch.tensor((a + b) / 2), atol=1e-6)
    # random features, all heights: the two-view lift is the hit-weighted mean of the one-view lifts
    torch.manual_seed(0)
    feats = torch.randn(1, 2, 4, *FEAT)
    bev, count = lift_to_bev(feats, k, c, g, IMAGE, GRID, CFG)
    b0, n0 = lift_to_bev(feats[:, :1], k[:, :1], c[:, :1], g, IMAGE, GRID, CFG)
    b1, n1 = lift_to_bev(feats[:, 1:], k[:, 1:], c[:, 1:], g, IMAGE, GRID, CFG)
    assert torch.equal(count, n0 + n1)
    assert ((n0 > 0) & (n1 > 0)).sum() > 50
    expected = (b0 * n0 + b1 * n1) / (n0 + n1).clamp(min=1)
    assert torch.allclose(bev, expected, atol=1e-5)


def test_grid_translation_shifts_by_whole_cells():
    torch.manual_seed(1)
    feats = torch.randn(1, 6, 4, *FEAT)
    k, c, g = rig()
    dx, dy = 2.0, -3.5  # metres in the grid frame: 4 and -7 cells
    shifted_pose = LIDAR @ Pose.from_xy_yaw(dx, dy, 0.0)
    bev_t, count_t = lift_to_bev(feats, k, c, rig(grid_to_ego=shifted_pose)[2], IMAGE, GRID, CFG)
    # same ego points as the unmoved grid frame with ranges shifted by (dx, dy)
    moved = BEVGrid(x_range=(-32.0 + dx, 32.0 + dx), y_range=(-32.0 + dy, 32.0 + dy), resolution=0.5)
    bev_m, count_m = lift_to_bev(feats, k, c, g, IMAGE, moved, CFG)
    assert torch.equal(count_t, count_m)
    assert torch.allclose(bev_t, bev_m, atol=1e-4)  # float32 geometry
    # and on the unmoved grid: cell (i, j) of the translated frame is cell (i + 4, j - 7)
    bev, count = lift_to_bev(feats, k, c, g, IMAGE, GRID, CFG)
    si, sj = round(dx / GRID.resolution), round(dy / GRID.resolution)
    assert (si, sj) == (4, -7)
    h, w = GRID.rows, GRID.cols
    assert torch.equal(count_t[..., : h - si, -sj:], count[..., si:, : w + sj])
    assert torch.allclose(bev_t[..., : h - si, -sj:], bev[..., si:, : w + sj], atol=1e-4)
    assert not torch.allclose(bev_t, bev, atol=1e-2)


def test_gradients_and_batch_independence():
    torch.manual_seed(2)
    k, c, g = rig()
    turned = Pose.from_xy_yaw(0.944, 0.3, -math.pi / 2 + 0.4, z=1.84)
    g2 = torch.cat((g, rig(grid_to_ego=turned)[2]))
    k2, c2 = torch.cat((k, k * 1.1)), torch.cat((c, c))
    k2[1, :, 2, 2] = 1.0
    feats = torch.randn(2, 6, 3, *FEAT, requires_grad=True)
    bev, count = lift_to_bev(feats, k2, c2, g2, IMAGE, GRID, CFG)
    for i in range(2):
        b_i, n_i = lift_to_bev(feats[i:i + 1], k2[i:i + 1], c2[i:i + 1], g2[i:i + 1], IMAGE, GRID, CFG)
        assert torch.equal(count[i:i + 1], n_i)
        assert torch.allclose(bev[i:i + 1], b_i, atol=1e-6)
    assert not torch.equal(count[0], count[1])
    weights = torch.randn_like(bev)
    (bev * weights).sum().backward()
    grad = feats.grad
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(dim=(0, 2, 3, 4)) > 0).all()  # every view receives gradient
    # exact gradients on a tiny float64 case
    tiny = BEVGrid(x_range=(-4.0, 4.0), y_range=(2.0, 10.0), resolution=2.0, height_bins=1)
    f64 = torch.randn(1, 2, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    k_, c_, g_ = (t.double() for t in rig([FRONT, FRONT_LEFT]))
    torch.autograd.gradcheck(lambda f: lift_to_bev(f, k_, c_, g_, IMAGE, tiny, CFG)[0], (f64,))


def test_out_stride_pools_sum_over_sum():
    torch.manual_seed(3)
    feats = torch.randn(1, 6, 4, *FEAT)
    k, c, g = rig()
    bev, count = lift_to_bev(feats, k, c, g, IMAGE, GRID, CFG)
    coarse, coarse_n = lift_to_bev(feats, k, c, g, IMAGE, GRID, LiftConfig(out_stride=4))
    assert coarse.shape == (1, 4, 32, 32) and coarse_n.shape == (1, 1, 32, 32)
    total = (bev * count).reshape(1, 4, 32, 4, 32, 4).sum(dim=(3, 5))
    hits = count.reshape(1, 1, 32, 4, 32, 4).sum(dim=(3, 5))
    assert torch.allclose(coarse_n, hits / 16)
    assert torch.allclose(coarse, total / hits.clamp(min=1), atol=1e-5)
    with pytest.raises(ConfigError, match="out_stride 3 must divide"):
        lift_to_bev(feats, k, c, g, IMAGE, GRID, LiftConfig(out_stride=3))


def test_bad_shapes_and_config_raise():
    k, c, g = rig()
    feats = torch.zeros(1, 6, 2, *FEAT)
    with pytest.raises(ValueError, match=r"features must be \(b v c fh fw\)"):
        lift_to_bev(feats[0], k, c, g, IMAGE, GRID, CFG)
    with pytest.raises(ValueError, match=r"intrinsics must be \(b v 3 3\) = \(1, 6, 3, 3\)"):
        lift_to_bev(feats, k[:, :5], c, g, IMAGE, GRID, CFG)
    with pytest.raises(ValueError, match=r"cam_to_ego must be \(b v 4 4\)"):
        lift_to_bev(feats, k, c[..., :3, :], g, IMAGE, GRID, CFG)
    with pytest.raises(ValueError, match=r"grid_to_ego must be \(b 4 4\) = \(1, 4, 4\)"):
        lift_to_bev(feats, k, c, g[0], IMAGE, GRID, CFG)
    with pytest.raises(ValueError, match=r"image_size must be \(W, H\)"):
        lift_to_bev(feats, k, c, g, (256, 0), GRID, CFG)
    with pytest.raises(ConfigError, match="model.lift.heights"):
        LiftConfig(heights=())
    with pytest.raises(ConfigError, match="model.lift.near"):
        LiftConfig(near=0.0)
    with pytest.raises(ConfigError, match="model.lift.out_stride"):
        LiftConfig(out_stride=0)
