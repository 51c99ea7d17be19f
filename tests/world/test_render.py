"""SynthTown camera rasteriser: projection, depth, id buffers, shading, weather, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from genesis_drive.data.geometry import project_points, transform_points
from genesis_drive.errors import ConfigError, GenesisError
from genesis_drive.world import render as render_mod
from genesis_drive.world.lighting import (
    LIGHTING_PRESETS,
    Light,
    Lighting,
    headlights,
    street_lamp,
    with_weather,
)
from genesis_drive.world.mesh import Material, TriangleMesh
from genesis_drive.world.render import CameraView, Rasterizer, projection_matrix

W, H = 128, 96
EMPTY = TriangleMesh.concat([])


# ---------------------------------------------------------------- scene helpers


def box_mesh(center, size, yaw, color, material, instance=0, emissive=0.0) -> TriangleMesh:
    """Box with its base centred at ``center`` (global, metres), extents (l, w, h), rotated by yaw."""
    l, w, h = size
    x = np.array([-1, 1, 1, -1, -1, 1, 1, -1]) * l / 2
    y = np.array([-1, -1, 1, 1, -1, -1, 1, 1]) * w / 2
    z = np.array([0, 0, 0, 0, 1, 1, 1, 1]) * h
    c, s = np.cos(yaw), np.sin(yaw)
    v = np.stack([c * x - s * y, s * x + c * y, z], 1) + np.asarray(center, dtype=np.float64)
    f = [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]]
    return TriangleMesh.build(v, np.array(f), color, material, instance, emissive)


def quad_mesh(corners, color, material, instance=0) -> TriangleMesh:
    """Planar quad from 4 corners (4, 3) in order."""
    return TriangleMesh.build(np.asarray(corners, dtype=np.float64), np.array([[0, 1, 2], [0, 2, 3]]), color, material, instance)


def ground(half=300.0, z=0.0, color=(0.2, 0.2, 0.2), material=Material.ROAD) -> TriangleMesh:
    return quad_mesh([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], color, material)


def camera_to_global(position, yaw, pitch=0.0, roll=0.0) -> np.ndarray:
    """(4, 4) camera (x right, y down, z forward) -> global, camera looking along yaw (about +z),
    tilted down by ``pitch`` radians, rolled by ``roll`` about the optical axis."""
    fwd = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(fwd, right)
    r = np.stack([right, down, fwd], axis=1)
    cr, sr = np.cos(roll), np.sin(roll)
    r = r @ np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = position
    return m


def intrinsics(fx=110.0, fy=104.0, cx=W / 2 + 3.3, cy=H / 2 - 2.7) -> np.ndarray:
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])


def view(cam_to_global, k=None, name="CAM_FRONT") -> CameraView:
    return CameraView(name, intrinsics() if k is None else k, cam_to_global, W, H)


def flat_lighting(ambient=0.5, **kw) -> Lighting:
    """No sun, uniform ambient, no fog / haze: shading = albedo * ambient."""
    base = {
        "name": "flat",
        "sun_direction": (0, 0, 1),
        "sun_color": (0, 0, 0),
        "ambient": (ambient,) * 3,
        "ground_ambient": (ambient,) * 3,
        "sky_horizon": (0.3, 0.4, 0.6),
        "sky_zenith": (0.1, 0.2, 0.5),
        "sun_disc": 0.0,
        "exposure": 1.0,
        "fog_density": 0.0,
    }
    base.update(kw)
    return Lighting(**base)


def display_of(x):
    """The renderer's tone curve + exact sRGB, as 8-bit values."""
    x = np.asarray(x, dtype=np.float64)
    c = np.minimum(x * (1 + x / 9) / (1 + x), 1.0)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.round(s * 255)


@pytest.fixture(scope="module")
def rast():
    r = Rasterizer(W, H, shadow_map_size=512, shadow_extent=40.0, color_noise=0.0)
    yield r
    r.close()


# ---------------------------------------------------------------- geometry


