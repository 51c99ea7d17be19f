import imageio.v2 as imageio
import numpy as np
import pytest

from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.viz.video import GRID_LAYOUT, view_grid, write_grid_mp4, write_mp4, write_png

from .media import read_frames


def solid(h, w, color):
    return np.broadcast_to(np.array(color, dtype=np.uint8), (h, w, 3)).copy()


def test_view_grid_places_cameras_in_a_2x3_layout():
    colors = {name: (20 * i, 255 - 30 * i, 100 + 10 * i) for i, name in enumerate(CAMERA_CHANNELS)}
    images = np.stack([solid(10, 16, colors[n]) for n in CAMERA_CHANNELS])
    grid = view_grid(images, CAMERA_CHANNELS, labels=False)
    assert grid.shape == (20, 48, 3)
    for r, row in enumerate(GRID_LAYOUT):
        for c, name in enumerate(row):
            assert np.all(grid[r * 10 : (r + 1) * 10, c * 16 : (c + 1) * 16] == colors[name])
    assert GRID_LAYOUT[0][1] == "CAM_FRONT" and GRID_LAYOUT[1][1] == "CAM_BACK"
    partial = view_grid(images[:1], CAMERA_CHANNELS[:1], labels=False)  # missing views stay black
    assert np.all(partial[:10, 16:32] == colors["CAM_FRONT"]) and partial[:, :16].max() == 0
    assert np.array_equal(view_grid(images, CAMERA_CHANNELS), grid)  # tiles too small for labels
    big = np.stack([solid(100, 200, colors[n]) for n in CAMERA_CHANNELS])
    plain, labelled = view_grid(big, CAMERA_CHANNELS, labels=False), view_grid(big, CAMERA_CHANNELS)
    changed = np.any(labelled != plain, axis=-1)
    assert changed[:20, :200].sum() > 50 and not changed[20:100].any()  # the name sits in the top-left corner
    with pytest.raises(ValueError, match="unknown camera"):
        view_grid(images[:1], ("CAM_TOP",))


def test_mp4_round_trip(tmp_path):
    t, h, w = 6, 48, 64
    colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (128, 128, 128), (10, 10, 10)]
    frames = np.stack([solid(h, w, c) for c in colors])
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=12.0, progress=False)
    assert path == tmp_path / "clip.mp4" and [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    reader = imageio.get_reader(path)
    back = np.stack([f for f in reader])
    assert reader.get_meta_data()["fps"] == pytest.approx(12.0)
    reader.close()
    assert back.shape == (t, h, w, 3)
    assert np.allclose(back.reshape(t, -1, 3).mean(axis=1), np.array(colors), atol=6)


def test_mp4_pads_odd_sizes_and_rejects_bad_input(tmp_path):
    frames = np.stack([solid(47, 63, (90, 160, 220))] * 2)
    back = read_frames(write_mp4(tmp_path / "odd.mp4", frames, progress=False))
    assert back.shape == (2, 48, 64, 3)
    assert np.allclose(back[:, :47, :63].reshape(-1, 3).mean(axis=0), (90, 160, 220), atol=6)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "bad.mp4", frames.astype(np.float32), progress=False)
    assert not (tmp_path / "bad.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]  # no temp files left


def test_grid_mp4_and_png(tmp_path):
    videos = np.zeros((3, 6, 20, 30, 3), dtype=np.uint8)
    videos[:, CAMERA_CHANNELS.index("CAM_BACK")] = 200
    back = read_frames(write_grid_mp4(tmp_path / "g.mp4", videos, CAMERA_CHANNELS, labels=False))
    assert back.shape == (3, 40, 90, 3)
    assert back[:, 24:36, 34:56].mean() > 190 and back[:, :16].mean() < 10  # CAM_BACK is bottom-middle
    img = np.random.default_rng(0).integers(0, 255, (17, 23, 3), dtype=np.uint8)
    assert np.array_equal(imageio.imread(write_png(tmp_path / "a.png", img)), img)
