"""Geometry and schema: analytic projections, quaternion round trips, box geometry, validation."""

from __future__ import annotations

import numpy as np
import pytest

from genesis_drive.data.geometry import Pose, project_points, quat_from_matrix, quat_from_yaw, quat_to_matrix, slerp
from genesis_drive.data.schema import Box3D, Clip, HumanPose, LidarSweep, MapLayers, detection_class


def test_quaternion_matrix_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(quat_from_matrix(quat_to_matrix(q)), q, atol=1e-9)
    np.testing.assert_allclose(quat_to_matrix(quat_from_yaw(np.pi / 2)) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_pose_compose_inverse_apply():
    a = Pose(quat_from_yaw(0.4), [1, 2, 3])
    b = Pose(quat_from_yaw(-1.1), [-4, 0.5, 1])
    p = np.array([[0.3, -2.0, 1.0]])
    np.testing.assert_allclose((a @ b).apply(p), a.apply(b.apply(p)), atol=1e-12)
    np.testing.assert_allclose(a.inverse().apply(a.apply(p)), p, atol=1e-12)
    with pytest.raises(ValueError, match="unit quaternion"):
        Pose([1, 1, 0, 0], [0, 0, 0])


def test_projection_analytic():
    k = np.array([[1000.0, 0, 800], [0, 1000.0, 450], [0, 0, 1]])
    uv, valid = project_points(np.array([[1.0, -0.5, 10.0], [0, 0, -5.0]]), k)
    np.testing.assert_allclose(uv[0], [900.0, 400.0])
    assert valid.tolist() == [True, False] and np.isnan(uv[1]).all()


def test_slerp_midpoint():
    q = slerp(quat_from_yaw(0.0), quat_from_yaw(1.0), 0.5)
    np.testing.assert_allclose(q, quat_from_yaw(0.5), atol=1e-12)


def test_box_corners_contains_transform():
    box = Box3D.from_yaw([10, 5, 1], [2.0, 4.0, 1.5], np.pi / 2, "vehicle.car")
    c = box.corners()
    # heading +y: the front face (indices 0-3) is at y = 5 + 2
    np.testing.assert_allclose(c[:4, 1], 7.0, atol=1e-12)
    np.testing.assert_allclose(c[4:, 1], 3.0, atol=1e-12)
    assert c[:, 2].max() == pytest.approx(1.75) and c[:, 2].min() == pytest.approx(0.25)
    pts = np.array([[10, 5, 1], [10, 6.9, 1], [11.1, 5, 1], [10, 5, 1.8]])
    assert box.contains(pts).tolist() == [True, True, False, False]
    pose = Pose(quat_from_yaw(-np.pi / 2), [0, 0, 0])
    moved = box.transform(pose)
    assert moved.yaw == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(moved.center, [5, -10, 1], atol=1e-12)
    assert detection_class("vehicle.bus.rigid") == "bus" and detection_class("human.pedestrian.child") == "pedestrian"


def test_schema_validation_messages():
    with pytest.raises(ValueError, match=r"Box3D.size \(w, l, h\) must be positive"):
        Box3D.from_yaw([0, 0, 0], [1, 0, 1], 0, "vehicle.car")
    with pytest.raises(ValueError, match="Box3D.visibility must be 1..4"):
        Box3D.from_yaw([0, 0, 0], [1, 1, 1], 0, "vehicle.car", visibility=7)
    with pytest.raises(ValueError, match=r"HumanPose.keypoints must be finite with shape \(17, 3\)"):
        HumanPose(np.zeros((16, 3)), "p")
    with pytest.raises(ValueError, match=r"LidarSweep.points must be finite \(N, 5\)"):
        LidarSweep(np.zeros((10, 4)), Pose.identity(), Pose.identity(), 0)
    with pytest.raises(ValueError, match=r"MapLayers.drivable_area\[0\] must be finite"):
        MapLayers(drivable_area=(np.zeros((2, 2)),))
    with pytest.raises(ValueError, match=r"Clip.images must be"):
        Clip("s", ("CAM_FRONT",), np.zeros((2, 1, 4, 4, 3), dtype=np.float32), np.zeros((1, 3, 3)), np.zeros((1, 4, 4)),
             np.zeros((2, 4, 4)), np.zeros(2), [[], []], [[], []], [], np.eye(4), np.zeros((0, 4, 4)), np.zeros(0),
             MapLayers(), np.zeros((2, 3)), np.zeros(2, dtype=bool))


def test_map_to_frame_and_crop():
    layers = MapLayers(lane_divider=(np.array([[10.0, 0.0], [20.0, 0.0]]), np.array([[500.0, 0.0], [510.0, 0.0]])))
    ego = Pose(quat_from_yaw(np.pi / 2), [10, -5, 0])  # ego at (10, -5) facing +y
    local = layers.to_frame(ego)
    np.testing.assert_allclose(local.lane_divider[0], [[5, 0], [5, -10]], atol=1e-12)
    assert len(local.crop(np.zeros(2), 50).lane_divider) == 1


def test_map_crop_keeps_long_geometry_passing_through():
    road = MapLayers(drivable_area=(np.array([[-500.0, -5.0], [500.0, -5.0], [500.0, 5.0], [-500.0, 5.0]]),),
                     lane_divider=(np.array([[-500.0, 300.0], [500.0, 300.0]]),))
    cropped = road.crop(np.zeros(2), 50.0)
    assert len(cropped.drivable_area) == 1 and len(cropped.lane_divider) == 0