def test_projection_matrix_maps_pixels_like_project_points():
    k = intrinsics()
    k[0, 1] = 0.7  # skew
    p = projection_matrix(k, W, H, 0.1, 100.0)
    pts = np.array([[0.3, -0.2, 2.0], [-1.0, 0.5, 7.5], [2.0, 1.0, 30.0]])
    clip = np.c_[pts, np.ones(3)] @ p.T
    ndc = clip[:, :3] / clip[:, 3:]
    uv_gl = np.stack([(ndc[:, 0] + 1) * W / 2, (ndc[:, 1] + 1) * H / 2], 1)
    uv, _ = project_points(pts, k)
    np.testing.assert_allclose(uv_gl, uv, atol=1e-9)
    np.testing.assert_allclose(clip[:, 3], pts[:, 2])
    near_far = np.array([[0, 0, 0.1, 1], [0, 0, 100.0, 1]]) @ p.T
    np.testing.assert_allclose(near_far[:, 2] / near_far[:, 3], [-1, 1], atol=1e-12)


@pytest.mark.parametrize("yaw,pitch,roll", [(0.3, 0.05, 0.0), (-2.0, 0.2, 0.15)])
def test_box_instance_mask_matches_projected_silhouette(rast, yaw, pitch, roll):
    cam = camera_to_global([1200.0, -800.0, 1.6], yaw, pitch, roll)  # far from the origin on purpose
    # a box 9 m ahead, a little to the right, rotated
    ahead = cam[:3, :3] @ np.array([1.2, 0.3, 9.0]) + cam[:3, 3]
    box = box_mesh([ahead[0], ahead[1], 0.4], (4.2, 1.9, 1.5), yaw + 0.6, (0.5, 0.1, 0.1), Material.VEHICLE_BODY, instance=5)
    rast.set_static(EMPTY)
    out = rast.render([view(cam)], box, LIGHTING_PRESETS["day"])

    corners = transform_points(np.linalg.inv(cam), box.vertices)
    uv, valid = project_points(corners, intrinsics())
    assert valid.all()
    hull = ConvexHull(uv)
    jj, ii = np.mgrid[0:H, 0:W]
    centres = np.stack([ii.ravel() + 0.5, jj.ravel() + 0.5], 1)
    edge_dist = (centres @ hull.equations[:, :2].T + hull.equations[:, 2]).max(axis=1).reshape(H, W)  # px, < 0 inside
    inside = edge_dist <= 0
    mask = out.instance[0] == 5
    iou = (mask & inside).sum() / (mask | inside).sum()
    assert inside.sum() > 500
    assert iou >= 0.95, iou
    # The rasteriser samples pixel centres with the same convention as project_points: any pixel that
    # disagrees must have its centre on an edge (a half-pixel offset would flip pixels ~0.5 px inside).
    disagree = mask ^ inside
    assert not disagree.any() or np.abs(edge_dist[disagree]).max() < 0.02
    assert np.all(out.material[0][mask] == int(Material.VEHICLE_BODY)) and np.all(out.material[0][~mask] == int(Material.SKY))


def test_fronto_parallel_plane_depth_and_ids(rast):
    cam = camera_to_global([-3500.0, 2500.0, 30.0], 1.1, 0.3)
    z = 12.5
    corners_cam = np.array([[-40, -40, z], [40, -40, z], [40, 40, z], [-40, 40, z]], dtype=np.float64)
    wall = quad_mesh(transform_points(cam, corners_cam), (0.5, 0.5, 0.5), Material.BUILDING, instance=123456)
    rast.set_static(wall)
    out = rast.render([view(cam)], EMPTY, LIGHTING_PRESETS["day"])
    assert out.depth.dtype == np.float32 and out.instance.dtype == np.int32 and out.material.dtype == np.int16
    assert np.all(out.instance == 123456)
    assert np.all(out.material == int(Material.BUILDING))
    np.testing.assert_allclose(out.depth, z, atol=0.01)


