"""The generated-root writer: devkit-loadable, same annotations, scaled intrinsics, atomic, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import genesis_drive.generate.root as root_mod
from genesis_drive.data.geometry import project_points
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.errors import DataError
from genesis_drive.eval.video_io import DirectoryClipSource
from genesis_drive.generate.root import generated_intrinsics, write_generated_root

from ..data.handmade import W, H, write_handmade

SIZE = (32, 18)  # half the source size (64 x 36)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = write_handmade(tmp_path_factory.mktemp("hm") / "root", num_keyframes=2)
    return root, NuScenesReader(root)


def _frames(reader: NuScenesReader, views=CAMERA_CHANNELS, size=SIZE) -> dict[str, np.ndarray]:
    scene = reader.scene_tokens()[0]
    out = {}
    for vi, view in enumerate(views):
        for fi, tok in enumerate(reader.channel_tokens(scene, view)):
            img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            img[...] = (200 - 20 * vi, 8 * fi, 60)
            out[tok] = img
    return out


def test_written_root_loads_with_source_annotations(source, tmp_path):
    src_root, src = source
    frames = _frames(src)
    clip = np.stack([np.stack([frames[t] for t in src.channel_tokens(src.scene_tokens()[0], v)[:5]]) for v in CAMERA_CHANNELS])
    out = write_generated_root(src_root, tmp_path / "gen", ["scene-0001"], CAMERA_CHANNELS, frames, SIZE,
                               clips={"scene-0001:0000": clip}, progress=False)
    gen = NuScenesReader(out)
    assert gen.scene_tokens() == src.scene_tokens()
    scene = gen.scene_tokens()[0]
    assert gen.sample_tokens(scene) == src.sample_tokens(scene)
    for s in src.sample_tokens(scene):
        a, b = src.boxes(s), gen.boxes(s)
        assert [x.token for x in a] == [x.token for x in b]
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.center, y.center)
            np.testing.assert_allclose(x.size, y.size)
        assert len(gen.human_poses(s)) == len(src.human_poses(s)) == 1
    for view in CAMERA_CHANNELS:
        assert gen.channel_tokens(scene, view) == src.channel_tokens(scene, view)
        tok = gen.channel_tokens(scene, view)[3]
        frame = gen.camera_frame(tok)
        assert frame.image.shape == (SIZE[1], SIZE[0], 3)
        assert np.abs(frame.image.astype(int) - frames[tok].astype(int)).max() <= 3  # JPEG of a flat colour
        # a 3D point lands at the same relative image position
        k_src, k_gen = src.camera_frame(tok, load_image=False).intrinsics, frame.intrinsics
        pts = np.array([[1.0, -0.5, 8.0], [-2.0, 0.7, 5.0]])
        uv_src, _ = project_points(pts, k_src)
        uv_gen, _ = project_points(pts, k_gen)
        np.testing.assert_allclose(uv_gen / SIZE, uv_src / (W, H), atol=1e-9)
    lidar = src.channel_tokens(scene, "LIDAR_TOP")
    np.testing.assert_array_equal(gen.lidar_sweep(lidar[2]).points, src.lidar_sweep(lidar[2]).points)
    assert (out / "generated" / "videos" / "scene-0001.mp4").stat().st_size > 0
    clips = DirectoryClipSource(out / "generated" / "clips", tuple(CAMERA_CHANNELS))
    (cid, got), = list(clips)
    assert cid == "scene-0001_0000" and got.shape == clip.shape
    np.testing.assert_array_equal(got, clip)  # PNG: lossless
    rows = gen.extra_table("generation")
    assert len(rows) == len(frames) and all(r["generated"] for r in rows)


def test_intrinsics_when_aspect_changes():
    k = np.array([[50.0, 0, 32.0], [0, 50.0, 18.0], [0, 0, 1]])
    k2 = generated_intrinsics(k, (64, 36), (18, 18))  # cover to 32x18, crop 7 px each side
    np.testing.assert_allclose(k2, [[25.0, 0, 9.0], [0, 25.0, 9.0], [0, 0, 1]])


def test_only_generated_views_are_kept(source, tmp_path):
    src_root, src = source
    views = ("CAM_FRONT", "CAM_BACK")
    out = write_generated_root(src_root, tmp_path / "gen", ["scene-0001"], views, _frames(src, views), SIZE, progress=False)
    gen = NuScenesReader(out)
    assert sorted(c for c in gen.channels(gen.scene_tokens()[0]) if c.startswith("CAM")) == sorted(views)


def test_missing_cameras_clear_error(source, tmp_path):
    src_root, src = source
    with pytest.raises(DataError, match=r"lacks the camera channels \['CAM_SIDE'\]"):
        write_generated_root(src_root, tmp_path / "gen", ["scene-0001"], ("CAM_FRONT", "CAM_SIDE"), _frames(src), SIZE, progress=False)
    assert not (tmp_path / "gen").exists()


def test_unknown_scene_and_uncovered_frames(source, tmp_path):
    src_root, src = source
    frames = _frames(src)
    with pytest.raises(DataError, match="unknown scenes"):
        write_generated_root(src_root, tmp_path / "gen", ["scene-9"], CAMERA_CHANNELS, frames, SIZE, progress=False)
    some = dict(list(frames.items())[:-3])
    with pytest.raises(DataError, match="3 camera frames have no generated image"):
        write_generated_root(src_root, tmp_path / "gen", ["scene-0001"], CAMERA_CHANNELS, some, SIZE, progress=False)
    out = write_generated_root(src_root, tmp_path / "gen", ["scene-0001"], CAMERA_CHANNELS, some, SIZE, uncovered="source", progress=False)
    rows = NuScenesReader(out).extra_table("generation")
    assert sum(not r["generated"] for r in rows) == 3


def test_failure_mid_write_leaves_no_out(source, tmp_path, monkeypatch):
    src_root, src = source

    def boom(*a, **k):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(root_mod, "write_mp4", boom)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_generated_root(src_root, tmp_path / "gen", ["scene-0001"], CAMERA_CHANNELS, _frames(src), SIZE, progress=False)
    assert list(tmp_path.iterdir()) == []
