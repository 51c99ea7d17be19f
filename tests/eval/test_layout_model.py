"""BEV layout model: the lift (hand-built geometry), targets, IoU / AP arithmetic, training, the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.eval import learned_cli
from genesis_drive.eval.layout_model import (
    BEV_CLASSES,
    BEV_LAYOUT_PRESETS,
    BEV_LAYOUT_TASK,
    BevLayoutNet,
    average_precision,
    bev_points,
    bev_targets,
    detection_map,
    iou_counts,
    iou_from_counts,
    lift_features,
    load_bev_model,
    miou,
    project_to_views,
    vehicle_blobs,
    vehicle_centers,
)
from genesis_drive.layout.bev import BevGrid
from genesis_drive.train.checkpoint import save_checkpoint

from ..data.handmade import write_handmade

W, H = 64, 36
K = np.array([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]])
CAM_TO_FWD = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)




def camera(yaw: float, x: float = 1.0, z: float = 1.5) -> np.ndarray:
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ CAM_TO_FWD
    m[:3, 3] = [x * np.cos(yaw), x * np.sin(yaw), z]
    return m


def test_lift_samples_the_projected_pixel_and_averages_views():
    # ego (11, 2, 1.5) seen by a forward camera at (1, 0, 1.5): camera (-2, 0, 10) -> u = 50 * -0.2 + 32 = 22, v = 18
    pts = torch.tensor([[11.0, 2.0, 1.5], [-9.0, 0.0, 1.5], [11.0, 30.0, 1.5], [-11.0, -2.0, 1.5]])
    k = torch.from_numpy(np.stack([K, K])).float()[None]
    c2e = torch.from_numpy(np.stack([camera(0.0), camera(np.pi)])).float()[None]
    uv, valid = project_to_views(pts, k, c2e, (W, H), near=0.1)
    assert uv.shape == (1, 2, 4, 2)
    torch.testing.assert_close(uv[0, 0, 0], torch.tensor([22.0, 18.0]))
    # back camera at (-1, 0, 1.5) facing -x: ego (-11, -2) -> camera (-2, 0, 10), the same pixel
    torch.testing.assert_close(uv[0, 1, 3], torch.tensor([22.0, 18.0]))
    assert valid[0, 0].tolist() == [True, False, False, False]  # behind / outside / behind
    assert valid[0, 1].tolist() == [False, True, False, True]
    # stride-2 feature maps whose channels hold the image-pixel coordinates of their cell centres
    fu = (torch.arange(W // 2) + 0.5) * 2
    fv = (torch.arange(H // 2) + 0.5) * 2
    grid = torch.stack([fu[None].expand(H // 2, -1), fv[:, None].expand(-1, W // 2)])  # 2 h w
    feats = torch.stack([grid, grid + 100.0])[None]  # b v c h w; view 1 offset by 100
    lifted = lift_features(feats, uv, valid, (W, H))
    torch.testing.assert_close(lifted[0, :, 0], torch.tensor([22.0, 18.0]))  # only view 0 sees it: bilinear = exact
    torch.testing.assert_close(lifted[0, :, 3], torch.tensor([122.0, 118.0]))  # only view 1
    torch.testing.assert_close(lifted[0, :, 2], torch.zeros(2))  # nobody sees it
    # a point seen by both views gets the mean
    both = torch.tensor([[0.0, 0.0, 1.5]])
    k2 = torch.from_numpy(np.stack([K, K])).float()[None]
    c2e_wide = torch.from_numpy(np.stack([camera(0.0, x=-5.0), camera(np.pi, x=-5.0)])).float()[None]
    uv2, valid2 = project_to_views(both, k2, c2e_wide, (W, H), 0.1)
    assert valid2.all()
    torch.testing.assert_close(lift_features(feats, uv2, valid2, (W, H))[0, :, 0], torch.tensor([32.0 + 50.0, 18.0 + 50.0]))


def test_bev_points_follow_the_raster_orientation():
    grid = BevGrid((-4.0, 4.0), (-2.0, 2.0), 1.0)
    pts = bev_points(grid, (0.0, 1.5))
    assert pts.shape == (2, 8, 4, 3)
    np.testing.assert_allclose(pts[0, 0, 0], [3.5, 1.5, 0.0])  # row 0 far front, column 0 far left
    np.testing.assert_allclose(pts[1, 7, 3], [-3.5, -1.5, 1.5])


def test_iou_arithmetic_on_hand_built_masks():
    pred = np.zeros((2, 2, 4, 4), bool)
    tgt = np.zeros((2, 2, 4, 4), bool)
    pred[0, 0, :2, :2] = True          # 4 cells
    tgt[0, 0, :2, :3] = True           # 6 cells, 4 shared -> 4 / 6
    pred[1, 0, 3, 3] = True            # 1 false positive in sample 1
    tgt[1, 1, 0, :] = True             # class 1 never predicted: 0 / 4
    inter, union = iou_counts(pred, tgt)
    assert inter.tolist() == [[4, 0], [0, 0]] and union.tolist() == [[6, 0], [1, 4]]
    np.testing.assert_allclose(iou_from_counts(inter, union), [4 / 7, 0.0])  # summed over samples
    assert miou(inter, union) == pytest.approx((4 / 7) / 2)
    only_bg = iou_from_counts(np.zeros((1, 2), int), np.array([[3, 0]]))
    assert only_bg[0] == 0.0 and np.isnan(only_bg[1])  # a class absent everywhere is NaN, not 0 or 1


def test_average_precision_by_hand():
    dets = [np.array([[0.2, 0.0, 0.9], [5.0, 5.0, 0.8], [10.0, 0.3, 0.7]]), np.zeros((0, 3))]
    truths = [np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[50.0, 50.0]])]
    # recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3 -> envelope 1, 2/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 2/3
    assert average_precision(dets, truths, 1.0) == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision(dets, truths, 0.1) == 0.0
    assert np.isnan(average_precision(dets, [np.zeros((0, 2))] * 2, 1.0))
    # a duplicate detection of a matched truth is a false positive
    dup = [np.array([[0.0, 0.0, 0.9], [0.1, 0.0, 0.8]])]
    assert average_precision(dup, [np.array([[0.0, 0.0]])], 1.0) == pytest.approx(1.0)
    assert average_precision(dup[::-1], [np.array([[0.0, 0.0]])], 1.0) == pytest.approx(1.0)
    res = detection_map(dets, truths, thresholds=(0.1, 1.0))
    assert res["mAP"] == pytest.approx((0 + 1 / 3 + 2 / 9) / 2)


def test_vehicle_blobs_centroid_and_score():
    grid = BevGrid((-4.0, 4.0), (-4.0, 4.0), 1.0)
    prob = np.zeros((8, 8))
    prob[1:3, 5:7] = [[0.9, 0.7], [0.7, 0.9]]   # rows 1-2 -> x 2.5, 1.5; cols 5-6 -> y -1.5, -2.5
    prob[6, 0] = 0.6
    prob[6, 1] = 0.4                             # below threshold: not part of the blob
    det = vehicle_blobs(prob, grid, threshold=0.5)
    order = np.argsort(-det[:, 2])
    np.testing.assert_allclose(det[order[0]], [2.0, -2.0, 0.8])
    np.testing.assert_allclose(det[order[1]], [-2.5, 3.5, 0.6])
    assert len(vehicle_blobs(prob, grid, threshold=0.5, min_cells=2)) == 1


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


def test_targets_of_the_handmade_scene(root):
    cfg = BEV_LAYOUT_PRESETS["tiny"]()
    clip = ClipIndex(NuScenesReader(root), cfg.clip_spec()).load(0)
    tgt = bev_targets(clip, 0, cfg)
    grid = cfg.model.grid
    assert tgt.shape == (len(BEV_CLASSES), 32, 32)
    centers = grid.cell_centers()
    y = centers[..., 1]
    drivable = tgt[BEV_CLASSES.index("drivable_area")]
    # road spans global y 44..56, the ego drives along y = 50: ego y in [-6, 6]
    assert np.all(drivable[np.abs(y) < 5.5] == 1.0) and np.all(drivable[np.abs(y) > 6.5] == 0.0)
    divider = tgt[BEV_CLASSES.index("divider")]
    assert np.all(divider[np.abs(y) < 0.4] > 0.4) and np.all(divider[np.abs(y) > 1.5] == 0.0)
    # the car at ego (10, 3.5), 1.9 x 4.5 m
    car = tgt[BEV_CLASSES.index("vehicle")]
    r, c = np.unravel_index(np.argmax(car), car.shape)
    assert abs(centers[r, c, 0] - 10) < 2.5 and abs(centers[r, c, 1] - 3.5) < 1.5
    assert car.sum() == pytest.approx(1.9 * 4.5, rel=0.15)
    # the pedestrian (0.6 x 0.7 m) at ego (5, -4) is enlarged to 1 x 1 m (the raster's fillPoly also
    # covers boundary sub-cells: up to (4 + 1)^2 / 4^2 = 1.5625 m^2 at supersample 4)
    ped = tgt[BEV_CLASSES.index("pedestrian")]
    assert 1.0 <= ped.sum() <= 1.5625 + 1e-6 and ped.max() >= 0.5
    r, c = np.unravel_index(np.argmax(ped), ped.shape)
    assert abs(centers[r, c, 0] - 5) <= 1.0 and abs(centers[r, c, 1] + 4) <= 1.0
    np.testing.assert_allclose(vehicle_centers(clip, 0, grid), [[10.0, 3.5]], atol=1e-6)


def test_overfit_one_batch_and_preview(root):
    torch.manual_seed(0)
    cfg = BEV_LAYOUT_PRESETS["tiny"]()
    task = BEV_LAYOUT_TASK.build(cfg, root)
    ds = task.train_dataset()
    batch = task.collate([ds[0], ds[1]])
    model = task.build_model()
    assert model(batch["images"].float() / 127.5 - 1, batch["intrinsics"], batch["cam_to_ego"]).shape == (2, 5, 32, 32)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(20):
        out = task.loss(model, batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0]
    prev = task.preview(model, batch)["bev_target_top_pred_bottom"]
    assert prev.shape == (2 * 2 * 32, 5 * 32, 3) and prev.dtype == np.uint8
    with pytest.raises(ValueError, match="BevLayoutNet expects"):
        model(torch.zeros(1, 6, 3, 10, 10), batch["intrinsics"][:1], batch["cam_to_ego"][:1])


def test_layout_cli_gen_equals_ref(root, tmp_path):
    torch.manual_seed(0)
    cfg = BEV_LAYOUT_PRESETS["tiny"]()
    model = BevLayoutNet(cfg.model)
    run = tmp_path / "run"
    save_checkpoint(run, 5, model=model.state_dict(), optimizer={}, ema=None, state={"task": "bev_layout", "config": config_to_dict(cfg)}, keep_last=1)
    _loaded, cfg2, info = load_bev_model(run)
    assert cfg2 == cfg and info["step"] == 5
    parser = argparse.ArgumentParser()
    learned_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["layout", "--gen", str(root), "--ref", str(root), "--model", str(run), "--out", str(out), "--bootstrap", "10"])
    assert args.func(args) == 0
    rows = {r["metric"]: r for r in json.loads((out / "layout.json").read_text())["rows"]}
    assert rows["mIoU (gen)"]["value"] == rows["mIoU (ref)"]["value"]
    assert rows["mIoU gen - ref (paired)"]["value"] == 0.0 and rows["mIoU gen - ref (paired)"]["counts"]["pairs"] == 4
    assert rows["mIoU (gen)"]["counts"] == {"frames": 4, "scenes": 1}
    assert "BEV vehicle mAP (gen)" in rows and (out / "layout.md").is_file()