def test_ground_plane_depth_matches_analytic(rast):
    h = 1.6
    cam = camera_to_global([250.0, -40.0, h], 0.7, np.deg2rad(4.0))
    rast.set_static(ground(half=600.0))
    out = rast.render([view(cam)], EMPTY, LIGHTING_PRESETS["day"])
    k = intrinsics()
    jj, ii = np.mgrid[0:H, 0:W]
    rays = np.stack([ii + 0.5, jj + 0.5, np.ones_like(ii, dtype=np.float64)], -1) @ np.linalg.inv(k).T  # camera z = 1
    dz = rays @ cam[:3, :3].T[:, 2]  # global z of each ray per unit camera depth
    with np.errstate(divide="ignore"):
        depth = np.where(dz < 0, -h / dz, np.inf)
    ground_px = np.isfinite(depth) & (depth < 150)
    sky_px = ~np.isfinite(depth)
    # pixels within half a pixel of the horizon may go either way
    margin = np.abs(dz) * k[1, 1] > 1.0
    assert ground_px.sum() > 0.3 * H * W and (sky_px & margin).sum() > 0.1 * H * W
    np.testing.assert_allclose(out.depth[0][ground_px], depth[ground_px], rtol=1e-4, atol=0.02)
    assert np.all(np.isinf(out.depth[0][sky_px & margin]))
    assert np.all(out.material[0][sky_px & margin] == int(Material.SKY))
    assert np.all(out.material[0][ground_px] == int(Material.ROAD))
    assert np.all(out.instance[0] == 0)


def test_static_and_dynamic_ids_and_occlusion(rast):
    cam = camera_to_global([0.0, 0.0, 1.5], 0.0)
    rast.set_static(TriangleMesh.concat([ground(), box_mesh([30, 0, 0], (2, 30, 10), 0, (0.6, 0.6, 0.6), Material.BUILDING)]))
    near = box_mesh([10, 0.0, 0], (2, 2, 2), 0, (0.1, 0.1, 0.9), Material.PEDESTRIAN, instance=7)
    plate = box_mesh([10, 3.0, 0], (1, 1, 1), 0, (0.9, 0.9, 0.1), Material.LICENSE_PLATE, instance=2**31 - 1)
    out = rast.render([view(cam)], TriangleMesh.concat([near, plate]), LIGHTING_PRESETS["dusk"])
    inst, mat = out.instance[0], out.material[0]
    assert set(np.unique(inst)) == {0, 7, 2**31 - 1}
    assert set(np.unique(mat)) == {int(Material.SKY), int(Material.ROAD), int(Material.BUILDING), int(Material.PEDESTRIAN), int(Material.LICENSE_PLATE)}
    assert np.all(mat[inst == 7] == int(Material.PEDESTRIAN))
    # the near box hides the building: its depth is ~9 m (front face at x = 9), the building's ~29 m
    np.testing.assert_allclose(out.depth[0][inst == 7].min(), 9.0, atol=0.02)
    assert out.depth[0][mat == int(Material.BUILDING)].min() > 28.9


def test_multi_view_atlas_and_chunking_match_single_views(rast):
    rast.set_static(TriangleMesh.concat([ground(), box_mesh([8, 4, 0], (3, 3, 4), 0.2, (0.7, 0.3, 0.2), Material.BUILDING)]))
    dyn = box_mesh([6, -2, 0], (4, 2, 1.5), 0.1, (0.2, 0.6, 0.2), Material.VEHICLE_BODY, 3)
    views = [view(camera_to_global([0, 0, 1.5], yaw), name=f"CAM_{i}") for i, yaw in enumerate(np.linspace(-1, 2, 5))]
    lighting = with_weather(LIGHTING_PRESETS["day"], "rain")
    together = rast.render(views, dyn, lighting, rain_seed=4)
    small = Rasterizer(W, H, shadow_map_size=512, shadow_extent=40.0, color_noise=0.0, max_views=2)
    try:
        small.set_static(TriangleMesh.concat([ground(), box_mesh([8, 4, 0], (3, 3, 4), 0.2, (0.7, 0.3, 0.2), Material.BUILDING)]))
        chunked = small.render(views, dyn, lighting, rain_seed=4)
    finally:
        small.close()
    single = rast.render(views[2:3], dyn, lighting, rain_seed=4)
    # A view's row offset in the atlas changes window-coordinate rounding in the last float bits only.
    for other, idx in ((chunked, slice(None)), (single, slice(2, 3))):
        np.testing.assert_allclose(other.depth, together.depth[idx], rtol=1e-4)
        assert (other.instance != together.instance[idx]).mean() < 1e-3
        assert (other.material != together.material[idx]).mean() < 1e-3
        diff = np.abs(other.rgb.astype(int) - together.rgb[idx].astype(int))
        assert (diff > 1).mean() < 1e-3


