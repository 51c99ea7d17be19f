"""ClipIndex / ClipDataset: windows, interpolation, resize geometry, tensors, manifest filter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from genesis_drive.data.clips import ClipDataset, ClipIndex, ClipSpec, collate_clips, interpolate_boxes, resize_crop
from genesis_drive.data.geometry import Pose, project_points, quat_from_yaw
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import Box3D, clip_scene

from .handmade import CAM_US, KEY_US, T0, car_box, ego_pose, write_handmade


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> NuScenesReader:
    return NuScenesReader(write_handmade(tmp_path_factory.mktemp("hm") / "root"))


def test_windows_and_ids(reader):
    idx = ClipIndex(reader, ClipSpec(num_frames=4, frame_stride=2, window_stride=5))
    # 19 reference frames, span (4-1)*2+1 = 7 -> starts 0, 5, 10
    assert [r.clip_id for r in idx.refs] == ["scene-0001:0000", "scene-0001:0005", "scene-0001:0010"]
    assert all(len(r.frame_tokens) == 4 for r in idx.refs)
    assert [clip_scene(r.clip_id) for r in idx.refs] == [r.scene_name for r in idx.refs] == ["scene-0001"] * 3
    assert clip_scene("town:a:0016") == "town:a"  # only the last ':' separates the start index
    kf = ClipIndex(reader, ClipSpec(num_frames=2, window_stride=1, rate="keyframe"))
    assert len(kf) == 3
    clip = kf.load(0)
    assert clip.is_key_frame.all() and np.all(np.diff(clip.timestamps) == KEY_US)


def test_clip_content_in_ego_frame(reader):
    idx = ClipIndex(reader, ClipSpec(num_frames=7, window_stride=6, lidar="all"))
    clip = idx.load(0)
    assert clip.images.shape == (7, 6, 36, 64, 3)
    assert clip.is_key_frame.tolist() == [True] + [False] * 5 + [True]
    for t, ts in enumerate(clip.timestamps):
        car = next(b for b in clip.boxes[t] if b.category == "vehicle.car")
        # ego at x = 100 + 2 dt, car at x = 110 + 5 dt, y 53.5 vs 50 -> (10 + 3 dt, 3.5) in ego frame
        dt = (ts - T0) / 1e6
        np.testing.assert_allclose(car.center, [10 + 3 * dt, 3.5, 0.8], atol=1e-6)
    # trajectory of the ego in the frame-0 ego frame
    np.testing.assert_allclose(clip.ego_trajectory[:, 0], 2 * (clip.timestamps - T0) / 1e6, atol=1e-6)
    # LiDAR: every sweep of the time span (0..0.5 s at 20 Hz = 11 sweeps)
    assert len(clip.lidar) == 11 and clip.lidar[0].shape == (200, 5)
    # map moved into the frame-0 ego frame: lane divider at global y = 50 -> ego y = 0
    np.testing.assert_allclose(clip.map.lane_divider[0][:, 1], 0.0)
    assert clip.poses[0] and clip.poses[0][0].keypoints[0, 0] == pytest.approx(5.0)


def test_interpolation_at_keyframes_returns_keyframe():
    a = [car_box(T0)]
    b = [car_box(T0 + KEY_US)]
    assert interpolate_boxes(a, b, 0.0)[0] == a[0]
    assert interpolate_boxes(a, b, 1.0)[0] == b[0]
    mid = interpolate_boxes(a, b, 0.5)[0]
    np.testing.assert_allclose(mid.center, (a[0].center + b[0].center) / 2)
    # rotation interpolates by slerp
    r0 = Box3D.from_yaw([0, 0, 0], [1, 2, 1], 0.0, "vehicle.car", instance_token="x")
    r1 = Box3D.from_yaw([0, 0, 0], [1, 2, 1], np.pi / 2, "vehicle.car", instance_token="x")
    assert interpolate_boxes([r0], [r1], 0.5)[0].yaw == pytest.approx(np.pi / 4)
    # an object only in the later keyframe appears once that keyframe is nearer
    only_b = Box3D.from_yaw([1, 1, 0], [1, 1, 1], 0.0, "vehicle.car", instance_token="new")
    assert len(interpolate_boxes([], [only_b], 0.3)) == 0 and len(interpolate_boxes([], [only_b], 0.7)) == 1


def test_clip_keyframe_boxes_equal_annotations(reader):
    idx = ClipIndex(reader, ClipSpec(num_frames=7, window_stride=6))
    clip = idx.load(1)  # starts on keyframe 1
    assert clip.is_key_frame[0]
    g2e = ego_pose(int(clip.timestamps[0])).inverse()
    want = car_box(int(clip.timestamps[0])).transform(g2e)
    got = next(b for b in clip.boxes[0] if b.category == "vehicle.car")
    np.testing.assert_allclose(got.center, want.center, atol=1e-9)


def test_resize_keeps_projection():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(90, 160, 3), dtype=np.uint8)
    k = np.array([[126.6, 0, 80.0], [0, 126.6, 45.0], [0, 0, 1]])
    pts = np.array([[1.0, 0.5, 10.0], [-2.0, -0.3, 5.0], [0.2, 0.1, 30.0]])
    uv0, _ = project_points(pts, k)
    for size in ((80, 45), (64, 48), (200, 100)):
        out, k2 = resize_crop(img, k, size)
        assert out.shape == (size[1], size[0], 3)
        uv1, _ = project_points(pts, k2)
        s = max(size[0] / 160, size[1] / 90)
        left = (round(160 * s) - size[0]) // 2
        top = (round(90 * s) - size[1]) // 2
        np.testing.assert_allclose(uv1, uv0 * [round(160 * s) / 160, round(90 * s) / 90] - [left, top], atol=1e-9)


def test_resize_keeps_content_at_projected_pixel():
    img = np.zeros((90, 160, 3), dtype=np.uint8)
    img[40:50, 100:110] = 255  # a bright square centred at (105, 45)
    k = np.array([[100.0, 0, 80.0], [0, 100.0, 45.0], [0, 0, 1]])
    p = np.array([[(105 - 80) / 100 * 10, 0.0, 10.0]])  # projects to (105, 45)
    out, k2 = resize_crop(img, k, (80, 45))
    (u, v), = project_points(p, k2)[0]
    assert out[int(v), int(u)].min() > 200


def test_dataset_tensors_and_collate(reader):
    idx = ClipIndex(reader, ClipSpec(num_frames=3, window_stride=6, image_size=(32, 18)))
    ds = ClipDataset(idx)
    batch = collate_clips([ds[0], ds[1]])
    assert batch["images"].shape == (2, 6, 3, 3, 18, 32) and batch["images"].dtype == torch.uint8
    assert batch["intrinsics"].shape == (2, 6, 3, 3)
    assert batch["intrinsics"][0, 0, 0, 0].item() == pytest.approx(1266 * 64 / 1600 / 2)
    assert batch["lidar"].shape[:2] == (2, 1) and batch["lidar_mask"].all()
    assert batch["clip_id"] == ["scene-0001:0000", "scene-0001:0006"]
    # channel order: red encodes the view index in the hand-made images (20 + 30 * view)
    np.testing.assert_allclose(batch["images"][0, :, 0, 0].float().mean(dim=(1, 2)).numpy(), 20 + 30 * np.arange(6), atol=3)


def test_manifest_filters_and_attaches_captions(reader, tmp_path):
    table = pa.table(
        {
            "clip_id": ["scene-0001:0000", "scene-0001:0006", "scene-0001:0012"],
            "kept": [True, False, True],
            "caption_json": [json.dumps({"global": {"time_of_day": "day"}}), None, None],
        }
    )
    path = tmp_path / "manifest.parquet"
    pq.write_table(table, path)
    idx = ClipIndex(reader, ClipSpec(num_frames=3, window_stride=6), manifest=path)
    assert [r.clip_id for r in idx.refs] == ["scene-0001:0000", "scene-0001:0012"]
    assert idx.load(0).caption == {"global": {"time_of_day": "day"}}
    assert idx.load(1).caption is None


def test_image_frames_reads_only_the_first_frames_pictures(reader, monkeypatch):
    spec = ClipSpec(num_frames=3, window_stride=6, rate="keyframe", image_size=(32, 16))
    full, first = ClipIndex(reader, spec).load(0), ClipIndex(reader, spec, image_frames=1).load(0)
    assert full.images.shape == (3, 6, 16, 32, 3) and first.images.shape == (1, 6, 16, 32, 3)
    assert np.array_equal(first.images[0], full.images[0])
    for name in ("intrinsics", "cam_to_ego", "ego_to_global", "timestamps", "ego_trajectory", "is_key_frame", "lidar_ego_to_global"):
        assert np.array_equal(getattr(first, name), getattr(full, name)), name
    assert all(np.array_equal(a, b) for a, b in zip(first.lidar, full.lidar)) and len(first.lidar) == len(full.lidar) == 3
    assert [[b.center.tolist() for b in f] for f in first.boxes] == [[b.center.tolist() for b in f] for f in full.boxes]
    # the camera frames of the other keyframes are never read
    reads = []
    real = NuScenesReader.camera_frame
    monkeypatch.setattr(NuScenesReader, "camera_frame", lambda self, tok: reads.append(tok) or real(self, tok))
    ClipIndex(reader, spec, image_frames=2).load(0)
    assert len(reads) == 2 * 6
    assert ClipIndex(reader, spec, image_frames=9).load(0).images.shape[0] == 3  # capped at the clip's frames
    with pytest.raises(ValueError, match="image_frames"):
        ClipIndex(reader, spec, image_frames=0)


def test_spec_errors():
    with pytest.raises(ValueError, match="rate must be"):
        ClipSpec(rate="fast")
    with pytest.raises(ValueError, match="image_size must be"):
        ClipSpec(image_size=(0, 10))


def test_pose_matrix_consistency():
    p = Pose(quat_from_yaw(0.3), [1.0, 2.0, 3.0])
    np.testing.assert_allclose((p @ p.inverse()).matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(Pose.from_matrix(p.matrix()).matrix(), p.matrix(), atol=1e-12)
    _ = CAM_US, Path


def test_unsynchronised_keyframes_like_real_nuscenes(tmp_path):
    """Real nuScenes: camera key frames fire up to ~40 ms after the LiDAR sweep stamping the sample.
    Keyframe clips must still get each sample's sweep, and the writer must link them."""
    from genesis_drive.data.nuscenes import NuScenesWriter, SceneMeta
    from genesis_drive.data.schema import CameraFrame, LidarSweep

    from .handmade import LIDAR_CALIB, MAP, cam_calibration, image_for, lidar_points

    offset = 30_000
    with pytest.raises(Exception, match="more than 0 us from every sample"):
        with NuScenesWriter(tmp_path / "strict") as w:
            w.add_map("m", MAP)
            s = w.begin_scene(SceneMeta("s", "d", "m"), [cam_calibration(0), LIDAR_CALIB])
            w.add_sample(s, T0, [car_box(T0)])
            c = cam_calibration(0)
            w.add_camera_frame(s, CameraFrame(c.channel, image_for(0, 0), c.intrinsics, c.sensor_to_ego, ego_pose(T0), T0 + offset, True))
    with NuScenesWriter(tmp_path / "ds", key_tolerance_us=50_000) as w:
        w.add_map("m", MAP)
        calibs = [cam_calibration(i) for i in range(6)] + [LIDAR_CALIB]
        s = w.begin_scene(SceneMeta("s", "d", "m"), calibs)
        for k in range(3):
            t = T0 + k * KEY_US
            w.add_sample(s, t, [car_box(t)])
            w.add_lidar_sweep(s, LidarSweep(lidar_points(seed=k), LIDAR_CALIB.sensor_to_ego, ego_pose(t), t, True))
            for c in calibs[:6]:
                w.add_camera_frame(s, CameraFrame(c.channel, image_for(0, k), c.intrinsics, c.sensor_to_ego, ego_pose(t + offset), t + offset, True))
    reader = NuScenesReader(tmp_path / "ds")
    assert all(len(reader.nusc.get("sample", st)["data"]) == 7 for st in reader.sample_tokens(reader.scene_tokens()[0]))
    one = ClipIndex(reader, ClipSpec(num_frames=1, window_stride=1, rate="keyframe", lidar="keyframe"))
    for i in range(len(one)):
        clip = one.load(i)
        assert len(clip.lidar) == 1 and clip.lidar_timestamps[0] == clip.timestamps[0] - offset
        np.testing.assert_array_equal(clip.lidar[0], lidar_points(seed=i))
    assert len(ClipIndex(reader, ClipSpec(num_frames=1, window_stride=1, rate="keyframe", lidar="all")).load(0).lidar) == 1


