"""LiDAR ray casting against analytic geometry, and fault injection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from genesis_drive.data.geometry import Pose
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.errors import ConfigError
from genesis_drive.world.config import FaultConfig, FaultRate, LidarConfig
from genesis_drive.world.faults import apply_faults, draw_faults
from genesis_drive.world.lidar import RayCaster, cast_sweep
from genesis_drive.world.mesh import Material, TriangleMesh
from genesis_drive.world.primitives import box, mesh
from genesis_drive.world.sensors import lidar_calibration

EXACT = LidarConfig(azimuth_steps=720, range_noise=0.0, drop_base=0.0, drop_far=0.0, drop_grazing=0.0, drop_glass=0.0, max_range=500.0)


def _ground(z: float = 0.0, half: float = 2000.0) -> TriangleMesh:
    v = [[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]]
    return mesh(np.array(v) + [400, 300, 0], [[0, 1, 2], [0, 2, 3]], (0.3, 0.3, 0.3), Material.ROAD)


def _sweep(static: TriangleMesh, ego: Pose, cfg: LidarConfig = EXACT, columns=None, dynamic=None):
    caster = RayCaster(static)
    if dynamic is not None:
        caster.set_dynamic(dynamic)
    cal = lidar_calibration()
    cols = np.repeat(ego.matrix()[None], cfg.azimuth_steps, 0) if columns is None else columns
    return cast_sweep(caster, cfg, cal.sensor_to_ego, cols, ego, np.random.default_rng(0))


def test_ground_returns_analytic_depth():
    ego = Pose.from_xy_yaw(412.3, 297.1, 0.7)
    res = _sweep(_ground(), ego)
    pts = res.points
    elev = np.deg2rad(np.linspace(10.67, -30.67, 32))
    ring = pts[:, 4].astype(int)
    assert set(ring) == set(np.flatnonzero(elev < 0))  # exactly the downward beams hit the ground
    rng = np.linalg.norm(pts[:, :3], axis=1)
    np.testing.assert_allclose(rng, 1.84 / np.sin(-elev[ring]), rtol=1e-5)
    np.testing.assert_allclose(pts[:, 2], -1.84, atol=1e-4)  # LiDAR frame z up, 1.84 m above the road
    assert len(pts) == 720 * int(np.sum(elev < 0))
    # intensity: road reflectivity x cos(incidence) = sin(-elevation)
    np.testing.assert_allclose(pts[:, 3], np.round(255 * 0.07 * np.sin(-elev[ring])), atol=1)


def test_wall_distance_and_sensor_frame_axes():
    ego = Pose.from_xy_yaw(400.0, 300.0, np.pi / 2)  # facing +y (global)
    wall = box((380, 320, -5), (420, 321, 30), (0.5, 0.5, 0.5), Material.BUILDING)  # 20 m ahead of the ego
    res = _sweep(TriangleMesh.concat([wall]), ego)
    fwd = res.points[np.abs(res.points[:, 0]) < 1.0]  # LiDAR frame: y forward, x right
    assert len(fwd) > 0
    # the LiDAR sits 0.944 m ahead of the rear axle: the wall is 20 - 0.944 m away along sensor +y
    np.testing.assert_allclose(fwd[:, 1], 20.0 - 0.944, atol=1e-3)
    assert np.all(res.instance == 0)


def test_rolling_acquisition_follows_ego_motion():
    ego = Pose.from_xy_yaw(400.0, 300.0, 0.0)
    cols = np.repeat(ego.matrix()[None], EXACT.azimuth_steps, 0)
    from genesis_drive.world.sensors import lidar_beam_directions

    _, frac, _ = lidar_beam_directions(EXACT)
    cols[:, 0, 3] += 10.0 * frac * 0.05  # 10 m/s along x during the 50 ms sweep
    wall = box((420, 250, -5), (421, 350, 30), (0.5, 0.5, 0.5), Material.BUILDING)  # 20 m ahead
    back = box((370, 250, -5), (371, 350, 30), (0.5, 0.5, 0.5), Material.BUILDING)  # 29 m behind
    res = _sweep(TriangleMesh.concat([wall, back]), ego, columns=cols)
    p = res.points
    ahead = p[(np.abs(p[:, 0]) < 0.1) & (p[:, 1] > 0)]
    behind = p[(np.abs(p[:, 0]) < 0.6) & (p[:, 1] < 0)]
    # points are expressed in the sweep-time frame, so both walls keep their true distance
    np.testing.assert_allclose(ahead[:, 1], 20.0 - 0.944, atol=1e-3)
    np.testing.assert_allclose(behind[:, 1], -(29.0 + 0.944), atol=1e-3)


def test_ray_drop_noise_and_dynamic_instances():
    ego = Pose.from_xy_yaw(400.0, 300.0, 0.0)
    car = box((408, 299, 0), (412, 301, 1.5), (0.7, 0.1, 0.1), Material.VEHICLE_BODY, instance=7)
    noisy = dataclasses.replace(EXACT, range_noise=0.05, drop_base=0.2)
    exact = _sweep(_ground(), ego, dynamic=car)
    res = _sweep(_ground(), ego, cfg=noisy, dynamic=car)
    assert 0.7 < len(res.points) / len(exact.points) < 0.9  # ~20 % dropped
    assert set(np.unique(exact.instance)) == {0, 7}
    on_car = exact.points[exact.instance == 7]
    assert len(on_car) > 20
    glob = (ego @ lidar_calibration().sensor_to_ego).apply(on_car[:, :3])
    assert np.all((glob[:, 0] > 407.99) & (glob[:, 0] < 412.01) & (glob[:, 2] < 1.51))
    ground = res.points[res.instance == 0]
    elev = np.deg2rad(np.linspace(10.67, -30.67, 32))[ground[:, 4].astype(int)]
    residual = np.linalg.norm(ground[:, :3], axis=1) - 1.84 / np.sin(-elev)
    assert abs(residual.mean()) < 0.005 and 0.045 < residual.std() < 0.055  # Gaussian range noise, sigma 5 cm


def test_fault_rates_per_frame_and_per_clip():
    cfg = FaultConfig((FaultRate("motion_blur", 0.1), FaultRate("lens_dirt", 0.25, per="clip")))
    n_frames = 2000
    events = draw_faults(cfg, np.random.default_rng(0), n_frames, CAMERA_CHANNELS)
    blur = sum(1 for evs in events.values() for e in evs if e.kind == "motion_blur")
    expected = 0.1 * n_frames * 6
    assert abs(blur - expected) < 4 * np.sqrt(expected * 0.9)
    clips = 0
    for seed in range(200):
        ev = draw_faults(cfg, np.random.default_rng(seed), 3, CAMERA_CHANNELS)
        dirty = {ch for (f, ch), evs in ev.items() for e in evs if e.kind == "lens_dirt"}
        for ch in dirty:  # a dirty lens stays dirty, with the same pattern, on every frame
            pats = {(e.seed, e.severity) for f in range(3) for e in ev[(f, ch)] if e.kind == "lens_dirt"}
            assert len(pats) == 1 and all((f, ch) in ev for f in range(3))
        clips += len(dirty)
    assert abs(clips / (200 * 6) - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 1200)
    assert draw_faults(cfg, np.random.default_rng(5), 50, CAMERA_CHANNELS) == draw_faults(cfg, np.random.default_rng(5), 50, CAMERA_CHANNELS)
    with pytest.raises(ConfigError, match="kind"):
        FaultRate("fisheye", 0.1)
    with pytest.raises(ConfigError, match="rate"):
        FaultRate("motion_blur", 1.5)


def _fault(kind: str, sev: float = 0.8, seed: int = 1):
    from genesis_drive.world.faults import FaultEvent

    return [FaultEvent(kind, sev, "frame", seed)]


def test_faults_change_images_as_described():
    rng = np.random.default_rng(0)
    img = np.full((90, 160, 3), 100, np.uint8)
    img[:, ::8] = 200  # vertical stripes: sharp edges
    img += rng.integers(0, 40, img.shape, dtype=np.uint8)
    grad = lambda a: np.abs(np.diff(a.astype(float), axis=1)).mean()
    assert grad(apply_faults(img, _fault("motion_blur"))) < 0.7 * grad(img)
    assert apply_faults(img, _fault("overexposure")).mean() > 1.6 * img.mean()
    assert not apply_faults(img, _fault("dropped_frame")).any()
    back = apply_faults(img, _fault("backlight")).astype(float)
    assert back[:20].mean() > back[-20:].mean() + 40  # glare at the top, dark below
    dirt = apply_faults(img, _fault("lens_dirt"))
    changed = np.any(dirt != img, axis=2).mean()
    assert 0.02 < changed < 0.8
    occ = apply_faults(img, _fault("occlusion")).astype(float)
    dark = (occ.mean(axis=2) < 60).mean()
    assert 0.05 < dark < 0.6  # a dark shape over part of the image
    np.testing.assert_array_equal(apply_faults(img, _fault("lens_dirt")), dirt)  # same seed, same pattern
