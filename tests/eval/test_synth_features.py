"""FD_synth network: annotation targets, shapes, training signal, saved extractors, Fréchet distance."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.data.clips import ClipIndex
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.errors import DataError
from genesis_drive.eval import learned_cli
from genesis_drive.eval.fd_metric import FrechetDistance
from genesis_drive.eval.synth_features import (
    OBJECT_GROUPS,
    SEG_CLASSES,
    SYNTH_FEATURE_PRESETS,
    SYNTH_FEATURES_TASK,
    SynthFeatureNet,
    _random_orders,
    class_fractions,
    ego_motion,
    layout_semantics,
    load_synth_extractor,
    scene_conditions,
    visible_object_counts,
)
from genesis_drive.layout.camera import render_layout
from genesis_drive.layout.colors import (
    CLASS_COLORS,
    FACE_SHADES,
    MAP_COLORS,
    class_color,
)
from genesis_drive.layout.frames import clip_cameras, frame_map
from genesis_drive.train.checkpoint import save_checkpoint
from genesis_drive.train.loop import train

from ..data.handmade import write_handmade




@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


@pytest.fixture(scope="module")
def clip(root):
    return ClipIndex(NuScenesReader(root), SYNTH_FEATURE_PRESETS["tiny"]().clip_spec()).load(0)


def test_layout_colours_decode_to_classes():
    px = [MAP_COLORS["drivable_area"], MAP_COLORS["lane_divider"], MAP_COLORS["road_edge"], class_color("truck", FACE_SHADES["back"]),
          CLASS_COLORS["pedestrian"], class_color("bicycle", FACE_SHADES["top"]), CLASS_COLORS["barrier"], (0, 0, 0), (1, 2, 3)]  # fmt: skip
    labels = layout_semantics(np.array([px], dtype=np.uint8))[0]
    names = ["drivable_area", "lane_line", "lane_line", "vehicle", "pedestrian", "cycle", "obstacle", "background"]
    assert labels.tolist() == [SEG_CLASSES.index(n) for n in names] + [-1]


def test_rendered_layouts_decode_completely(clip):
    layers = frame_map(clip, 0)
    cams = clip_cameras(clip)
    front = layout_semantics(render_layout(cams[0], clip.boxes[0], clip.poses[0], layers))
    assert (front >= 0).all()  # every pixel of a layout image is an exact palette colour
    assert (front == SEG_CLASSES.index("vehicle")).any() and (front == SEG_CLASSES.index("drivable_area")).any()


def test_class_fractions_by_hand():
    labels = np.array([[0, 0, 1, 1], [0, -1, 1, 2], [3, 3, -1, -1], [3, 3, -1, -1]])
    f = class_fractions(labels, 2, num_classes=4)
    assert f.shape == (4, 2, 2)
    np.testing.assert_allclose(f[:, 0, 0], [1, 0, 0, 0])
    np.testing.assert_allclose(f[:, 0, 1], [0, 0.75, 0.25, 0])
    np.testing.assert_allclose(f[:, 1, 0], [0, 0, 0, 1])
    np.testing.assert_allclose(f[:, 1, 1], [0, 0, 0, 0])  # no known pixel: ignored by the soft cross-entropy


def test_scene_conditions_from_descriptions():
    assert scene_conditions("SynthTown, night, rain; dense traffic") == (2, 1)
    assert scene_conditions("Dusk drive in fog") == (1, 2)
    assert scene_conditions("Sunday afternoon, clear skies") == (-1, 0)  # "Sunday" is not "day"
    assert scene_conditions("hand-made test scene") == (-1, -1)


def test_annotation_targets_of_the_handmade_clip(clip):
    veh, ped = list(OBJECT_GROUPS).index("vehicle"), list(OBJECT_GROUPS).index("pedestrian")
    cams, boxes = clip_cameras(clip), clip.boxes[0]
    front = visible_object_counts(cams[0], boxes, 60.0)
    assert front[veh] == 1 and front[ped] == 0  # car at ego (10, 3.5) ahead
    assert visible_object_counts(cams[1], boxes, 60.0)[ped] == 1  # pedestrian at ego (5, -4): front-right
    assert visible_object_counts(cams[3], boxes, 60.0).sum() == 0  # nothing behind
    assert visible_object_counts(cams[0], boxes, 5.0).sum() == 0  # the car is ~8.5 m deep: beyond max_range
    speed, yaw_rate = ego_motion(clip)
    assert speed == pytest.approx(2.0, rel=1e-6) and yaw_rate == pytest.approx(0.0, abs=1e-9)


def test_random_orders():
    torch.manual_seed(0)
    order, flag = _random_orders(64, 4, 0.5, torch.device("cpu"))
    ident = torch.arange(4).expand(64, 4)
    assert 10 < int(flag.sum()) < 54
    assert (order[~flag] == ident[~flag]).all()
    assert not (order[flag] == ident[flag]).all(dim=1).any()  # shuffled clips are never in order
    assert (order.sort(dim=1).values == ident).all()  # permutations
    order1, flag1 = _random_orders(3, 1, 1.0, torch.device("cpu"))
    assert not flag1.any() and (order1 == 0).all()


def test_network_shapes_and_temporal_order_sensitivity():
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]().model
    net = SynthFeatureNet(cfg).eval()
    x = torch.rand(2, 3, 3, 36, 64) * 2 - 1
    with torch.no_grad():
        out = net(x)
        assert out["channel"].shape == (2, 3, 6) and out["layout"].shape == (2, 3, len(SEG_CLASSES), 9, 16)
        assert out["clip_features"].shape == (2, 64) and out["frame_features"].shape == (2, 3, 64)
        torch.testing.assert_close(net.embed_frames(x[:, 0]), out["frame_features"][:, 0])
        torch.testing.assert_close(net.embed_clips(x), out["clip_features"])
        rev = torch.tensor([[2, 1, 0], [2, 1, 0]])
        shuffled = net(x, rev)
        torch.testing.assert_close(shuffled["frame_features"], out["frame_features"])  # frame heads see the input order
        torch.testing.assert_close(shuffled["clip_features"], net.embed_clips(x.flip(1)))
        assert not torch.allclose(shuffled["clip_features"], out["clip_features"])
    with pytest.raises(ValueError, match="expects images"):
        net.embed_frames(torch.zeros(1, 3, 32, 32))


def test_task_loss_falls_on_one_batch(root):
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    task = SYNTH_FEATURES_TASK.build(cfg, root)
    ds = task.train_dataset()
    item = ds[0]
    assert item["images"].shape == (6, 4, 3, 36, 64) and item["layout"].shape == (6, 4, len(SEG_CLASSES), 9, 16)
    assert item["channel"].tolist() == list(range(6)) and int(item["time"]) == -1
    torch.testing.assert_close(item["layout"].sum(2)[item["layout"].sum(2) > 0], torch.ones(int((item["layout"].sum(2) > 0).sum())))
    batch = task.collate([ds[0], ds[1]])
    model = task.build_model()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    first = {k: float(v.detach()) for k, v in task.loss(model, batch).items()}
    for _ in range(15):
        out = task.loss(model, batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    last = {k: float(v.detach()) for k, v in task.loss(model, batch).items()}
    assert last["loss"] < 0.6 * first["loss"]
    for term in ("loss_channel", "loss_layout", "loss_presence"):
        assert last[term] < first[term]
    assert first["loss_conditions"] == 0.0  # the hand-made scene names no time or weather


def test_saved_extractor_matches_the_network(tmp_path):
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    net = SynthFeatureNet(cfg.model).eval()
    save_checkpoint(tmp_path / "run", 7, model=net.state_dict(), optimizer={}, ema=None,
                    state={"task": "synth_features", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    ext = load_synth_extractor(tmp_path / "run", "image")
    vid = load_synth_extractor(tmp_path / "run", "video")
    assert ext.num_features == 64 and vid.num_features == 64 and (vid.num_frames, vid.frame_stride) == (4, 2)
    assert ext.protocol()["weights_sha256"] == vid.protocol()["weights_sha256"] and ext.protocol()["step"] == 7
    imgs = torch.randint(0, 256, (3, 3, 36, 64), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(ext(imgs), net.embed_frames(imgs.float() / 127.5 - 1))
        torch.testing.assert_close(vid(imgs[None]), net.embed_clips(imgs[None].float() / 127.5 - 1))
        assert ext(torch.rand(2, 3, 90, 160)).shape == (2, 64)  # any input size is resized to the network's
    with pytest.raises(DataError, match="no checkpoint"):
        load_synth_extractor(tmp_path)
    other = replace(cfg, model=replace(cfg.model, num_features=32))
    save_checkpoint(tmp_path / "bad", 1, model=net.state_dict(), optimizer={}, ema=None,
                    state={"task": "synth_features", "config": config_to_dict(other)}, keep_last=1)  # fmt: skip
    with pytest.raises(DataError, match="weights do not match"):
        load_synth_extractor(tmp_path / "bad")


def test_trained_run_gives_a_working_fd_synth(root, tmp_path):
    """Two optimizer steps through the real training loop, then FD_synth from the run directory."""
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    cfg = replace(cfg, train=replace(cfg.train, steps=2, batch_size=2, ckpt_every=2, log_every=1, device="cpu", precision="fp32"))
    task = SYNTH_FEATURES_TASK.build(cfg, root)
    result = train(task, cfg, tmp_path / "run", task_name="synth_features")
    assert result.step == 2
    ext = load_synth_extractor(tmp_path / "run", "image")
    clip_imgs = torch.from_numpy(ClipIndex(NuScenesReader(root), cfg.clip_spec()).load(0).images)  # t v h w c
    frames = clip_imgs.reshape(-1, *clip_imgs.shape[2:]).permute(0, 3, 1, 2)  # 24 real frames
    same = FrechetDistance(ext, name="FD_synth")
    same.update(frames[::2])
    same.update(frames[1::2], real=True)
    other = FrechetDistance(ext, name="FD_synth")
    other.update(255 - frames[::2])  # colour-inverted frames
    other.update(frames[1::2], real=True)
    assert 0 <= float(same.compute()) < float(other.compute())


def test_fd_synth_cli_same_clips_score_zero(root, tmp_path):
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    net = SynthFeatureNet(cfg.model)
    save_checkpoint(tmp_path / "run", 1, model=net.state_dict(), optimizer={}, ema=None,
                    state={"task": "synth_features", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    parser = argparse.ArgumentParser()
    learned_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["fd-synth", "--gen", str(root), "--ref", str(root), "--model", str(tmp_path / "run"),
                              "--out", str(out), "--bootstrap", "5"])  # fmt: skip
    assert args.func(args) == 0
    report = json.loads((out / "fd_synth.json").read_text())
    rows = {r["metric"]: r for r in report["rows"]}
    assert set(rows) == {"FD_synth", "FD_synth-video"}
    assert rows["FD_synth"]["counts"]["gen frames"] == 2 * 6 * 4  # 2 clips (8-frame windows of 19) x 6 views x 4 frames
    assert rows["FD_synth-video"]["counts"]["gen videos"] == 2 * 6
    for r in rows.values():
        assert abs(r["value"]) < 1e-6  # the same clips on both sides
    ident = report["meta"]["feature_networks"]["FD_synth"]
    assert ident["network"] == "synth_features/frame" and len(ident["weights_sha256"]) == 64
