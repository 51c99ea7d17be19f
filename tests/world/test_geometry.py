"""Primitives, polylines, the road network, bodies and the sensor rig."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Point, Polygon

from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.errors import ConfigError
from genesis_drive.world.config import RoadConfig, preset
from genesis_drive.world.mesh import Material
from genesis_drive.world.pedestrians import body_mesh, box_size, cycling_pose, random_body, walking_pose
from genesis_drive.world.polyline import Polyline
from genesis_drive.world.primitives import beam, beams, box, cylinder, triangulate_polygon
from genesis_drive.world.roads import build_network, simple_polygons
from genesis_drive.world.sensors import camera_calibrations, lidar_beam_directions, lidar_calibration
from genesis_drive.world.vehicles import bicycle, bus, car, truck


def _signed_volume(m) -> float:
    v = m.vertices.astype(np.float64)[m.faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def test_closed_primitives_have_outward_faces_and_right_volume():
    assert _signed_volume(box((0, 0, 0), (2, 3, 4), (1, 0, 0), Material.BUILDING)) == pytest.approx(24.0)
    assert _signed_volume(beam((0, 0, 0), (0, 0, 2), 0.5, 0.4, (1, 0, 0), Material.POLE)) == pytest.approx(0.4)
    many = beams(np.zeros((3, 3)), [[1, 0, 0], [0, 2, 0], [0, 0, 3]], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], np.ones((3, 3)), Material.POLE)
    assert _signed_volume(many) == pytest.approx(0.01 + 0.08 + 0.27)
    octagon = 0.5 * 8 * np.sin(2 * np.pi / 8)  # area of a unit-radius octagon
    assert _signed_volume(cylinder((0, 0, 0), (0, 0, 2), 1.0, (1, 0, 0), Material.POLE, sides=8)) == pytest.approx(2 * octagon)


def test_triangulation_covers_polygon_with_hole():
    poly = Polygon([(0, 0), (20, 0), (20, 10), (0, 10)], [[(5, 3), (8, 3), (8, 7), (5, 7)]])
    v, f = triangulate_polygon(poly, max_edge=1.0)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    assert np.all(cross > 0)  # counter-clockwise seen from above
    assert 0.5 * cross.sum() == pytest.approx(poly.area, rel=1e-6)
    assert not any(Point(*((a + b + c) / 3)[i]).within(poly.interiors[0].convex_hull) for i in range(len(f)))


def test_simple_polygons_cut_holes_and_keep_area():
    ring = Point(0, 0).buffer(10).difference(Point(0, 0).buffer(5))
    pieces = simple_polygons(ring)
    assert len(pieces) >= 2
    assert sum(Polygon(p).area for p in pieces) == pytest.approx(ring.area, rel=1e-9)


def test_polyline_arc_length_and_offsets():
    line = Polyline([[0, 0], [10, 0], [10, 10]])
    assert line.length == pytest.approx(20.0)
    np.testing.assert_allclose(line.xy(15.0), [10, 5])
    assert line.at(5.0)[:2] == pytest.approx((5.0, 0.0))
    assert line.at(0.0)[2] == pytest.approx(0.0) and line.at(10.0)[2] == pytest.approx(np.pi / 4)  # corner: mean tangent
    np.testing.assert_allclose(line.heading(np.array([0.0, 10.0, 20.0])), [0.0, np.pi / 4, np.pi / 2])
    left = Polyline([[0, 0], [10, 0]]).offset(2.0)
    np.testing.assert_allclose(left.points[:, 1], 2.0)
    s, d = line.project(np.array([[3.0, 1.0], [12.0, 7.0]]))
    np.testing.assert_allclose(s, [3.0, 17.0])
    np.testing.assert_allclose(d, [1.0, 2.0])
    ring = Polyline([[0, 0], [4, 0], [4, 4], [0, 4]], closed=True)
    assert ring.length == pytest.approx(16.0)
    np.testing.assert_allclose(ring.xy(17.0), [1.0, 0.0])


@pytest.fixture(scope="module")
def network():
    return build_network(RoadConfig(), np.random.default_rng(11))


def test_network_lanes_connect_smoothly(network):
    lanes = network.lanes
    for lane in lanes:
        assert lane.successors, f"lane {lane.id} is a dead end"
        for k in lane.successors:
            nxt = lanes[k]
            np.testing.assert_allclose(lane.line.xy(lane.length), nxt.line.xy(0.0), atol=1e-6)
            turn = np.angle(np.exp(1j * (nxt.line.heading(0.0) - lane.line.heading(lane.length))))
            assert abs(turn) < np.deg2rad(12)
    degrees = sorted(len(j.arms) for j in network.junctions)
    assert degrees[0] >= 2 and 3 in degrees or 4 in degrees
    for j in network.junctions:
        assert (j.signal is not None) == (len(j.arms) >= 3)


def test_network_geometry_is_consistent(network):
    drivable = network.drivable
    for lane in network.road_lanes():  # lanes run on asphalt, a car half-width or more from the kerb
        pts = lane.line.sample(5.0)
        assert all(drivable.buffer(-1.2).contains(Point(*p)) for p in pts)
    for c in network.crossings:  # crossings span the road; their ends are on the sidewalk
        assert drivable.intersection(Polygon(c.polygon)).area > 0.9 * Polygon(c.polygon).area
        for e in c.ends:
            assert network.sidewalk.buffer(0.3).contains(Point(*e))
    layers = network.map_layers()
    assert sum(Polygon(p).area for p in layers.drivable_area) == pytest.approx(drivable.area, rel=1e-6)
    assert np.min(np.concatenate(layers.drivable_area)) > 0  # the raster map covers positive x, y


def test_network_is_deterministic_and_seed_dependent():
    a = build_network(RoadConfig(), np.random.default_rng(5))
    b = build_network(RoadConfig(), np.random.default_rng(5))
    c = build_network(RoadConfig(), np.random.default_rng(6))
    np.testing.assert_array_equal(a.nodes, b.nodes)
    assert a.drivable.equals(b.drivable)
    assert not np.allclose(a.nodes, c.nodes)
    with pytest.raises(ConfigError, match="grid"):
        build_network(RoadConfig(grid=(1, 3)), np.random.default_rng(0))


def test_signal_cycles_through_phases(network):
    j = next(j for j in network.junctions if j.signal is not None)
    sig = j.signal
    t = np.arange(0, sig.cycle, 0.1)
    states = np.array([[sig.state(a, ti) for ti in t] for a in range(len(j.arms))])
    assert not np.any(np.all(states == "green", axis=0) & (len(j.arms) > 2))  # never all green
    for a in range(len(j.arms)):
        assert {"green", "yellow", "red"} == set(states[a])
        green_frac = np.mean(states[a] == "green")
        assert 0.2 < green_frac < 0.7
        for ti in t[states[a] == "red"][:20]:
            assert sig.time_to_green(a, ti) > 0


@pytest.mark.parametrize("child", [False, True])
def test_walking_body_stays_in_its_box_with_feet_on_the_ground(child):
    body = random_body(np.random.default_rng(3), child)
    size = box_size(body)
    assert 0.3 < size[0] < 0.9 and 0.4 < size[1] < 1.2 and size[2] == pytest.approx(body.height, abs=0.05)
    for phase in np.linspace(0, 2 * np.pi, 13):
        kp = walking_pose(body, phase)
        v = body_mesh(body, kp, 1).vertices
        assert np.all(np.abs(v[:, 0]) <= size[1] / 2) and np.all(np.abs(v[:, 1]) <= size[0] / 2) and v[:, 2].max() <= size[2]
        assert min(kp[15, 2], kp[16, 2]) == pytest.approx(0.08 * body.s)  # planted ankle
        assert kp[0, 2] > kp[5, 2] > kp[11, 2] > kp[13, 2] > 0  # nose above shoulders above hips above knees


def test_vehicle_models_fill_their_boxes():
    rng = np.random.default_rng(2)
    for model in (car(rng, 1), truck(rng, 2), bus(rng, 3), bicycle(rng, 4, random_body(rng))):
        v = model.mesh.vertices
        w, length, h = model.size
        np.testing.assert_allclose(v[:, 2].min(), 0.0, atol=1e-6)
        assert v[:, 2].max() <= h + 1e-5 and np.abs(v[:, 1]).max() <= w / 2 + 0.01 and np.abs(v[:, 0]).max() <= length / 2 + 0.01  # lamps/glass: 5 mm proud
        assert np.all(model.mesh.face_instance == model.mesh.face_instance[0])
        if model.category != "vehicle.bicycle":  # rigid bodies reach every side of their box
            assert v[:, 2].max() > h - 0.01 and np.abs(v[:, 1]).max() > w / 2 - 0.01 and np.abs(v[:, 0]).max() > length / 2 - 0.01
    body = random_body(np.random.default_rng(0))
    bike = bicycle(rng, 4, body)
    assert 1.5 < bike.size[1] < 2.0 and 0.5 < bike.size[0] < 0.9 and 1.4 < bike.size[2] < 1.9
    for phase in np.linspace(0, 2 * np.pi, 7):
        rider = cycling_pose(body, phase)
        v = body_mesh(body, rider, 4).vertices
        assert v[:, 2].max() <= bike.size[2] and np.abs(v[:, 0]).max() <= bike.size[1] / 2 and np.abs(v[:, 1]).max() <= bike.size[0] / 2
        assert rider[11, 2] > 0.9 and np.linalg.norm(rider[15] - [0, 0.12, 0.3]) < 0.2  # seated, left foot on its pedal


def test_rig_matches_nuscenes():
    cams = camera_calibrations((1600, 900))
    assert [c.channel for c in cams] == list(CAMERA_CHANNELS)
    yaws = []
    for c in cams:
        optical_axis = c.sensor_to_ego.rotation_matrix[:, 2]  # camera z in the ego frame
        yaws.append(np.rad2deg(np.arctan2(optical_axis[1], optical_axis[0])))
        assert abs(optical_axis[2]) < 1e-9 and 1.4 < c.sensor_to_ego.translation[2] < 1.7
    np.testing.assert_allclose(yaws, [0, -55, -110, 180, 110, 55], atol=1e-6)
    assert cams[0].intrinsics[0, 0] == pytest.approx(1266.4) and cams[3].intrinsics[0, 0] < 900  # wider back camera
    small = camera_calibrations((320, 180))
    np.testing.assert_allclose(small[0].intrinsics[:2], cams[0].intrinsics[:2] / 5)
    lidar = lidar_calibration().sensor_to_ego
    np.testing.assert_allclose(lidar.rotation_matrix @ [0, 1, 0], [1, 0, 0], atol=1e-12)  # sensor y = ego forward
    assert lidar.translation[2] == pytest.approx(1.84)
    dirs, frac, ring = lidar_beam_directions(preset("full").lidar)
    assert dirs.shape == (1084, 32, 3) and ring.tolist() == list(range(32))
    elev = np.rad2deg(np.arcsin(dirs[0, :, 2]))
    assert elev[0] == pytest.approx(10.67) and elev[-1] == pytest.approx(-30.67)
    assert frac[0] < frac[-1] and abs(frac).max() < 0.5
