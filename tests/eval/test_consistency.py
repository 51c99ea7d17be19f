"""Cross-modal consistency: depth network, LiDAR projection, metric arithmetic, matched vs mismatched pairs.

A tiny ray-cast world (ground plane + boxes) gives images, exact depth maps and LiDAR sweeps that
agree by construction; LiDAR of another world is the mismatched pair.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.data.geometry import scale_intrinsics
from genesis_drive.errors import DataError
from genesis_drive.eval import learned_cli
from genesis_drive.eval.consistency import (
    ConsistencyScorer,
    depth_agreement,
    edge_strength,
    frame_consistency,
    lidar_discontinuities,
    load_depth_model,
    pool_stats,
)
from genesis_drive.models.evaluators.depth import DepthNet, DepthNetConfig
from genesis_drive.train.checkpoint import save_checkpoint
from genesis_drive.train.tasks.depth import DEPTH_PRESETS, DEPTH_TASK, project_lidar, sparse_depth

from ..data.handmade import write_handmade

W, H = 64, 36
K = np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]])
#: camera (x right, y down, z forward) -> ego (x forward, y left, z up)
CAM_TO_FWD = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
LIDAR_Z = 1.8
STEPS = 80




def rig() -> np.ndarray:
    """Two cameras at 1.5 m: forward and backward, (2, 4, 4) cam_to_ego."""
    out = []
    for yaw in (0.0, np.pi):
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        m = np.eye(4)
        m[:3, :3] = rz @ CAM_TO_FWD
        m[:3, 3] = [np.cos(yaw), 0.0, 1.5]
        out.append(m)
    return np.stack(out)


def world(seed: int) -> np.ndarray:
    """Boxes (n, 6) ``xmin, xmax, ymin, ymax, 0, zmax`` metres in the ego frame, around the ego."""
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(7):
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(6, 16)
        cx, cy, sx, sy = dist * np.cos(ang), dist * np.sin(ang), *rng.uniform(1.5, 5, 2)
        boxes.append([cx - sx / 2, cx + sx / 2, cy - sy / 2, cy + sy / 2, 0.0, rng.uniform(1.5, 4)])
    return np.array(boxes)


def cast(origins: np.ndarray, dirs: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Ray parameter t (n,) of the first hit (ground z = 0 or a box), inf for none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dirs[:, 2] < 0, -origins[:, 2] / dirs[:, 2], np.inf)
        for b in boxes:
            lo, hi = b[[0, 2, 4]], b[[1, 3, 5]]
            t1, t2 = (lo - origins) / dirs, (hi - origins) / dirs
            tn = np.nanmax(np.minimum(t1, t2), axis=1)
            tf = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tn <= tf) & (tf > 0) & (tn > 0)
            t = np.where(hit & (tn < t), tn, t)
    return t


def render(boxes: np.ndarray, k: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Images (v, h, w, 3) uint8 and camera-z depth (v, h, w) (inf = sky) of every rig camera."""
    w, h = size
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1) @ np.linalg.inv(k).T  # camera z = 1
    images, depths = [], []
    for c2e in rig():
        dirs = d_cam @ c2e[:3, :3].T
        t = cast(np.broadcast_to(c2e[:3, 3], dirs.shape).copy(), dirs, boxes)
        on_box = np.zeros(len(t), bool)
        z_hit = c2e[2, 3] + t * dirs[:, 2]
        on_box = np.isfinite(t) & (z_hit > 1e-3)
        d = t.reshape(h, w)
        img = np.zeros((h * w, 3))
        img[:, 0] = np.where(np.isfinite(t), 255 * np.exp(-np.where(np.isfinite(t), t, 0) / 15), 0)
        img[:, 1] = np.where(on_box, 180, np.where(np.isfinite(t), 90, 30))
        img[:, 2] = np.where(np.isfinite(t), 40, 200)
        images.append(img.reshape(h, w, 3).astype(np.uint8))
        depths.append(d)
    return np.stack(images), np.stack(depths)


def lidar(boxes: np.ndarray) -> np.ndarray:
    """Ego-frame returns (n, 3) of a 16-beam spinning sensor at (0, 0, 1.8), 60 m range."""
    el = np.deg2rad(np.linspace(-25, 5, 16))
    az = np.deg2rad(np.arange(0, 360, 1.0))
    e, a = np.meshgrid(el, az)
    dirs = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)
    origin = np.array([0.0, 0.0, LIDAR_Z])
    t = cast(np.broadcast_to(origin, dirs.shape).copy(), dirs, boxes)
    keep = t < 60
    return origin + t[keep, None] * dirs[keep]


