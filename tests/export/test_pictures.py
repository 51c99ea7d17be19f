"""export.pictures.lidar_on_images on the hand-made root: the sample's own sweep by default, any
global-frame points when given (empty: the plain images; one point: drawn where it projects)."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np

from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.export.pictures import keyframe_points_ego, lidar_on_images, scene_cameras, write_lidar_on_images
from genesis_drive.viz.video import view_grid


def test_lidar_on_images_default_and_given_points(hm_root, tmp_path):
    reader = NuScenesReader(hm_root)
    scene = reader.scene_tokens()[0]
    sample = reader.sample_tokens(scene)[0]
    cams = ("CAM_FRONT", "CAM_BACK")
    own = lidar_on_images(reader, sample, cams)
    points, ego = keyframe_points_ego(reader, sample)
    given = lidar_on_images(reader, sample, cams, ego.apply(points[:, :3]))
    assert all(np.array_equal(a, b) for a, b in zip(own, given))
    data = reader.nusc.get("sample", sample)["data"]
    frames = [reader.camera_frame(data[c]) for c in cams]
    plain = lidar_on_images(reader, sample, cams, np.zeros((0, 3)))
    assert all(np.array_equal(p, f.image) for p, f in zip(plain, frames))
    assert all(np.any(o != f.image) for o, f in zip(own, frames))
    # one point 10 m ahead of CAM_FRONT on its optical axis: drawn near the principal point, not on CAM_BACK
    f = frames[0]
    cam_to_global = f.ego_to_global.matrix() @ f.sensor_to_ego.matrix()
    point = (cam_to_global @ np.array([0.0, 0.0, 10.0, 1.0]))[None, :3]
    front, back = lidar_on_images(reader, sample, cams, point, max_depth=40.0)
    changed = np.argwhere(np.any(front != f.image, axis=2))
    cx, cy = f.intrinsics[0, 2], f.intrinsics[1, 2]
    assert len(changed) > 0 and np.abs(changed.mean(axis=0) - [cy, cx]).max() < 2.0
    assert np.array_equal(back, frames[1].image)
    # the grid PNG is the tiles of every camera of the scene
    cams6 = scene_cameras(reader, scene)
    assert len(cams6) == 6
    path = write_lidar_on_images(reader, scene, sample, tmp_path / "grid.png")
    assert np.array_equal(imageio.imread(path), view_grid(np.stack(lidar_on_images(reader, sample, cams6)), cams6))
