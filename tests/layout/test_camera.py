import cv2
import numpy as np
import pytest

from genesis_drive.data.schema import DETECTION_CLASSES, Box3D, MapLayers
from genesis_drive.errors import ConfigError
from genesis_drive.layout.camera import CameraLayoutConfig, _draw_segments, _out_of_view, clip_layout, frame_layout, render_layout
from genesis_drive.layout.colors import CLASS_COLORS, FACE_SHADES, MAP_COLORS, POSE_BOX_SHADE, class_color
from genesis_drive.layout.frames import CameraModel
from genesis_drive.layout.project import SHIFT, clip_polygon, clip_segments, frustum_planes

from .scene import camera, standing_pose

W, H = 320, 180
K, M = camera("CAM_FRONT", W, H)  # f = 253.28 px, principal point (160, 90); camera at ego (1.70, 0, 1.51)
FRONT = CameraModel("CAM_FRONT", K, M, W, H)
F, CX, CY = K[0, 0], K[0, 2], K[1, 2]
CAM_X, CAM_Z = 1.70, 1.51
CFG = CameraLayoutConfig()  # 1-pixel strokes at this width
EMPTY = MapLayers()


def pixel_centres():
    v, u = np.mgrid[0:H, 0:W]
    return u + 0.5, v + 0.5


def colour_mask(img, color):
    return np.all(img == np.array(color, dtype=np.uint8), axis=-1)


def test_clip_segments_and_polygons_at_the_near_plane():
    planes = frustum_planes(FRONT, near=0.1)
    p0 = np.array([[0.0, 0.0, -1.0], [0.0, 0.5, -2.0], [0.0, 0.5, -1.0]])
    p1 = np.array([[0.0, 0.0, 3.0], [0.0, 0.5, -0.5], [0.0, 0.5, 3.0]])
    q0, q1, keep = clip_segments(p0, p1, planes)
    assert keep.tolist() == [True, False, True]  # the second segment lies wholly behind the camera
    assert np.allclose(q0[0], [0.0, 0.0, 0.1]) and np.allclose(q1[0], [0.0, 0.0, 3.0])
    # off axis, the side plane v <= 2 H (the image widened by one height) cuts before the near plane
    z_side = F * 0.5 / (2 * H - CY)
    assert np.allclose(q0[2], [0.0, 0.5, z_side])
    square = np.array([[-0.5, 0.5, -1.0], [0.5, 0.5, -1.0], [0.5, 0.5, 1.0], [-0.5, 0.5, 1.0]])
    out = clip_polygon(square, planes)
    assert len(out) == 4 and np.isclose(out[:, 2].min(), z_side) and np.isclose(out[:, 2].max(), 1.0)
    assert len(clip_polygon(square - [0, 0, 5.0], planes)) == 0
    # a triangle through the camera plane, cut by the near plane only: the tip behind is replaced by
    # the two points where its edges cross z = 0.1 (at x = -+(1 - 1.1 / 3)), in ring order
    tri = np.array([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [0.0, 0.0, 2.0]])
    out = clip_polygon(tri, planes[:1])
    x = 1 - 1.1 / 3
    assert np.allclose(out, [[x, 0.0, 0.1], [0.0, 0.0, 2.0], [-x, 0.0, 0.1]])


def test_box_face_covers_the_analytic_rectangle():
    d, w, h = 10.0, 2.0, 1.6  # near face 10 m ahead of the camera, centred on the optical axis
    car = Box3D.from_yaw([CAM_X + d + 2.0, 0.0, CAM_Z], [w, 4.0, h], 0.0, "vehicle.car")
    img = render_layout(FRONT, [car], [], EMPTY, CFG)
    u0, u1 = CX - F * w / 2 / d, CX + F * w / 2 / d  # 134.67 .. 185.33
    v0, v1 = CY - F * h / 2 / d, CY + F * h / 2 / d  # 69.74 .. 110.26
    u, v = pixel_centres()
    margin = 2.0
    inner = (u > u0 + margin) & (u < u1 - margin) & (v > v0 + margin) & (v < v1 - margin)
    outer = (u < u0 - margin) | (u > u1 + margin) | (v < v0 - margin) | (v > v1 + margin)
    # only the near face (the car's back, yaw 0 points away) faces the camera
    assert np.all(colour_mask(img, class_color("car", FACE_SHADES["back"]))[inner])
    assert np.all(img[outer] == 0)
    edge = colour_mask(img, CLASS_COLORS["car"])
    cols, rows = np.nonzero(edge.any(axis=0))[0], np.nonzero(edge.any(axis=1))[0]
    assert abs(cols.min() + 0.5 - u0) <= 1 and abs(cols.max() + 0.5 - u1) <= 1
    assert abs(rows.min() + 0.5 - v0) <= 1 and abs(rows.max() + 0.5 - v1) <= 1
    # turned around, the brightest (front) face looks at the camera
    img2 = render_layout(FRONT, [Box3D.from_yaw(car.center, car.size, np.pi, "vehicle.car")], [], EMPTY, CFG)
    assert np.all(colour_mask(img2, class_color("car", FACE_SHADES["front"]))[inner])


