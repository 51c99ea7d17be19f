"""Scene rollout with a fake chunk function: given frames are the frames generated before, every frame is kept once."""

from __future__ import annotations

import numpy as np
import pytest

from genesis_drive.data.clips import ClipIndex, ClipSpec
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.generate.root import write_generated_root
from genesis_drive.generate.scene import chunk_seed, frames_by_token, generate_scene

from ..data.handmade import write_handmade

SIZE = (32, 18)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = write_handmade(tmp_path_factory.mktemp("hm") / "root", num_keyframes=4)  # 19 camera frames
    spec = ClipSpec(num_frames=9, window_stride=1, views=CAMERA_CHANNELS, image_size=SIZE, lidar="none")
    return ClipIndex(NuScenesReader(root), spec)


class Recorder:
    """Chunk function whose frame (view i, frame j) of call c is the value 10 c + j + 100 i (mod 256)."""

    def __init__(self):
        self.calls = []

    def __call__(self, clip, given, seed):
        c = len(self.calls)
        self.calls.append((clip.clip_id, None if given is None else given.copy(), seed))
        v, t = len(clip.views), clip.num_frames
        vals = (10 * c + np.arange(t)[None, :] + 100 * np.arange(v)[:, None]) % 256
        return np.broadcast_to(vals[:, :, None, None, None], (v, t, SIZE[1], SIZE[0], 3)).astype(np.uint8)


def test_rollout_feeds_generated_frames(index, tmp_path):
    rec = Recorder()
    scene = index.reader.scene_tokens()[0]
    video = generate_scene(index, scene, rec, seed=3)
    assert [c.start for c in video.chunks] == [0, 8, 10] and video.frames.shape == (6, 19, 18, 32, 3)
    assert [cid for cid, _, _ in rec.calls] == ["scene-0001:0000", "scene-0001:0008", "scene-0001:0010"]
    assert rec.calls[0][1] is None  # free mode: nothing given to the first chunk
    expect = np.zeros(19, dtype=int)  # frame value of view 0, by owning chunk
    expect[0:9] = np.arange(9)
    expect[9:17] = 10 + np.arange(1, 9)
    expect[17:19] = 20 + np.arange(7, 9)
    np.testing.assert_array_equal(video.frames[0, :, 0, 0, 0], expect)
    np.testing.assert_array_equal(video.frames[1, :, 0, 0, 0], expect + 100)
    for (_, given, _), c in zip(rec.calls[1:], video.chunks[1:]):
        assert given.shape[1] == c.given_frames
        np.testing.assert_array_equal(given, video.frames[:, c.start : c.start + c.given_frames])
    assert [s for _, _, s in rec.calls] == [chunk_seed(3, "scene-0001", i) for i in range(3)]
    assert len({s for _, _, s in rec.calls}) == 3 and chunk_seed(3, "scene-0001", 0) != chunk_seed(4, "scene-0001", 0)
    frames = frames_by_token(index.reader, video)
    out = write_generated_root(index.reader.root, tmp_path / "gen", ["scene-0001"], CAMERA_CHANNELS, frames, SIZE,
                               clips=video.clips, progress=False)  # covers every camera frame
    gen = NuScenesReader(out)
    tok = gen.channel_tokens(scene, "CAM_BACK")[12]
    assert abs(int(gen.camera_frame(tok).image[0, 0, 0]) - (expect[12] + 300) % 256) <= 3


def test_first_frame_mode_keeps_real_frame(index):
    rec = Recorder()
    scene = index.reader.scene_tokens()[0]
    video = generate_scene(index, scene, rec, first_given=1)
    real = index.load(0).images  # t v h w 3
    given = rec.calls[0][1]
    assert given.shape == (6, 1, 18, 32, 3)
    np.testing.assert_array_equal(given[:, 0], real[0])
    np.testing.assert_array_equal(video.frames[:, 0], real[0])
    np.testing.assert_array_equal(video.frames[0, 1:9, 0, 0, 0], np.arange(1, 9))
