import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from genesis_drive.data.geometry import project_points
from genesis_drive.data.schema import DETECTION_CLASSES, Box3D
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.layout.bev import BEV_PRESETS, bev_channel_names, frame_bev
from genesis_drive.layout.camera import clip_layout
from genesis_drive.layout.conditions import CONDITION_PRESETS, ConditionConfig, ConditionTransform, ego_speed
from genesis_drive.layout.tokens import TokenConfig, box_tokens

from .scene import make_clip, standing_pose

W, H = 64, 36
CFG = ConditionConfig(image_size=(W, H), tokens=TokenConfig(max_boxes=10, num_bands=4), bev=BEV_PRESETS["tiny"], max_pedestrians=3)


@pytest.fixture(scope="module")
def small_clip():
    return make_clip(num_frames=3, width=160, height=90)


@pytest.fixture(scope="module")
def out(small_clip):
    return ConditionTransform(CFG)(small_clip)


def test_keys_shapes_dtypes(small_clip, out):
    v, t, n, p = 6, 3, 10, 3
    c = len(bev_channel_names(CFG.bev))
    expect = {
        "layout": ((v, t, 3, H, W), torch.uint8),
        "bev": ((t, c, 64, 64), torch.float32),
        "box_corners": ((t, n, 8, 3), torch.float32),
        "box_features": ((t, n, 24 * 9), torch.float32),
        "box_class": ((t, n), torch.int64),
        "box_track": ((t, n), torch.int64),
        "box_mask": ((t, n), torch.bool),
        "ped_keypoints": ((t, p, 17, 3), torch.float32),
        "ped_visible": ((t, p, 17), torch.bool),
        "ped_track": ((t, p), torch.int64),
        "ped_mask": ((t, p), torch.bool),
        "ped_keypoints_2d": ((v, t, p, 17, 2), torch.float32),
        "ped_depth": ((v, t, p, 17), torch.float32),
        "ped_visible_2d": ((v, t, p, 17), torch.bool),
        "ped_view_mask": ((v, t, p), torch.bool),
        "ego": ((t, 4), torch.float32),
        "intrinsics": ((v, 3, 3), torch.float32),
        "cam_to_ego": ((v, 4, 4), torch.float32),
        "caption_global": ((384,), torch.float32),
        "caption_global_mask": ((), torch.bool),
        "caption_views": ((v, 384), torch.float32),
        "caption_views_mask": ((v,), torch.bool),
    }
    assert set(out) == set(expect)
    for k, (shape, dtype) in expect.items():
        assert tuple(out[k].shape) == shape and out[k].dtype == dtype, k


def test_layout_bev_and_cameras_reuse_the_layout_modules(small_clip, out):
    ref = clip_layout(small_clip, CFG.camera_layout, (W, H))  # t v h w c
    assert torch.equal(out["layout"], torch.from_numpy(ref).permute(1, 0, 4, 2, 3))
    assert out["layout"].any()
    assert np.allclose(out["bev"][2].numpy(), frame_bev(small_clip, 2, CFG.bev))
    # intrinsics rescaled from 160 x 90 to 64 x 36: x 0.4
    assert np.allclose(out["intrinsics"].numpy(), small_clip.intrinsics * np.array([0.4, 0.4, 1.0])[:, None], atol=1e-4)
    assert np.allclose(out["cam_to_ego"].numpy(), small_clip.cam_to_ego, atol=1e-6)


def _one_box_clip(clip, coords_xy=(10.0, 2.0)):
    x, y = coords_xy
    box = Box3D.from_yaw([x, y, 0.8], (2.0, 4.0, 1.6), 0.0, "vehicle.car", instance_token="a")
    return replace(clip, boxes=[[box] for _ in range(clip.num_frames)], poses=[[] for _ in range(clip.num_frames)])


def test_a_known_box_gives_known_corner_tokens(small_clip):
    clip = _one_box_clip(small_clip)
    out = ConditionTransform(CFG)(clip)
    # w = 2 (y), l = 4 (x), h = 1.6 at (10, 2, 0.8): devkit corner order, front face first, top first
    expect = np.array([
        [12, 3, 1.6], [12, 1, 1.6], [12, 1, 0.0], [12, 3, 0.0],
        [8, 3, 1.6], [8, 1, 1.6], [8, 1, 0.0], [8, 3, 0.0],
    ])  # fmt: skip
    for t in range(3):
        assert np.allclose(out["box_corners"][t, 0].numpy(), expect, atol=1e-5)
    assert out["box_mask"][:, 0].all() and not out["box_mask"][:, 1:].any()
    assert out["box_class"][:, 0].tolist() == [DETECTION_CLASSES.index("car")] * 3
    assert out["box_track"][:, 0].tolist() == [0, 0, 0]
    assert (out["box_class"][:, 1:] == -1).all() and (out["box_corners"][:, 1:] == 0).all()
    assert np.allclose(out["box_features"][0, 0, :24].numpy() * CFG.tokens.max_range, expect.reshape(-1), atol=1e-4)
    assert not out["ped_mask"].any() and not out["ped_visible_2d"].any() and (out["ped_track"] == -1).all()


def test_first_frame_coordinates_follow_the_ego_motion(small_clip):
    clip = _one_box_clip(small_clip)
    first = ConditionTransform(replace(CFG, coords="first"))(clip)
    per_frame = ConditionTransform(CFG)(clip)
    for t in range(3):
        dx = 5.0 * t / 12.0  # the ego drives +x at 5 m/s, 12 frames/s; the box keeps its ego offset
        assert np.allclose(first["box_corners"][t, 0].numpy(), per_frame["box_corners"][t, 0].numpy() + [dx, 0, 0], atol=1e-4)
    assert (first["box_corners"][:, 1:] == 0).all() and (first["box_features"][:, 1:] == 0).all()
    assert not torch.allclose(first["box_features"][2, 0], per_frame["box_features"][2, 0])