def test_near_box_occludes_far_box():
    far_car = Box3D.from_yaw([CAM_X + 20.0, 0.0, 0.8], [2.0, 4.0, 1.6], 0.0, "vehicle.car")
    near_truck = Box3D.from_yaw([CAM_X + 10.0, 0.0, 1.5], [2.5, 4.0, 3.0], 0.0, "vehicle.truck")
    a = render_layout(FRONT, [near_truck, far_car], [], EMPTY, CFG)
    b = render_layout(FRONT, [far_car, near_truck], [], EMPTY, CFG)
    assert np.array_equal(a, b)
    assert tuple(a[int(CY), int(CX)]) == class_color("truck", FACE_SHADES["back"])
    car_colours = [class_color("car", s) for s in FACE_SHADES.values()]
    assert not any(colour_mask(a, c).any() for c in car_colours)  # the car is hidden entirely
    alone = render_layout(FRONT, [far_car], [], EMPTY, CFG)
    assert colour_mask(alone, class_color("car", FACE_SHADES["back"])).sum() > 50


def test_ground_line_lands_on_the_analytic_row():
    d = 12.0
    layers = MapLayers(lane_divider=(np.array([[CAM_X + d, -3.0], [CAM_X + d, 3.0]]),))
    img = render_layout(FRONT, [], [], layers, CFG)
    v = CY + F * CAM_Z / d  # 121.87: pixel row 121
    u_half = F * 3.0 / d
    lane = colour_mask(img, MAP_COLORS["lane_divider"])
    rows = np.nonzero(lane.any(axis=1))[0]
    assert rows.tolist() == [int(np.floor(v))]
    cols = np.nonzero(lane[int(v)])[0]
    assert abs(cols.min() + 0.5 - (CX - u_half)) <= 1 and abs(cols.max() + 0.5 - (CX + u_half)) <= 1


def test_lines_through_and_behind_the_camera_do_not_wrap():
    behind = MapLayers(lane_divider=(np.array([[-5.0, -3.0], [-5.0, 3.0]]),))
    assert render_layout(FRONT, [], [], behind, CFG).max() == 0
    # a line along the road 2 m to the left, from 20 m behind to 40 m ahead of the ego
    layers = MapLayers(road_divider=(np.array([[-20.0, 2.0], [40.0, 2.0]]),))
    img = render_layout(FRONT, [], [], layers, CFG)
    rows, cols = np.nonzero(colour_mask(img, MAP_COLORS["road_divider"]))
    assert len(rows) > 50
    assert rows.min() + 0.5 >= CY  # nothing above the horizon
    # on the analytic image line u - cx = -(2 / 1.51) (v - cy)
    assert np.all(np.abs((cols + 0.5 - CX) + 2.0 / CAM_Z * (rows + 0.5 - CY)) <= 2.0)
    assert rows.max() == H - 1 or cols.min() == 0  # reaches the image border near the camera


def test_box_partly_behind_the_camera_is_clipped():
    bus = Box3D.from_yaw([0.5, -3.0, 1.6], [2.5, 11.0, 3.2], 0.0, "vehicle.bus.rigid")  # x from -5 to 6 m
    img = render_layout(FRONT, [bus], [], EMPTY, CFG)
    u, v = pixel_centres()
    painted = img.any(axis=-1)
    assert painted.sum() > 500
    assert np.all(u[painted] > CX)  # the bus is on the right; wrapped parts would land on the left


def test_out_of_view_boxes_are_skipped_and_straddling_ones_are_not():
    planes = frustum_planes(FRONT, near=0.1)
    behind = Box3D.from_yaw([-6.0, 0.0, 1.0], [2.0, 4.0, 1.6], 0.0, "vehicle.car")
    # beside the frustum widened by one image width: u = cx + F x / z < -W at x = -30 m, z = 5 m
    beside = Box3D.from_yaw([CAM_X + 5.0, 30.0, 1.0], [2.0, 4.0, 1.6], 0.0, "vehicle.car")
    # from 5 m behind to 6 m ahead of the ego, 3 m to the right: corners on both sides of the near plane
    straddling = Box3D.from_yaw([0.5, -3.0, 1.6], [2.5, 11.0, 3.2], 0.0, "vehicle.bus.rigid")
    assert _out_of_view(FRONT.to_camera(behind.corners()), planes)
    assert _out_of_view(FRONT.to_camera(beside.corners()), planes)
    assert not _out_of_view(FRONT.to_camera(straddling.corners()), planes)
    for style in ("faces", "edges"):
        cfg = CameraLayoutConfig(box_style=style)
        assert render_layout(FRONT, [behind, beside], [], EMPTY, cfg).max() == 0
        assert render_layout(FRONT, [straddling], [], EMPTY, cfg).any(axis=-1).sum() > 100
    # skeletons likewise: behind the camera nothing, in front drawn
    assert _out_of_view(FRONT.to_camera(standing_pose(-6.0, 0.0, 0.0, "").keypoints), planes)
    assert render_layout(FRONT, [], [standing_pose(-6.0, 0.0, 0.0, "")], EMPTY, CFG).max() == 0
    assert render_layout(FRONT, [], [standing_pose(CAM_X + 6.0, 0.0, 0.0, "")], EMPTY, CFG).any()


