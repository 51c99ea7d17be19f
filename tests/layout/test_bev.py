import numpy as np
import pytest

from genesis_drive.data.schema import DETECTION_CLASSES, Box3D, MapLayers
from genesis_drive.errors import ConfigError
from genesis_drive.layout.bev import (
    BEV_GRIDS,
    BEV_PRESETS,
    BevConfig,
    BevGrid,
    bev_channel_names,
    clip_bev,
    frame_bev,
    rasterize_bev,
)

from .scene import make_clip

TINY = BEV_PRESETS["tiny"]  # 64 x 64 cells of 1 m over +-32 m
NAMES = bev_channel_names(TINY)


def channel(raster, name):
    return raster[NAMES.index(name)]


def test_grid_presets_and_cell_convention():
    assert BEV_GRIDS["tiny"].shape == (64, 64)
    assert BEV_GRIDS["paper"].shape == (200, 200)
    g = BevGrid((-10.0, 30.0), (-8.0, 8.0), 0.5)
    assert g.shape == (80, 32)
    centres = g.cell_centers()
    assert np.allclose(centres[0, 0], [29.75, 7.75])  # row 0 = far front, column 0 = far left
    assert np.allclose(centres[-1, -1], [-9.75, -7.75])
    uv = g.ego_to_pixel(centres)
    rr, cc = np.meshgrid(np.arange(80), np.arange(32), indexing="ij")
    assert np.allclose(uv[..., 0], cc + 0.5) and np.allclose(uv[..., 1], rr + 0.5)


def test_bad_grid_and_config_raise():
    with pytest.raises(ConfigError, match="whole number"):
        BevGrid((-10.0, 10.3), (-10.0, 10.0), 1.0)
    with pytest.raises(ConfigError, match="x_range"):
        BevGrid((5.0, -5.0), (-10.0, 10.0), 1.0)
    with pytest.raises(ConfigError, match="unknown layer"):
        BevConfig(map_layers=("lanes",))
    with pytest.raises(ConfigError, match="unknown class"):
        BevConfig(classes=("van",))


def test_channel_names():
    assert NAMES[:6] == ("drivable_area", "ped_crossing", "walkway", "lane_divider", "road_divider", "road_edge")
    assert NAMES[6:16] == tuple(f"box_{c}" for c in DETECTION_CLASSES)
    assert NAMES[16:] == ("heading_cos", "heading_sin")
    assert TINY.num_channels == 18


def test_axis_aligned_box_fills_expected_cells():
    # x in [8.1, 12.1] (forward), y in [-6.1, -4.1] (right of the ego)
    car = Box3D.from_yaw([10.1, -5.1, 0.8], [2.0, 4.0, 1.6], 0.0, "vehicle.car")
    r = rasterize_bev(MapLayers(), [car], TINY)
    assert r.shape == (18, 64, 64) and r.dtype == np.float32
    cars = channel(r, "box_car")
    # centres inside: x = 32 - (row + 0.5) in (8.1, 12.1) -> rows 20..23; y = 32 - (col + 0.5) in (-6.1, -4.1) -> cols 36, 37
    expected = np.zeros((64, 64), dtype=bool)
    expected[20:24, 36:38] = True
    assert np.array_equal(cars >= 0.5, expected)
    assert np.all(cars[21:23, 36:38] == 1.0)  # cells fully inside
    far = np.ones((64, 64), dtype=bool)
    far[19:25, 35:39] = False
    assert np.all(cars[far] == 0.0)
    # OpenCV marks every sub-cell (1/4 cell) the footprint touches: at most one extra sub-cell per axis
    assert 8.0 <= cars.sum() <= (4.0 + 0.25) * (2.0 + 0.25)
    others = [n for n in NAMES if n.startswith("box_") and n != "box_car"]
    assert all(channel(r, n).sum() == 0 for n in others)
    assert np.allclose(channel(r, "heading_cos")[expected], cars[expected])  # yaw 0: cos 1 x coverage
    assert np.all(channel(r, "heading_sin") == 0)