def test_sparse_depth_and_projection_by_hand():
    c2e = rig()[0]
    # ego (11, 2, 1.5): camera x = -2, y = 0, z = 10 (camera at x = 1) -> u = 40 * -0.2 + 32 = 24, v = 18
    pts = np.array([[11.0, 2.0, 1.5], [21.0, 4.0, 1.5], [-5.0, 0.0, 1.5], [11.0, 40.0, 1.5]])
    uv, z, idx = project_lidar(pts, K, c2e, (W, H), 1.0, 80.0)
    np.testing.assert_allclose(uv, [[24, 18], [24, 18]], atol=1e-9)
    np.testing.assert_allclose(z, [10, 20])
    assert idx.tolist() == [0, 1]  # behind the camera and outside the image are dropped
    d = sparse_depth(pts, K, c2e, (W, H), 1.0, 80.0)
    assert d[18, 24] == 10.0 and np.count_nonzero(d) == 1  # nearest point wins the pixel
    assert sparse_depth(pts, K, c2e, (W, H), 1.0, 15.0)[18, 24] == 10.0
    assert np.count_nonzero(sparse_depth(pts, K, c2e, (W, H), 12.0, 80.0)) == 1


def test_depth_agreement_and_discontinuities_arithmetic():
    m = depth_agreement(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.5, 2.0]))
    assert m["abs_rel"] == pytest.approx((0 + 0.2 + 1.0) / 3)
    assert m["delta1"] == pytest.approx(1 / 3)  # ratios 1, 1.25 (not < 1.25), 2
    assert m["rmse"] == pytest.approx(np.sqrt((0 + 0.25 + 4) / 3))
    assert m["sq_rel"] == pytest.approx((0 + 0.25 / 2.5 + 4 / 2) / 3)
    uv = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [2.0, 9.0]])
    z = np.array([10.0, 10.0, 5.0, 10.0, 30.0])
    # point 2 (5 m) has horizontal neighbours at 10 m > 1.5 x 5 m; point 4 is 4 rows away (no neighbour)
    assert lidar_discontinuities(uv, z, radius=1.5, ratio=1.5).tolist() == [False, False, True, False, False]
    assert not lidar_discontinuities(uv, z, radius=1.5, ratio=2.5).any()


def test_frame_stats_pool_by_points():
    depth, edges = np.full((1, 18, 32), 10.0), np.ones((1, H, W))
    a = frame_consistency(depth, edges, K[None], rig()[:1], np.array([[11.0, 2.0, 1.5]]))
    # (21, 4, 1.5): 20 m deep, AbsRel 0.5; (11, -2, 0.1): 10 m deep but on the ground (z 0.1 m < 0.3 m)
    b = frame_consistency(depth, edges, K[None], rig()[:1], np.array([[21.0, 4.0, 1.5], [11.0, -2.0, 0.1]]))
    assert (a.points, b.points) == (1, 2) and a.abs_rel == 0.0 and b.abs_rel == pytest.approx(0.5)
    assert (a.above_points, b.above_points) == (1, 1)
    pooled = pool_stats([a, b])
    assert pooled["abs_rel"] == pytest.approx(0.5 / 3) and pooled["delta1"] == pytest.approx(2 / 3)
    assert pooled["abs_rel_above_ground"] == pytest.approx(0.5 / 2) and pooled["delta1_above_ground"] == pytest.approx(1 / 2)
    assert np.isnan(pooled["edge_align"])  # no discontinuity among three isolated points
    # edge strength counts relative to its image row: a uniformly busy row is not an "edge"
    busy = np.ones((1, H, W))
    busy[0, 18, :] = 5.0
    busy[0, 18, 24] = 20.0
    c = frame_consistency(depth, busy, K[None], rig()[:1], np.array([[11.0, 2.0, 1.5], [11.0, 0.0, 1.5]]))
    row_mean = (5.0 * (W - 1) + 20.0) / W
    assert c.edge_all == pytest.approx(20.0 / row_mean + 5.0 / row_mean)