def test_tile_culling_keeps_every_visible_face(rast):
    rng = np.random.default_rng(3)
    boxes = [
        box_mesh([x, y, 0], (3, 3, rng.uniform(2, 15)), rng.uniform(0, 3), rng.uniform(0.2, 0.8, 3), Material.BUILDING, instance=i + 1)
        for i, (x, y) in enumerate(rng.uniform(-150, 150, (120, 2)))
    ]
    town = TriangleMesh.concat([ground(half=200.0), *boxes])
    views = [view(camera_to_global([5.0, -3.0, 1.6], yaw), name=f"CAM_{i}") for i, yaw in enumerate(np.linspace(0, 2 * np.pi, 6, endpoint=False))]
    day = LIGHTING_PRESETS["day"]
    rast.set_static(town)  # sorted into ground tiles and culled per view
    culled = rast.render(views, EMPTY, day)
    assert len(rast._static_tiles.first) > 50
    rast.set_static(ground(half=200.0))
    reference = rast.render(views, TriangleMesh.concat(boxes), day)  # the dynamic mesh is drawn whole
    # (the two scenes have different origins, hence float32 rounding differences in the last bits)
    for v in range(len(views)):
        assert set(np.unique(culled.instance[v])) == set(np.unique(reference.instance[v]))
    assert (culled.instance != reference.instance).mean() < 1e-3
    np.testing.assert_allclose(culled.depth, reference.depth, rtol=1e-4)
    assert (np.abs(culled.rgb.astype(int) - reference.rgb.astype(int)) > 1).mean() < 1e-3
    assert len(np.unique(culled.instance)) > 30


def test_tiles_cull_what_is_behind_the_camera():
    boxes = [box_mesh([16.0 + 32 * k, 16.0, 0], (1, 1, 1), 0.0, (0.5, 0.5, 0.5), Material.BUILDING) for k in range(-6, 7)]  # one per tile
    town = TriangleMesh.concat(boxes)
    order, tiles = render_mod._tile_order(town, town.vertices.astype(np.float64), 32.0)
    assert sorted(order.tolist()) == list(range(town.num_faces)) and len(tiles.first) == len(boxes)
    cam = camera_to_global([0.0, 16.0, 1.0], 0.0)  # looking along +x at the boxes
    clip = projection_matrix(intrinsics(), W, H, 0.1, 1000.0) @ np.linalg.inv(cam)
    runs = tiles.visible_runs(clip)
    drawn = np.concatenate([np.arange(a, a + n) for a, n in runs])
    centre_x = town.vertices[town.faces[order[drawn]]].mean(axis=1)[:, 0]
    assert len(runs) == 1 and centre_x.min() > 0.0 and len(drawn) == 7 * 12  # the boxes at x = 16, 48, ..., 208


def test_deterministic_bytes(rast):
    cam = camera_to_global([0, 0, 1.5], 0.2)
    lamp = street_lamp((10.0, 3.0, 6.0))
    lighting = with_weather(LIGHTING_PRESETS["night"], "rain").with_lights([lamp, *headlights(np.eye(4))])
    scene = TriangleMesh.concat([ground(), box_mesh([15, -3, 0], (3, 3, 5), 0.3, (0.5, 0.5, 0.4), Material.BUILDING)])
    dyn = box_mesh([8, 0, 0], (4, 2, 1.5), 0.1, (0.7, 0.1, 0.1), Material.VEHICLE_BODY, 1)
    rast.set_static(scene)
    a = rast.render([view(cam)], dyn, lighting, rain_seed=11)
    b = rast.render([view(cam)], dyn, lighting, rain_seed=11)
    other = Rasterizer(W, H, shadow_map_size=512, shadow_extent=40.0, color_noise=0.0)
    try:
        other.set_static(scene)
        c = other.render([view(cam)], dyn, lighting, rain_seed=11)
    finally:
        other.close()
    for x, y, z in zip(dataclasses.astuple(a), dataclasses.astuple(b), dataclasses.astuple(c)):
        assert x.tobytes() == y.tobytes() == z.tobytes()