def test_segments_stroke_as_cv2_line_does():
    rng = np.random.default_rng(0)
    segs = rng.integers(-40 * 32, (W + 40) * 32, size=(60, 2, 2)).astype(np.int32)
    for thickness in (1, 3):
        ours = np.zeros((H, W, 3), np.uint8)
        _draw_segments(ours, segs, (10, 200, 30), thickness)
        ref = np.zeros((H, W, 3), np.uint8)
        for a, b in segs:
            cv2.line(ref, tuple(int(x) for x in a), tuple(int(x) for x in b), (10, 200, 30), thickness, cv2.LINE_8, SHIFT)
        assert ref.any() and np.array_equal(ours, ref)


def test_pedestrian_skeleton_over_its_dimmed_box():
    x, y = CAM_X + 6.0, 0.0
    ped = Box3D.from_yaw([x, y, 0.875], [0.7, 0.6, 1.75], np.pi, "human.pedestrian.adult", instance_token="p")
    pose = standing_pose(x, y, np.pi, "p")
    img = render_layout(FRONT, [ped], [pose], EMPTY, CFG)
    assert colour_mask(img, class_color("pedestrian", POSE_BOX_SHADE)).sum() > 100
    red = colour_mask(img, CLASS_COLORS["pedestrian"])
    for a, b in ((11, 13), (5, 7), (5, 6)):  # left hip-knee, left shoulder-elbow, shoulders
        mid = FRONT.to_camera((pose.keypoints[a] + pose.keypoints[b]) / 2)
        uv = K @ mid
        c, r = int(uv[0] / uv[2]), int(uv[1] / uv[2])
        assert red[r - 1 : r + 2, c - 1 : c + 2].any()
    # with skeletons off the pedestrian box is drawn like any other box
    plain = render_layout(FRONT, [ped], [pose], EMPTY, CameraLayoutConfig(skeletons=False))
    assert not colour_mask(plain, class_color("pedestrian", POSE_BOX_SHADE)).any()
    # a pose without a box is still drawn
    assert colour_mask(render_layout(FRONT, [], [pose], EMPTY, CFG), CLASS_COLORS["pedestrian"]).sum() > 20


def test_edges_style_and_config_errors():
    car = Box3D.from_yaw([CAM_X + 12.0, 0.0, 0.8], [2.0, 4.0, 1.6], 0.3, "vehicle.car")
    img = render_layout(FRONT, [car], [], EMPTY, CameraLayoutConfig(box_style="edges"))
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert colours == {(0, 0, 0), CLASS_COLORS["car"]}
    with pytest.raises(ConfigError, match="box_style"):
        CameraLayoutConfig(box_style="solid")
    with pytest.raises(ConfigError, match="map_lines"):
        CameraLayoutConfig(map_lines=("drivable_area",))


def test_clip_layout_shapes_views_and_resize(clip):
    video = clip_layout(clip)
    assert video.shape == (3, 6, H, W, 3) and video.dtype == np.uint8
    assert np.array_equal(video[1], frame_layout(clip, 1))
    assert not np.array_equal(video[0], video[2])  # the ego and the cars move
    # the car ahead (blue) is in CAM_FRONT, the bus behind (yellow) in CAM_BACK, both at every frame
    front, back = clip.views.index("CAM_FRONT"), clip.views.index("CAM_BACK")
    for t in range(3):
        assert colour_mask(video[t, front], CLASS_COLORS["car"]).any()
        assert colour_mask(video[t, back], class_color("bus", FACE_SHADES["front"])).sum() > 200
    half = frame_layout(clip, 0, image_size=(W // 2, H // 2))
    assert half.shape == (6, H // 2, W // 2, 3)
    for img, scale in ((video[0, back], 1.0), (half[back], 0.5)):
        rows, cols = np.nonzero(colour_mask(img, class_color("bus", FACE_SHADES["front"])))
        if scale == 1.0:
            ref = np.array([rows.min(), rows.max(), cols.min(), cols.max()]) + 0.5
        else:
            assert np.allclose(np.array([rows.min(), rows.max(), cols.min(), cols.max()]) + 0.5, ref * 0.5, atol=1.5)


def test_palette_covers_every_class_with_distinct_colours():
    assert tuple(CLASS_COLORS) == DETECTION_CLASSES
    shaded = {class_color(c, s) for c in DETECTION_CLASSES for s in (*FACE_SHADES.values(), POSE_BOX_SHADE)}
    assert len(shaded) == len(DETECTION_CLASSES) * len(set(FACE_SHADES.values()) | {POSE_BOX_SHADE})
    assert not shaded & set(MAP_COLORS.values())  # every object pixel is told apart from the map