def _oracle_stats(boxes_img, boxes_lidar):
    images, _ = render(boxes_img, K, (W, H))
    _, depth_half = render(boxes_img, scale_intrinsics(K, 0.5, 0.5), (W // 2, H // 2))
    edges = np.stack([edge_strength(im) for im in images])
    # the sky clamped to the far end of the range, as a depth network would predict it
    return frame_consistency(np.minimum(depth_half, 80.0), edges, np.stack([K, K]), rig(), lidar(boxes_lidar))


def test_exact_depth_scores_matched_pairs_well_and_mismatched_badly():
    matched = pool_stats([_oracle_stats(world(s), world(s)) for s in range(3)])
    mismatched = pool_stats([_oracle_stats(world(s), world(s + 10)) for s in range(3)])
    # matched errors come only from half-resolution cells and camera/LiDAR parallax
    assert matched["abs_rel"] < 0.2 and matched["delta1"] > 0.85
    assert mismatched["delta1_above_ground"] < matched["delta1_above_ground"] - 0.25
    assert mismatched["abs_rel"] > 5 * matched["abs_rel"] and mismatched["delta1"] < matched["delta1"] - 0.25
    # model-free: LiDAR silhouettes sit on image edges only when the pair matches
    assert matched["edge_align"] > 2.0
    assert mismatched["edge_align"] < matched["edge_align"] - 1.0


def test_learned_depth_separates_matched_from_mismatched():
    """Train the depth network briefly on ray-cast frames (sparse LiDAR targets), then score unseen
    worlds: images with their own LiDAR vs with another world's LiDAR."""
    torch.manual_seed(0)
    cfg = DepthNetConfig(image_size=(W, H), widths=(8, 16, 16), min_depth=1.0, max_depth=60.0)
    net = DepthNet(cfg)
    half = scale_intrinsics(K, 0.5, 0.5)
    imgs, targets = [], []
    for s in range(100, 110):
        boxes = world(s)
        images, _ = render(boxes, K, (W, H))
        pts = lidar(boxes)
        imgs.append(images)
        targets.append(np.stack([sparse_depth(pts, half, c, (W // 2, H // 2), 1.0, 60.0) for c in rig()]))
    x = torch.from_numpy(np.concatenate(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1
    gt = torch.from_numpy(np.concatenate(targets))
    fx = torch.full((len(x),), K[0, 0])
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    valid = gt > 0
    first = None
    for step in range(STEPS):
        loss = (net(x, fx)[:, 0][valid].log() - gt[valid].log()).abs().mean()
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    scorer = ConsistencyScorer(net.eval())
    matched, mismatched = [], []
    for s in range(3):
        boxes, other = world(s), world(s + 10)
        images, _ = render(boxes, K, (W, H))
        depth, edges = scorer.maps(images, np.stack([K, K]))
        matched.append(scorer.score(depth, edges, np.stack([K, K]), rig(), lidar(boxes)))
        mismatched.append(scorer.score(depth, edges, np.stack([K, K]), rig(), lidar(other)))
    good, bad = pool_stats(matched), pool_stats(mismatched)
    assert good["abs_rel"] < 0.2 and good["delta1"] > 0.75
    assert bad["abs_rel"] > 2 * good["abs_rel"] and bad["delta1"] < good["delta1"] - 0.15


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    learned_cli.register(sub)
    return parser


def test_consistency_cli_report(root, tmp_path):
    torch.manual_seed(0)
    cfg = DEPTH_PRESETS["tiny"]()
    model = DEPTH_TASK.build(cfg, root).build_model()
    run = tmp_path / "run"
    save_checkpoint(run, 3, model=model.state_dict(), optimizer={}, ema=None, state={"task": "depth", "config": config_to_dict(cfg)}, keep_last=1)
    _loaded, cfg2, info = load_depth_model(run)
    assert cfg2 == cfg and info["step"] == 3 and len(info["sha256"]) == 64
    args = _parser().parse_args(["consistency", "--gen", str(root), "--model", str(run), "--out", str(tmp_path / "out"), "--bootstrap", "20"])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "out" / "consistency.json").read_text())
    names = [r["metric"] for r in report["rows"]]
    assert "AbsRel (paired)" in names and "AbsRel (control: other frame's LiDAR)" in names
    row = report["rows"][names.index("AbsRel (paired)")]
    assert row["counts"]["frames"] == 4 and row["value"] > 0 and row["ci"]["low"] <= row["value"] <= row["ci"]["high"]
    # a checkpoint of another task is refused by name
    bad = tmp_path / "bad"
    save_checkpoint(bad, 1, model=model.state_dict(), optimizer={}, ema=None, state={"task": "x", "config": {"model": {}}}, keep_last=1)
    with pytest.raises(DataError, match="written by task 'x', expected 'depth'"):
        load_depth_model(bad)
