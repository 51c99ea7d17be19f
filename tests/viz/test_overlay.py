import imageio.v2 as imageio
import numpy as np
import pytest

from genesis_drive.data.schema import Box3D, MapLayers
from genesis_drive.layout.colors import CLASS_COLORS
from genesis_drive.layout.frames import CameraModel, clip_cameras
from genesis_drive.viz.bev import bev_figure, plot_bev
from genesis_drive.viz.overlay import depth_colors, draw_boxes, draw_lidar, draw_skeletons

from tests.layout.scene import camera, standing_pose

W, H = 320, 180
K, M = camera("CAM_FRONT", W, H)
FRONT = CameraModel("CAM_FRONT", K, M, W, H)
CX, CY = K[0, 2], K[1, 2]


def project(p_ego):
    c = FRONT.to_camera(np.asarray(p_ego, dtype=np.float64))
    uv = K @ c
    return uv[:2] / uv[2], c[2]


def test_lidar_point_lands_on_its_projected_pixel():
    base = np.full((H, W, 3), 50, dtype=np.uint8)
    p = np.array([[15.0, 2.3, 0.4], [-10.0, 0.0, 1.0]])  # the second point is behind the camera
    out = draw_lidar(base, FRONT, p, max_depth=60.0, radius=0)
    (u, v), depth = project(p[0])
    col, row = int(np.floor(u)), int(np.floor(v))
    assert tuple(out[row, col]) == tuple(depth_colors(np.array([depth]), 60.0)[0])
    changed = np.argwhere(np.any(out != base, axis=-1))
    assert changed.tolist() == [[row, col]]
    assert np.all(base == 50)  # input untouched
    fat = draw_lidar(base, FRONT, p, radius=2)
    assert tuple(fat[row, col]) == tuple(depth_colors(np.array([depth]), 60.0)[0])
    assert 9 <= np.any(fat != base, axis=-1).sum() <= 25


def test_near_lidar_points_are_drawn_over_far_ones():
    base = np.zeros((H, W, 3), dtype=np.uint8)
    near, far = np.array([10.0, 0.0, 1.51]), np.array([30.0, 0.0, 1.51])  # both on the optical axis
    color = {d: tuple(depth_colors(np.array([d]), 60.0)[0]) for d in (8.3, 28.3)}  # depths from the camera
    assert color[8.3] != color[28.3]
    for order in ([near, far], [far, near]):
        out = draw_lidar(base, FRONT, np.stack(order), radius=0)
        assert tuple(out[int(CY), int(CX)]) == color[8.3]


def test_box_edges_and_skeleton_are_drawn_at_projected_pixels():
    base = np.zeros((H, W, 3), dtype=np.uint8)
    car = Box3D.from_yaw([14.0, -2.0, 0.8], [1.9, 4.5, 1.6], 0.4, "vehicle.car")
    out = draw_boxes(base, FRONT, [car], thickness=1)
    for corner in car.corners():
        (u, v), _ = project(corner)
        patch = out[int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2].astype(int)
        assert np.abs(patch - np.array(CLASS_COLORS["car"])).sum(-1).min() < 120  # anti-aliased edge colour
    assert base.max() == 0
    pose = standing_pose(9.0, 1.0, np.pi, "p")
    sk = draw_skeletons(base, FRONT, [pose], thickness=1)
    (u, v), _ = project((pose.keypoints[11] + pose.keypoints[13]) / 2)
    assert sk[int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2, 0].max() > 100
    with pytest.raises(ValueError, match="uint8"):
        draw_boxes(np.zeros((H, W, 3), dtype=np.float32), FRONT, [car])


def test_bev_plot_puts_boxes_where_they_are(tmp_path):
    car = Box3D.from_yaw([20.0, 15.0, 0.8], [3.0, 6.0, 1.6], 0.0, "vehicle.car")  # ahead and to the left
    fig = bev_figure(None, [car], MapLayers(), extent=40.0)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    ax = fig.axes[0]
    # a point inside the footprint, off the heading line (centre -> front); plot axes are (ego y, ego x)
    x_disp, y_disp = ax.transData.transform((car.center[1] + 0.7, car.center[0] - 1.5))
    row, col = int(round(rgba.shape[0] - y_disp)), int(round(x_disp))
    c = np.array(CLASS_COLORS["car"])
    expected = 0.35 * c + 0.65 * 255
    assert np.allclose(rgba[row, col, :3], expected, atol=12)
    assert col < rgba.shape[1] / 2 and row < rgba.shape[0] / 2  # left half (+y is left), upper half (+x up)
    path = plot_bev(tmp_path / "bev.png", np.array([[5.0, 0.0, 0.2]]), [car], MapLayers(), title="t")
    img = imageio.imread(path)
    assert img.shape[0] > 400 and img.shape[1] > 400


def test_clip_cameras_project_consistently(clip):
    cams = clip_cameras(clip)
    assert [c.name for c in cams] == list(clip.views)
    # a point 20 m straight ahead is the centre of CAM_FRONT's image and in no back camera
    p = np.array([[21.7, 0.0, 1.51]])
    front = draw_lidar(clip.images[0, 0], cams[0], p, radius=0)
    assert np.any(front[90, 160] != clip.images[0, 0, 90, 160])
    back = clip.views.index("CAM_BACK")
    assert np.array_equal(draw_lidar(clip.images[0, back], cams[back], p), clip.images[0, back])