def test_collate_pads_sweeps_and_points():
    a = {"lidar": torch.ones(2, 3, 5), "lidar_mask": torch.ones(2, 3, dtype=torch.bool), "clip_id": "a"}
    b = {"lidar": torch.ones(1, 5, 5) * 2, "lidar_mask": torch.ones(1, 5, dtype=torch.bool), "clip_id": "b"}
    batch = collate_clips([a, b])
    assert batch["lidar"].shape == (2, 2, 5, 5) and batch["lidar_mask"].shape == (2, 2, 5)
    assert batch["lidar_mask"].sum(dim=(1, 2)).tolist() == [6, 5]
    assert (batch["lidar"][1, 1] == 0).all() and (batch["lidar"][1, 0] == 2).all()
    assert batch["clip_id"] == ["a", "b"]


def test_manifest_cut_with_another_spec_is_refused(reader, tmp_path):
    idx = ClipIndex(reader, ClipSpec(num_frames=3, window_stride=6))
    table = pa.table({"clip_id": ["scene-0001:0006"], "kept": [True], "caption_json": [None],
                      "frame_tokens": [list(idx.refs[1].frame_tokens)]})
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    assert len(ClipIndex(reader, ClipSpec(num_frames=3, window_stride=6), manifest=path)) == 1
    from genesis_drive.errors import DataError

    with pytest.raises(DataError, match="covers other frames than the manifest's"):
        ClipIndex(reader, ClipSpec(num_frames=3, frame_stride=2, window_stride=6), manifest=path)