# ---------------------------------------------------------------- shading


def test_gamma_ambient_only_matches_tone_and_srgb_curves(rast):
    cam = camera_to_global([0, 0, 2.0], 0.0, np.deg2rad(60))
    rast.set_static(ground(color=(0.05, 0.3, 0.8), material=Material.SIDEWALK))
    for ambient in (0.25, 1.0, 2.5):
        out = rast.render([view(cam)], EMPTY, flat_lighting(ambient))
        expected = display_of(np.array([0.05, 0.3, 0.8]) * ambient)
        got = out.rgb[0][H // 2, W // 2].astype(np.float64)
        assert np.abs(got - expected).max() <= 1, (ambient, got, expected)


def test_lambert_cosine_and_emission(rast):
    cam = camera_to_global([0, 0, 0.0], 0.0)
    rast.set_static(EMPTY)
    values = []
    for angle in (0.0, np.deg2rad(60)):
        # a wall 5 m ahead facing the camera (-x), lit by a sun at ``angle`` from its normal; ambient 0
        sun = np.array([-np.cos(angle), np.sin(angle), 0.0])
        wall = quad_mesh([[5, 20, -20], [5, -20, -20], [5, -20, 20], [5, 20, 20]], (0.5, 0.5, 0.5), Material.BUILDING)
        lighting = flat_lighting(0.0, sun_direction=sun, sun_color=(0.8, 0.8, 0.8), shadow_strength=0.0)
        values.append(rast.render([view(cam)], wall, lighting).rgb[0][H // 2, W // 2, 0])
    assert values[0] == display_of(0.5 * 0.8)
    assert values[1] == display_of(0.5 * 0.8 * 0.5)
    lamp = TriangleMesh.build(
        np.array([[5, 20, -20], [5, -20, -20], [5, -20, 20], [5, 20, 20]], dtype=np.float64),
        np.array([[0, 1, 2], [0, 2, 3]]), (0.4, 0.3, 0.2), Material.LAMP, emissive=1.0,
    )
    dark = flat_lighting(0.0, emissive_gain=2.0)
    np.testing.assert_allclose(rast.render([view(cam)], lamp, dark).rgb[0][H // 2, W // 2], display_of(np.array([0.4, 0.3, 0.2]) * 2.0), atol=1)


def test_sun_shadow_of_a_box_darkens_the_ground(rast):
    cam = camera_to_global([0, 0, 12.0], 0.0, np.deg2rad(70))  # looking steeply down at the ground ahead
    rast.set_static(ground(color=(0.5, 0.5, 0.5), material=Material.ROAD))
    sun = np.array([0.0, 0.0, 1.0])  # straight above: the shadow is the box footprint
    blocker = box_mesh([4.5, 0, 6.0], (2, 2, 0.5), 0.0, (0.5, 0.5, 0.5), Material.VEHICLE_BODY, 1)  # floating slab
    lighting = flat_lighting(0.1, sun_direction=sun, sun_color=(1.0, 1.0, 1.0))
    out = rast.render([view(cam)], blocker, lighting)
    foot = transform_points(np.linalg.inv(cam), np.array([[4.5, 0, 0], [4.5, 3.0, 0], [4.5, -3.0, 0]]))
    (u0, v0), (u1, v1), (u2, v2) = project_points(foot, intrinsics())[0]
    in_shadow = out.rgb[0][int(v0), int(u0), 0]
    lit = out.rgb[0][int(v1), int(u1), 0], out.rgb[0][int(v2), int(u2), 0]
    assert out.instance[0][int(v0), int(u0)] == 0  # the camera sees the ground there, not the slab
    assert in_shadow == display_of(0.5 * 0.1) and all(x == display_of(0.5 * 1.1) for x in lit), (in_shadow, lit)
    no_shadows = Rasterizer(W, H, shadow_map_size=0, color_noise=0.0)
    try:
        no_shadows.set_static(ground(color=(0.5, 0.5, 0.5), material=Material.ROAD))
        assert no_shadows.render([view(cam)], blocker, lighting).rgb[0][int(v0), int(u0), 0] == display_of(0.5 * 1.1)
    finally:
        no_shadows.close()


def test_point_and_spot_lights_fall_off(rast):
    cam = camera_to_global([0, 0, 8.0], 0.0, np.deg2rad(80))
    rast.set_static(ground(color=(0.5, 0.5, 0.5)))
    base = flat_lighting(0.0)
    below = project_points(transform_points(np.linalg.inv(cam), np.array([[1.4, 0, 0], [1.4, 2.5, 0], [1.4, 4.0, 0]])), intrinsics())[0]
    pick = lambda out: [int(out.rgb[0][int(v), int(u), 0]) for u, v in below]
    point = pick(rast.render([view(cam)], EMPTY, base.with_lights([Light((1.4, 0, 3.0), (2.0, 2.0, 2.0), range=30.0)])))
    assert point[0] > point[1] > point[2] > 0
    # irradiance of a point light at height 3 m: I cos / d^2 with cos = 3/d  (range window ~ 1 this close)
    assert abs(point[0] - display_of(0.5 * 2.0 / 9.0 * (1 - (3 / 30) ** 4) ** 2)) <= 1
    spot = pick(rast.render([view(cam)], EMPTY, base.with_lights([Light((1.4, 0, 3.0), (2.0, 2.0, 2.0), 30.0, (0, 0, -1), 0.3, 0.5)])))
    assert spot[0] == point[0] and spot[2] == 0  # 4 m off-axis at 3 m height is 53 deg: outside the 29 deg cone
    far = pick(rast.render([view(cam)], EMPTY, base.with_lights([Light((1.4, 0, 3.0), (2.0, 2.0, 2.0), range=3.0)])))
    assert far == [0, 0, 0]  # beyond the range


def test_per_tile_light_lists_match_shading_every_light(monkeypatch):
    w, h = 200, 240  # 2 x 2 light tiles
    lamps = [street_lamp((x, side * 10.0, 6.0), range=9.0) for x in np.arange(8.0, 80.0, 9.0) for side in (-1, 1)]
    lighting = with_weather(LIGHTING_PRESETS["night"], "rain").with_lights(lamps + list(headlights(np.eye(4))))
    cam = camera_to_global([0.0, 0.0, 1.6], 0.0, np.deg2rad(5))
    k = np.array([[120.0, 0, w / 2], [0, 120.0, h / 2], [0, 0, 1]])
    scene = TriangleMesh.concat([ground(), box_mesh([30, 9, 0], (10, 4, 8), 0.0, (0.6, 0.6, 0.6), Material.BUILDING)])
    images = []
    for tile_px in (render_mod._LIGHT_TILE_PX, 10**6):
        monkeypatch.setattr(render_mod, "_LIGHT_TILE_PX", tile_px)
        r = Rasterizer(w, h, max_lights=32, color_noise=0.0)
        try:
            r.set_static(scene)
            if tile_px != 10**6:
                tiles = r._light_tiles(lighting.lights, CameraView("CAM_FRONT", k, cam, w, h), r._local(cam))
                assert len(tiles) == 4 and max(len(t[1]) for t in tiles) < len(lighting.lights)
            images.append(r.render([CameraView("CAM_FRONT", k, cam, w, h)], EMPTY, lighting, rain_seed=2).rgb[0].astype(int))
        finally:
            r.close()
    diff = np.abs(images[0] - images[1])
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert images[0].mean() > 20  # the lamps do light the scene


def test_presets_and_weather_are_distinguishable(rast):
    cam = camera_to_global([0, 0, 1.6], 0.0, np.deg2rad(2))
    scene = TriangleMesh.concat([ground(), box_mesh([25, 5, 0], (10, 8, 12), 0.0, (0.6, 0.55, 0.5), Material.BUILDING)])
    rast.set_static(scene)
    dyn = box_mesh([10, -1, 0], (4, 2, 1.5), 0.0, (0.7, 0.1, 0.1), Material.VEHICLE_BODY, 1)
    ego = np.eye(4)
    lamps = [street_lamp((12.0, 4.0, 6.0))]
    frames = {
        "day": LIGHTING_PRESETS["day"],
        "dusk": LIGHTING_PRESETS["dusk"],
        "night": LIGHTING_PRESETS["night"].with_lights(lamps + list(headlights(ego))),
        "fog": with_weather(LIGHTING_PRESETS["day"], "fog"),
        "rain": with_weather(LIGHTING_PRESETS["day"], "rain"),
    }
    outs = {k: rast.render([view(cam)], dyn, v, rain_seed=1) for k, v in frames.items()}
    rgb = {k: o.rgb[0].astype(np.float64) for k, o in outs.items()}
    lum = {k: (v @ [0.2126, 0.7152, 0.0722]).mean() for k, v in rgb.items()}
    assert lum["night"] < 0.7 * lum["dusk"] and lum["dusk"] < 0.9 * lum["day"]
    assert lum["rain"] < 0.9 * lum["day"]
    sky = outs["day"].material[0] == int(Material.SKY)
    assert sky[:5].mean() > 0.5
    top = {k: v[:5][sky[:5]].mean(axis=0) for k, v in rgb.items()}
    assert top["day"][2] > top["day"][0] + 20  # blue sky
    assert top["dusk"][0] > top["dusk"][2]  # warm sky
    assert np.ptp(top["fog"]) < 12  # grey
    assert top["night"].max() < 45 and top["night"][2] >= top["night"][0]  # dark blue
    # headlights (of an ego whose front is 0.7 m ahead of the camera): the road ahead gets brighter
    ego = np.eye(4)
    ego[0, 3] = -3.0
    no_lights = rast.render([view(cam)], EMPTY, LIGHTING_PRESETS["night"]).rgb[0].astype(np.float64)
    with_lights = rast.render([view(cam)], EMPTY, LIGHTING_PRESETS["night"].with_lights(headlights(ego))).rgb[0].astype(np.float64)
    assert with_lights[-10:].mean() > no_lights[-10:].mean() + 10


def test_fog_fades_distance_to_fog_colour(rast):
    cam = camera_to_global([0, 0, 1.6], 0.0)
    rast.set_static(ground(half=2000.0, color=(0.05, 0.05, 0.05)))
    fog = with_weather(LIGHTING_PRESETS["day"], "fog")
    out = rast.render([view(cam)], EMPTY, fog)
    fog_display = display_of(fog.exposure * fog.fog_color)
    near_row = out.rgb[0][H - 2].astype(float)
    k = intrinsics()
    v_far = int(np.floor(k[1, 2] + 0.5))  # the first row whose pixel centre looks below the horizon
    far_row = out.rgb[0][v_far].astype(float)
    assert 200 < out.depth[0][v_far, W // 2] < 2000 and out.depth[0][H - 2, W // 2] < 5
    err_near = np.abs(near_row.mean(0) - fog_display).max()
    err_far = np.abs(far_row.mean(0) - fog_display).max()
    assert err_far < 3 and err_near > 5 * err_far


def test_rain_streaks_follow_seed_and_wet_road_sheen(rast):
    cam = camera_to_global([0, 0, 1.6], 0.0, np.deg2rad(3))
    rast.set_static(ground(color=(0.1, 0.1, 0.1)))
    rain = with_weather(LIGHTING_PRESETS["day"], "rain")
    a = rast.render([view(cam)], EMPTY, rain, rain_seed=1).rgb
    b = rast.render([view(cam)], EMPTY, rain, rain_seed=1).rgb
    c = rast.render([view(cam)], EMPTY, rain, rain_seed=2).rgb
    dry = rast.render([view(cam)], EMPTY, dataclasses.replace(rain, rain=0.0)).rgb
    assert a.tobytes() == b.tobytes()
    streaks = np.any(a != dry, axis=-1)
    assert 0.02 < streaks.mean() < 0.4  # thin streaks, not a veil
    assert np.any(a != c)
    assert np.all(a >= dry)  # streaks only lighten
    # wet road: at grazing angles the sky reflection lifts the dark road above the dry one
    wet_vs_dry = rast.render([view(cam)], EMPTY, dataclasses.replace(rain, rain=0.0, wetness=0.0)).rgb
    horizon_band = slice(int(intrinsics()[1, 2]) + 3, int(intrinsics()[1, 2]) + 10)
    assert dry[0][horizon_band].mean() > wet_vs_dry[0][horizon_band].mean() + 3
    assert dry[0][-5:].mean() < wet_vs_dry[0][-5:].mean()  # near the car, a wet road is darker


def test_with_weather_validation():
    day = LIGHTING_PRESETS["day"]
    assert with_weather(day, "clear") is day
    with pytest.raises(ConfigError, match="clear, rain, fog"):
        with_weather(day, "snow")
    rain = with_weather(day, "rain")
    assert rain.wetness > 0 and rain.rain > 0 and rain.fog_density > day.fog_density
    fog = with_weather(day, "fog")
    assert fog.fog_density >= 0.02 and fog.sun_disc == 0
    with pytest.raises(ValueError, match="wetness"):
        dataclasses.replace(day, wetness=2.0)
    with pytest.raises(ValueError, match="cone"):
        Light((0, 0, 0), (1, 1, 1), 5.0, (0, 0, -1), 0.6, 0.3)
    with pytest.raises(ValueError, match="read-only"):
        day.sun_color[0] = 9.0  # shared presets cannot be changed in place


# ---------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors(rast):
    cam = camera_to_global([0, 0, 1.5], 0.0)
    with pytest.raises(ValueError, match="64x48 but this Rasterizer renders 128x96"):
        rast.render([CameraView("CAM_FRONT", intrinsics(), cam, 64, 48)], EMPTY, LIGHTING_PRESETS["day"])
    with pytest.raises(ValueError, match="rigid"):
        CameraView("CAM_FRONT", intrinsics(), np.diag([2.0, 1, 1, 1]), W, H)
    with pytest.raises(ValueError, match="intrinsics"):
        CameraView("CAM_FRONT", np.eye(2), cam, W, H)
    with pytest.raises(ValueError, match="at least one"):
        rast.render([], EMPTY, LIGHTING_PRESETS["day"])


def test_missing_egl_names_debian_packages(monkeypatch):
    import moderngl

    def broken(*args, **kwargs):
        raise RuntimeError("eglGetDisplay failed")

    monkeypatch.setattr(moderngl, "create_context", broken)
    with pytest.raises(GenesisError, match="libegl1 libgl1-mesa-dri libegl-mesa0") as info:
        Rasterizer(32, 32)
    assert "eglGetDisplay failed" in str(info.value)


def test_closed_rasterizer_refuses_work():
    r = Rasterizer(16, 16, shadow_map_size=0)
    r.close()
    r.close()  # idempotent
    with pytest.raises(GenesisError, match="closed"):
        r.set_static(EMPTY)


def test_dynamic_buffers_grow_and_shrink(rast):
    cam = camera_to_global([0, 0, 1.5], 0.0)
    rast.set_static(ground())
    day = LIGHTING_PRESETS["day"]
    few = box_mesh([10, 0, 0], (2, 2, 2), 0.0, (0.5, 0.5, 0.5), Material.PEDESTRIAN, 1)
    many = TriangleMesh.concat([box_mesh([10 + 3 * i, -20 + 2 * (i % 20), 0], (1, 1, 2), 0.0, (0.5, 0.5, 0.5), Material.PEDESTRIAN, i + 1) for i in range(400)])
    out_few = rast.render([view(cam)], few, day)
    rast.render([view(cam)], many, day)
    again = rast.render([view(cam)], few, day)
    empty = rast.render([view(cam)], EMPTY, day)
    assert set(np.unique(out_few.instance)) == {0, 1}
    for a, b in zip(dataclasses.astuple(out_few), dataclasses.astuple(again)):
        np.testing.assert_array_equal(a, b)
    assert set(np.unique(empty.instance)) == {0}


def test_shader_sources_ship_with_the_package():
    for name in ("common.glsl", "fullscreen.vert", "gbuffer.vert", "gbuffer.frag", "background.frag", "sky.frag", "surface.frag", "shadow.vert", "shadow.frag"):
        assert "void main" in render_mod._shader(name) or name == "common.glsl"
