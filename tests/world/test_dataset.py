"""A generated SynthTown dataset: devkit loading, annotations against rendered masks and LiDAR,
fault labels, determinism, and the CLI."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pytest

from genesis_drive.data.geometry import project_points
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS, COCO_SKELETON, LIDAR_CHANNEL
from genesis_drive.world.generate import buffer_path, generate
from genesis_drive.world.scene import build_scene

from .conftest import small_config


@pytest.fixture(scope="module")
def reader(world_root) -> NuScenesReader:
    return NuScenesReader(world_root)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_devkit_loads_complete_samples(world_root):
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes(version="v1.0-trainval", dataroot=str(world_root), verbose=False)
    assert len(nusc.scene) == 1
    assert len(nusc.sample) == 3  # 1.5 s at 2 Hz
    for sample in nusc.sample:
        assert set(sample["data"]) == set(CAMERA_CHANNELS) | {LIDAR_CHANNEL}
        assert len(sample["anns"]) > 0
    # 12 Hz cameras, 20 Hz LiDAR: every channel is a complete chain
    per_channel = {}
    for sd in nusc.sample_data:
        per_channel.setdefault(sd["channel"], []).append(sd["timestamp"])
    assert all(len(v) == 18 for k, v in per_channel.items() if k != LIDAR_CHANNEL)
    assert len(per_channel[LIDAR_CHANNEL]) == 30
    dt = np.diff(sorted(per_channel["CAM_FRONT"]))
    assert np.all(np.abs(dt - 1e6 / 12) <= 1)
    # the devkit's own box API in the LiDAR frame
    _, boxes, _ = nusc.get_sample_data(nusc.sample[0]["data"][LIDAR_CHANNEL])
    assert boxes and all(b.name in {c["name"] for c in nusc.category} for b in boxes)


def test_map_layers_written(reader):
    layers = reader.map_layers(reader.scene_location(reader.scene_tokens()[0]))
    assert len(layers.drivable_area) > 0 and len(layers.ped_crossing) > 0 and len(layers.lane_centerline) > 10
    assert len(layers.walkway) > 0 and len(layers.road_divider) > 0 and len(layers.road_edge) > 0


def _masks(root: Path, reader: NuScenesReader):
    """(box, camera frame, instance buffer, depth buffer, instance id) for every keyframe box and camera."""
    ids = {row["instance_token"]: row["instance_id"] for row in reader.extra_table("synthtown_instance")}
    scene = reader.scene_tokens()[0]
    name = reader.scene_name(scene)
    for st in reader.sample_tokens(scene):
        sample = reader.nusc.get("sample", st)
        boxes = reader.boxes(st)
        for ch in CAMERA_CHANNELS:
            frame = reader.camera_frame(sample["data"][ch], load_image=False)
            buf = np.load(root / buffer_path(name, ch, frame.timestamp))
            depth = buf["depth"].astype(np.float64) / 100.0
            depth[depth == 0] = np.inf
            for b in boxes:
                yield b, frame, buf["instance"], depth, ids[b.instance_token]


def test_projected_boxes_match_instance_masks(world_root, reader):
    """Boxes fully inside an image contain their object's mask. Vehicles (rigid bodies that fill
    their boxes) seen with nothing in front of them match their mask: IoU >= 0.9 between the mask's
    bounding box and the projected box's bounding box, both taken on the pixel grid (a pixel belongs
    to a shape when its centre does, as in the rasteriser)."""
    contained, ious = [], []
    for box, frame, inst, depth, iid in _masks(world_root, reader):
        g2c = (frame.ego_to_global @ frame.sensor_to_ego).inverse()
        corners = g2c.apply(box.corners())
        h, w = inst.shape
        if corners[:, 2].min() < 0.5:
            continue
        uv, _ = project_points(corners, frame.intrinsics)
        if uv[:, 0].min() < 0 or uv[:, 1].min() < 0 or uv[:, 0].max() > w or uv[:, 1].max() > h:
            continue
        mask = inst == iid
        if mask.sum() < 60:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = *uv.min(axis=0), *uv.max(axis=0)
        contained.append(np.mean((xs + 0.5 >= x0) & (xs + 0.5 <= x1) & (ys + 0.5 >= y0) & (ys + 0.5 <= y1)))
        if not box.category.startswith(("vehicle.car", "vehicle.truck", "vehicle.bus")):
            continue  # people and cyclists are articulated: they fill only part of their box
        mx0, my0, mx1, my1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        if mx1 - mx0 < 16 or my1 - my0 < 12:
            continue  # too small for a one-pixel error to stay under 10 %
        r0, r1, c0, c1 = int(y0), int(np.ceil(y1)), int(x0), int(np.ceil(x1))
        in_front = (depth[r0:r1, c0:c1] < corners[:, 2].min() - 0.2) & ~mask[r0:r1, c0:c1]
        if in_front.any():
            continue  # occluded
        px0, py0, px1, py1 = np.ceil(x0 - 0.5), np.ceil(y0 - 0.5), np.floor(x1 - 0.5) + 1, np.floor(y1 - 0.5) + 1
        inter = max(0.0, min(mx1, px1) - max(mx0, px0)) * max(0.0, min(my1, py1) - max(my0, py0))
        ious.append(inter / ((mx1 - mx0) * (my1 - my0) + (px1 - px0) * (py1 - py0) - inter))
    assert len(contained) >= 10 and min(contained) > 0.97
    assert len(ious) >= 3, "the test scene should show a few unoccluded vehicles"
    assert min(ious) >= 0.9, sorted(ious)[:5]


def test_lidar_points_in_boxes_match_counts(reader):
    scene = reader.scene_tokens()[0]
    total = 0
    for st in reader.sample_tokens(scene):
        sample = reader.nusc.get("sample", st)
        sweep = reader.lidar_sweep(sample["data"][LIDAR_CHANNEL])
        pts = (sweep.ego_to_global @ sweep.sensor_to_ego).apply(sweep.points[:, :3])
        for b in reader.boxes(st):
            assert int(b.contains(pts).sum()) == b.num_lidar_pts
            total += b.num_lidar_pts
        assert sweep.points.shape[1] == 5
        assert set(np.unique(sweep.points[:, 4])) <= set(range(32))
        assert 0 <= sweep.points[:, 3].min() and sweep.points[:, 3].max() <= 255
    assert total > 100


def test_annotations_are_plausible(reader):
    scene = reader.scene_tokens()[0]
    cats, vis, hit = set(), set(), []
    for st in reader.sample_tokens(scene):
        boxes = reader.boxes(st)
        for b in boxes:
            cats.add(b.category)
            vis.add(b.visibility)
            hit.append(b.num_lidar_pts > 0)  # the others are seen by a camera only
        by_tok = {b.instance_token: b for b in boxes}
        poses = reader.human_poses(st)
        assert poses, "pedestrians near the ego carry keypoints"
        for p in poses:
            b = by_tok[p.instance_token]
            assert b.category.startswith("human.pedestrian")
            assert np.all(b.contains(p.keypoints))
            bones = np.array([np.linalg.norm(p.keypoints[i] - p.keypoints[j]) for i, j in COCO_SKELETON])
            assert np.all(bones > 0.02) and np.all(bones < 0.7)
    assert "vehicle.car" in cats and any(c.startswith("human.pedestrian") for c in cats)
    assert len(vis) >= 2 and np.mean(hit) > 0.6  # (the test LiDAR has 1/3 of the rays)


def test_fault_table_matches_images(world_root, reader):
    rows = reader.extra_table("synthtown_fault")
    kinds = {r["kind"] for r in rows}
    assert {"motion_blur", "dropped_frame"} <= kinds
    dropped = {r["sample_data_token"] for r in rows if r["kind"] == "dropped_frame"}
    all_sd = {sd["token"]: sd for sd in reader.nusc.sample_data}
    for r in rows:
        assert r["sample_data_token"] in all_sd and all_sd[r["sample_data_token"]]["channel"] == r["channel"]
        assert 0.3 <= r["severity"] <= 1.0
    # a dropped frame is an all-black image; no other image is black
    for tok, sd in all_sd.items():
        if sd["sensor_modality"] != "camera":
            continue
        img = reader.camera_frame(tok).image
        assert (img.max() <= 8) == (tok in dropped), sd["filename"]
    # clip-level faults cover every frame of their channel
    for r in rows:
        if r["per"] == "clip":
            frames = {x["sample_data_token"] for x in rows if x["kind"] == r["kind"] and x["channel"] == r["channel"]}
            assert len(frames) == 18


def test_buffers_agree_with_images(world_root, reader):
    scene = reader.scene_tokens()[0]
    sample = reader.nusc.get("sample", reader.sample_tokens(scene)[0])
    frame = reader.camera_frame(sample["data"]["CAM_FRONT"])
    buf = np.load(world_root / buffer_path(reader.scene_name(scene), "CAM_FRONT", frame.timestamp))
    assert buf["depth"].shape == frame.image.shape[:2] == buf["instance"].shape
    sky = buf["depth"] == 0
    assert sky[0].mean() > 0.3 and not sky[-1].any()  # sky at the top, ground at the bottom
    assert (buf["material"][sky] == 0).all()
    # ground depth along the bottom row grows toward the horizon
    col = buf["depth"][:, frame.image.shape[1] // 2].astype(float)
    ground = col[-20:]
    assert np.all(np.diff(ground) <= 5)  # bottom rows are nearest (centimetres)


def test_same_seed_same_files_other_seed_other_scene(world_root, tmp_path):
    again = tmp_path / "again"
    generate(small_config(), again, progress=False)
    assert _tree_digest(again) == _tree_digest(world_root)
    a, b = build_scene(small_config(3), 0), build_scene(small_config(4), 0)
    assert not np.allclose(a.town.network.nodes, b.town.network.nodes)
    assert a.town.static_mesh.num_faces != b.town.static_mesh.num_faces


def test_cli_writes_dataset(tmp_path, capsys):
    from genesis_drive.world import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli"
    args = parser.parse_args(["world", "--out", str(out), "--scenes", "1", "--seconds", "0.5", "--image-size", "96x54", "--quiet", "--seed", "7"])
    assert args.func(args) == 0
    assert "wrote 1 scenes" in capsys.readouterr().out
    r = NuScenesReader(out)
    assert len(r.scene_tokens()) == 1 and r.nusc.get("sample_data", r.nusc.sample[0]["data"]["CAM_FRONT"])["width"] == 96
    with pytest.raises(SystemExit):
        parser.parse_args(["world", "--out", str(out), "--image-size", "wide"])