def test_rotated_box_agrees_with_box_geometry():
    yaw = np.radians(30.0)
    truck = Box3D.from_yaw([-6.3, 9.2, 1.5], [2.5, 9.0, 3.0], yaw, "vehicle.truck")
    r = rasterize_bev(MapLayers(), [truck], TINY)
    cov = channel(r, "box_truck")
    centres = BEV_GRIDS["tiny"].cell_centers().reshape(-1, 2)
    inside = truck.contains(np.c_[centres, np.full(len(centres), 1.5)]).reshape(64, 64)
    # cells whose centre is more than 0.75 m (diagonal half-cell) from the footprint edge must agree
    local = (centres - truck.center[:2]) @ np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    margin = np.minimum(4.5 - np.abs(local[:, 0]), 1.25 - np.abs(local[:, 1])).reshape(64, 64)
    clear = np.abs(margin) > 0.75
    assert clear.sum() > 4000
    assert np.array_equal((cov >= 0.5)[clear], inside[clear])
    assert 2.5 * 9.0 <= cov.sum() <= (2.5 + 0.25) * (9.0 + 0.25) * 1.02
    cos, sin = channel(r, "heading_cos"), channel(r, "heading_sin")
    assert np.allclose(np.arctan2(sin, cos)[cov > 0], yaw, atol=1e-5)


def test_small_pedestrian_is_not_lost_and_unknown_categories_are_skipped():
    ped = Box3D.from_yaw([3.3, 2.2, 0.9], [0.6, 0.5, 1.8], 1.0, "human.pedestrian.adult")
    bin_ = Box3D.from_yaw([5.0, 5.0, 0.5], [1.0, 1.0, 1.0], 0.0, "movable_object.pushable_pullable")
    r = rasterize_bev(MapLayers(), [ped, bin_], TINY)
    peds = channel(r, "box_pedestrian")
    row, col = 32 - 3.3, 32 - 2.2  # continuous (v, u) of the centre
    assert peds[int(row), int(col)] > 0
    assert 0.2 < peds.sum() < 0.6  # 0.3 m^2 footprint
    assert r[6:16].sum() == peds.sum()  # nothing drawn for the bin


def test_map_layers_polygons_and_lines():
    layers = MapLayers(
        drivable_area=(np.array([[-40.0, -3.0], [40.0, -3.0], [40.0, 3.0], [-40.0, 3.0]]),),
        lane_divider=(np.array([[-40.0, 3.6], [40.0, 3.6]]),),  # 1 m wide stroke: y in [3.1, 4.1]
    )
    r = rasterize_bev(layers, [], TINY)
    da = channel(r, "drivable_area")
    assert np.all(da[:, 29:35] == 1.0) and np.all(da[:, :28] == 0) and np.all(da[:, 36:] == 0)
    lane = channel(r, "lane_divider")
    # the cell spanning y in [3, 4] (column 28) holds most of the stroke
    assert np.all(lane[2:-2, 28] >= 0.75)
    assert np.all(lane[:, :26] == 0) and np.all(lane[:, 30:] == 0)
    assert np.allclose(lane[2:-2].sum(axis=1), 1.0, atol=0.3)  # 1 m of stroke per 1 m row


def test_frame_bev_moves_the_map_with_the_ego():
    clip = make_clip(num_frames=3, width=64, height=36, ego_speed=12.0, fps=12.0)  # 1 m (one cell) per frame
    bev = clip_bev(clip, TINY)
    assert bev.shape == (3, 18, 64, 64)
    cross0, cross2 = channel(bev[0], "ped_crossing"), channel(bev[2], "ped_crossing")
    rows0 = np.nonzero(cross0.max(axis=1) > 0.5)[0]
    rows2 = np.nonzero(cross2.max(axis=1) > 0.5)[0]
    assert len(rows0) == 4 and np.array_equal(rows2, rows0 + 2)  # the crossing comes 2 m closer
    assert np.array_equal(frame_bev(clip, 1, TINY), bev[1])
    # the car ahead drives at 4 m/s: still ahead of the ego, in the ego's own frame at every frame
    assert channel(bev[0], "box_car").sum() > 6 and channel(bev[2], "box_car").sum() > 6