def test_pedestrian_keypoints_project_where_project_points_says(small_clip, out):
    assert out["ped_mask"][:, 0].all() and not out["ped_mask"][:, 1:].any()
    tok = box_tokens(small_clip, CFG.tokens)
    for t in range(3):
        pose = small_clip.poses[t][0]
        assert np.allclose(out["ped_keypoints"][t, 0].numpy(), pose.keypoints, atol=1e-5)
        # the pose's track is its box's track in box_tokens
        slot = [i for i in range(10) if tok["box_mask"][t, i] and DETECTION_CLASSES[tok["box_class"][t, i]] == "pedestrian"]
        assert out["ped_track"][t, 0] == tok["box_track"][t, slot[0]]
        seen = 0
        for j in range(6):
            k = small_clip.intrinsics[j] * np.array([0.4, 0.4, 1.0])[:, None]
            pc = pose.keypoints @ np.linalg.inv(small_clip.cam_to_ego[j])[:3, :3].T + np.linalg.inv(small_clip.cam_to_ego[j])[:3, 3]
            uv, front = project_points(pc, k, min_depth=0.1)
            inside = front & (np.nan_to_num(uv[:, 0], nan=-1) >= 0) & (np.nan_to_num(uv[:, 0], nan=-1) < W)
            inside &= (np.nan_to_num(uv[:, 1], nan=-1) >= 0) & (np.nan_to_num(uv[:, 1], nan=-1) < H)
            vis = out["ped_visible_2d"][j, t, 0].numpy()
            assert np.array_equal(vis, inside)
            assert np.allclose(out["ped_keypoints_2d"][j, t, 0].numpy()[vis], uv[vis] / [W, H], atol=1e-5)
            assert np.allclose(out["ped_depth"][j, t, 0].numpy()[vis], pc[vis, 2], atol=1e-4)
            assert (out["ped_keypoints_2d"][j, t, 0].numpy()[~vis] == 0).all()
            assert bool(out["ped_view_mask"][j, t, 0]) == bool(vis.any())
            seen += int(vis.any())
        assert seen >= 1  # the pedestrian at (10, 8.5) is in front-left view
    # front-left camera (index 5) sees it; the back camera (index 3) does not
    assert out["ped_view_mask"][5, 0, 0] and not out["ped_view_mask"][3, 0, 0]


def test_pedestrian_slots_keep_the_nearest(small_clip):
    near, far = standing_pose(6.0, 3.0, 0.0, "near"), standing_pose(20.0, 3.0, 0.0, "far")
    clip = replace(small_clip, poses=[[far, near] for _ in range(3)])
    out = ConditionTransform(replace(CFG, max_pedestrians=1))(clip)
    assert out["ped_keypoints"].shape[1] == 1
    assert np.allclose(out["ped_keypoints"][0, 0].numpy(), near.keypoints, atol=1e-5)
    assert (out["ped_track"] == -1).all()  # these poses have no box in the clip


def test_ego_tokens_position_yaw_speed(small_clip, out):
    assert np.allclose(out["ego"][:, :3].numpy(), small_clip.ego_trajectory, atol=1e-6)
    assert np.allclose(out["ego"][:, 3].numpy(), 5.0, atol=1e-4)
    # speed: a stop-then-go trajectory, central differences inside
    pos = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert np.allclose(ego_speed(pos, np.array([0, 1_000_000, 2_000_000])), [0.0, 2.5, 5.0])
    assert np.allclose(ego_speed(pos[:1], np.array([0])), [0.0])
    with pytest.raises(ValueError):
        ego_speed(pos, np.array([0, 0, 1]))


def test_caption_embeddings_and_flags(small_clip, out):
    assert not out["caption_global_mask"] and not out["caption_views_mask"].any()
    assert (out["caption_global"] == 0).all() and (out["caption_views"] == 0).all()
    rng = np.random.default_rng(0)
    g, back = rng.normal(size=384), rng.normal(size=384)
    res = ConditionTransform(CFG)(small_clip, {"global": g, "CAM_BACK": back})
    assert res["caption_global_mask"] and np.allclose(res["caption_global"].numpy(), g, atol=1e-6)
    assert res["caption_views_mask"].tolist() == [False, False, False, True, False, False]
    assert np.allclose(res["caption_views"][3].numpy(), back, atol=1e-6) and (res["caption_views"][[0, 1, 2, 4, 5]] == 0).all()
    with pytest.raises(DataError, match="CAM_SIDE"):
        ConditionTransform(CFG)(small_clip, {"CAM_SIDE": g})
    with pytest.raises(DataError, match=r"\(384,\)"):
        ConditionTransform(CFG)(small_clip, {"global": g[:10]})


def test_picklable_and_collatable(small_clip, out):
    tr = pickle.loads(pickle.dumps(ConditionTransform(CFG)))
    again = tr(small_clip)
    assert all(torch.equal(out[k], again[k]) for k in out)
    batch = default_collate([out, again])
    assert batch["layout"].shape == (2, 6, 3, 3, H, W) and batch["caption_global_mask"].shape == (2,)


def test_config_errors_and_presets():
    with pytest.raises(ConfigError, match="coords"):
        ConditionConfig(coords="global")
    with pytest.raises(ConfigError, match="image_size"):
        ConditionConfig(image_size=(0, 10))
    assert CONDITION_PRESETS["tiny"]().image_size == (128, 72)
    assert CONDITION_PRESETS["paper"]().tokens.max_boxes == 64
