import dataclasses

import imageio.v2 as imageio
import numpy as np

from genesis_drive.viz.show import clip_fps, write_clip_show

from .media import read_frames


def test_show_writes_all_files(clip, tmp_path):
    files = write_clip_show(clip, tmp_path / "show")
    assert set(files) == {"views_boxes", "bev", "lidar_on_images", "layout"}
    assert {p.name for p in files.values()} == {"views_boxes.mp4", "bev.png", "lidar_on_images.png", "layout.mp4"}
    assert sorted(p.name for p in (tmp_path / "show").iterdir()) == sorted(p.name for p in files.values())
    for key in ("views_boxes", "layout"):
        frames = read_frames(files[key])
        assert frames.shape == (3, 2 * 180, 3 * 320, 3)
    layout = read_frames(files["layout"])
    # CAM_BACK (bottom-middle tile) shows the yellow bus behind the ego
    tile = layout[0, 180 + 60 : 180 + 150, 320 + 110 : 320 + 230].reshape(-1, 3).astype(int)
    assert (np.abs(tile - np.array([255, 230, 0])).sum(-1) < 60).sum() > 200
    lidar = imageio.imread(files["lidar_on_images"])
    assert lidar.shape == (360, 960, 3)
    assert np.any(lidar[:180, 320:640] != clip.images[0, 0])  # points were drawn on CAM_FRONT
    assert imageio.imread(files["bev"]).ndim == 3
    assert clip_fps(clip) == np.float64(1e6 / np.median(np.diff(clip.timestamps)))


def test_show_without_lidar(clip, tmp_path):
    bare = dataclasses.replace(
        clip, lidar=[], lidar_ego_to_global=np.zeros((0, 4, 4)), lidar_timestamps=np.zeros(0, dtype=np.int64)
    )
    files = write_clip_show(bare, tmp_path)
    assert set(files) == {"views_boxes", "bev", "layout"}
    assert not (tmp_path / "lidar_on_images.png").exists()
