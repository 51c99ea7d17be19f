"""Chamfer distance: brute force, analytic cases, every protocol switch, horizon aggregation."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from genesis_drive.data.chamfer import (
    CHAMFER_PROTOCOLS,
    EmptyCloudError,
    chamfer_distance,
    filter_points,
    nearest_sq_dists,
)
from genesis_drive.eval.chamfer_metric import ChamferMetric

VIDAR = CHAMFER_PROTOCOLS["vidar"]


def brute(p, g, squared=True):
    d = ((p[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    if not squared:
        d = np.sqrt(d)
    return 0.5 * (d.min(1).mean() + d.min(0).mean())


@pytest.mark.parametrize("backend", ["kdtree", "cdist"])
@pytest.mark.parametrize("squared", [True, False])
def test_matches_brute_force(backend, squared):
    rng = np.random.default_rng(0)
    p, g = rng.normal(size=(300, 3)) * 5, rng.normal(size=(250, 3)) * 5 + 0.3
    assert chamfer_distance(p, g, squared, backend) == pytest.approx(brute(p, g, squared), rel=1e-10)


def test_cdist_chunks_and_tensors():
    rng = np.random.default_rng(1)
    q, r = rng.normal(size=(1000, 3)), rng.normal(size=(70, 3))
    np.testing.assert_allclose(nearest_sq_dists(torch.from_numpy(q), torch.from_numpy(r), "cdist", chunk=64), nearest_sq_dists(q, r), rtol=1e-9, atol=1e-12)


def test_analytic_squared_vs_plain():
    p = np.array([[0.0, 0, 0]])
    g = np.array([[1.0, 0, 0], [3.0, 0, 0]])
    # squared: p->g min 1; g->p (1 + 9) / 2 = 5; CD = 0.5 (1 + 5) = 3 m^2
    assert chamfer_distance(p, g) == pytest.approx(3.0)
    # plain: 0.5 (1 + (1 + 3) / 2) = 1.5 m
    assert chamfer_distance(p, g, squared=False) == pytest.approx(1.5)
    with pytest.raises(EmptyCloudError):
        chamfer_distance(p, np.zeros((0, 3)))


def test_filters():
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [52.0, 0, 0], [10.0, 0, 3.5], [10.0, 0, -5.0], [-0.9, 0.0, 0.0]])
    kept = filter_points(pts, VIDAR.x_range, VIDAR.y_range, VIDAR.z_range, VIDAR.ego_box)
    # (0,0,0) and (0,2,0) are inside the ego box; x = 52 and z = 3.5 out of range; z = -5 on the closed edge
    np.testing.assert_array_equal(kept, pts[[4, 5]])


def make_metric(protocol):
    return ChamferMetric(protocol)


def test_vidar_region_and_ego_mask_change_the_value():
    gt = np.array([[10.0, 0, 0], [20.0, 0, 0]])
    pred = np.array([[10.0, 0, 0], [20.0, 0, 0], [60.0, 0, 0], [0.2, 0.5, 0.0]])  # a far point and an ego return
    no_filters = replace(VIDAR, x_range=None, y_range=None, z_range=None, ego_box=None)
    raw = ChamferMetric(no_filters).frame_distance(pred, gt)
    # unfiltered: pred->gt: (0 + 0 + 40^2 + 9.8^2 + 0.5^2) / 4, gt->pred: 0
    assert raw == pytest.approx(0.5 * (1600 + 9.8**2 + 0.25) / 4)
    assert ChamferMetric(VIDAR).frame_distance(pred, gt) == pytest.approx(0.0)
    only_range = replace(VIDAR, ego_box=None)
    assert ChamferMetric(only_range).frame_distance(pred, gt) == pytest.approx(0.5 * (9.8**2 + 0.25) / 3)
    plain = replace(VIDAR, squared=False, ego_box=None)
    assert ChamferMetric(plain).frame_distance(pred, gt) == pytest.approx(0.5 * np.hypot(9.8, 0.5) / 3)


def test_reference_frame_moves_points_before_the_region():
    # a 5 m forward move puts x = 68 outside the 4D-Occ near-field (+-70 m) in the t=0 frame
    pred = np.array([[68.0, 0, 0], [0.0, 10, 0]])
    gt = np.array([[68.0, 1, 0], [0.0, 10, 0]])
    move = np.eye(4)
    move[0, 3] = 5.0
    near = CHAMFER_PROTOCOLS["4docc_nearfield"]
    assert ChamferMetric(replace(near, frame="sensor")).frame_distance(pred, gt) == pytest.approx(0.5)
    assert ChamferMetric(near).frame_distance(pred, gt, move) == pytest.approx(0.0)
    # vanilla 4D-Occ keeps everything: a rigid move does not change the distance
    assert ChamferMetric("4docc").frame_distance(pred, gt, move) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sensor_to_reference"):
        ChamferMetric(near).frame_distance(pred, gt)


def test_empty_clouds_per_protocol():
    pred, gt = np.array([[100.0, 0, 0]]), np.array([[5.0, 0, 0]])
    with pytest.raises(EmptyCloudError, match="vidar"):
        ChamferMetric("vidar").update(pred, gt, 2, "s")
    m = ChamferMetric("4docc_nearfield")
    m.update(pred, gt, 1, "s", np.eye(4))
    m.update(gt + [1, 0, 0], gt, 2, "s", np.eye(4))
    assert m.counts()["empty_frames"] == 1
    assert float(m.compute()["1s"]) == pytest.approx(0.5)  # (0 + 1) / 2: the empty frame counts as 0


def fill(metric, samples=("a", "b"), scale=1.0):
    gt = np.array([[10.0, 0, 0]])
    for s in samples:
        for k in range(1, 7):
            metric.update(gt + [scale * k, 0, 0], gt, k, s, np.eye(4))  # CD = (scale k)^2
    return metric


def test_horizon_aggregation_vidar_vs_4docc():
    v = fill(ChamferMetric("vidar")).compute()
    assert {k: float(x) for k, x in v.items()} == pytest.approx({"1s": 4.0, "2s": 16.0, "3s": 36.0})
    o = fill(ChamferMetric("4docc")).compute()
    assert {k: float(x) for k, x in o.items()} == pytest.approx({"1s": 2.5, "2s": 7.5, "3s": 91 / 6})
    assert fill(ChamferMetric("vidar")).per_frame() == pytest.approx({k: float(k * k) for k in range(1, 7)})


def test_bootstrap_resamples_samples_and_is_seeded():
    m = ChamferMetric("vidar")
    gt = np.array([[10.0, 0, 0]])
    for i, s in enumerate("abcdefgh"):
        m.update(gt + [0.1 * (i + 1), 0, 0], gt, 2, s)
    ci = m.bootstrap(num_resamples=300, seed=0)["1s"]
    values = (0.1 * np.arange(1, 9)) ** 2
    assert ci.value == pytest.approx(values.mean())
    assert values.min() < ci.low < ci.value < ci.high < values.max()
    assert ci == m.bootstrap(num_resamples=300, seed=0)["1s"]
    # only offset 2 was scored: 2 s and 3 s are reported missing, not invented
    assert list(m.compute()) == ["1s"] and m.missing_horizons() == ["2s", "3s"]
    other = ChamferMetric("vidar")
    other.update(gt, gt, 1, "a")
    with pytest.raises(ValueError, match="no scored frame"):
        other.compute()


def test_merge_state_concatenates_frames():
    a, b = fill(ChamferMetric("vidar"), ("a",)), fill(ChamferMetric("vidar"), ("b",), scale=2.0)
    a.merge_state(b)
    assert float(a.compute()["1s"]) == pytest.approx((4 + 16) / 2)
    with pytest.raises(ValueError, match="unknown Chamfer protocol"):
        ChamferMetric("kitti")
