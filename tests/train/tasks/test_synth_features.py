"""synth_features task: annotation targets by hand, random frame orders, the loss falls on one batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genesis_drive.layout.camera import render_layout
from genesis_drive.layout.colors import CLASS_COLORS, FACE_SHADES, MAP_COLORS, class_color
from genesis_drive.layout.frames import clip_cameras, frame_map
from genesis_drive.models.blocks import to_model_input
from genesis_drive.models.evaluators.synth_features import OBJECT_GROUPS, SEG_CLASSES
from genesis_drive.train.tasks.synth_features import (
    SYNTH_FEATURE_PRESETS,
    SYNTH_FEATURES_TASK,
    CachedSamples,
    class_fractions,
    ego_motion,
    layout_semantics,
    clip_orders,
    scene_conditions,
    visible_object_counts,
)


@pytest.fixture(scope="module")
def clip(root):
    return SYNTH_FEATURES_TASK.build(SYNTH_FEATURE_PRESETS["tiny"](), root).clip_index().load(0)


def test_layout_colours_decode_to_classes():
    px = [MAP_COLORS["drivable_area"], MAP_COLORS["lane_divider"], MAP_COLORS["road_edge"], class_color("truck", FACE_SHADES["back"]),
          CLASS_COLORS["pedestrian"], class_color("bicycle", FACE_SHADES["top"]), CLASS_COLORS["barrier"], (0, 0, 0), (1, 2, 3)]  # fmt: skip
    labels = layout_semantics(np.array([px], dtype=np.uint8))[0]
    names = ["drivable_area", "lane_line", "lane_line", "vehicle", "pedestrian", "cycle", "obstacle", "background"]
    assert labels.tolist() == [SEG_CLASSES.index(n) for n in names] + [-1]
    # a lossy copy: every colour moved by a few levels reads as its nearest exact colour
    noisy = np.clip(np.array([px], dtype=np.int64) + np.array([3, -4, 2]), 0, 255).astype(np.uint8)
    assert layout_semantics(noisy)[0, 0] == -1
    assert layout_semantics(noisy, nearest=True)[0].tolist() == [SEG_CLASSES.index(n) for n in names] + [SEG_CLASSES.index("background")]


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


def test_clip_orders():
    torch.manual_seed(0)
    order, kind = clip_orders(300, 4, (1.0, 1.0, 1.0), torch.device("cpu"))
    ident = torch.arange(4).expand(300, 4)
    counts = torch.bincount(kind, minlength=3)
    assert (counts > 70).all() and counts.sum() == 300  # balanced: about 100 each
    assert (order[kind == 0] == ident[kind == 0]).all()
    assert (order[kind == 1] == ident[kind == 1].flip(1)).all()
    shuffled = order[kind == 2]
    assert not (shuffled == ident[: len(shuffled)]).all(dim=1).any()
    assert not (shuffled == ident[: len(shuffled)].flip(1)).all(dim=1).any()  # never the reversal
    assert len({tuple(r) for r in shuffled.tolist()}) == 22  # all 4! - 2 other permutations appear
    assert (order.sort(dim=1).values == ident).all()  # permutations
    two, kind2 = clip_orders(50, 2, (0.0, 1.0, 5.0), torch.device("cpu"))
    assert (kind2 == 1).all() and (two == torch.tensor([1, 0])).all()  # no "shuffled" order of 2 frames
    only_in_order, k = clip_orders(5, 3, (1.0, 0.0, 0.0), torch.device("cpu"))
    assert (k == 0).all() and (only_in_order == torch.arange(3)).all()
    with pytest.raises(ValueError, match="at least 2 frames"):
        clip_orders(3, 1, (1.0, 1.0, 1.0), torch.device("cpu"))
    with pytest.raises(ValueError, match="nothing to draw"):
        clip_orders(3, 2, (0.0, 0.0, 1.0), torch.device("cpu"))


def test_cached_samples_load_each_item_once():
    calls = []

    class Counting(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            calls.append(i)
            return {"x": torch.tensor(i)}

    ds = CachedSamples(Counting())
    assert len(ds) == 3 and [int(ds[i]["x"]) for i in (2, 0, 2, 2, 0)] == [2, 0, 2, 2, 0]
    assert calls == [2, 0]


def test_order_weights_and_clip_length_are_checked():
    from dataclasses import replace

    from genesis_drive.errors import ConfigError
    from genesis_drive.train.tasks.clip_task import ClipCut

    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    with pytest.raises(ConfigError, match="order_weights"):
        replace(cfg, order_weights=(1.0, -1.0, 1.0))
    with pytest.raises(ConfigError, match="num_frames must be >= 2"):
        replace(cfg, clips=ClipCut(num_frames=1, rate="camera"))


def _overfit(task, model, batch, seed: int, steps: int = 30) -> dict[str, float]:
    """``steps`` Adam steps on one batch, the frame orders redrawn with ``seed`` at every call (so
    the batch is fixed); the loss terms after them."""
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(steps):
        torch.manual_seed(seed)
        out = task.loss(model, batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    torch.manual_seed(seed)
    return {k: float(v.detach()) for k, v in task.loss(model, batch).items()}


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
    torch.manual_seed(1)  # the same frame orders at every call: one fixed batch to overfit
    first = {k: float(v.detach()) for k, v in task.loss(model, batch).items()}
    last = _overfit(task, model, batch, seed=1)
    assert last["loss"] < 0.6 * first["loss"]
    for term in ("loss_channel", "loss_layout", "loss_presence", "loss_order", "loss_motion"):
        assert last[term] < first[term]
    assert first["loss_conditions"] == 0.0  # the hand-made scene names no time or weather


def test_clip_order_loss_is_the_views_vote(root):
    """loss.order_clip > 0: every view of a clip enters in the same order, and the term is the
    cross-entropy of the sum over views of the per-view log-probabilities (by hand here)."""
    from dataclasses import replace

    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    cfg = replace(cfg, loss=replace(cfg.loss, order_clip=1.0))
    task = SYNTH_FEATURES_TASK.build(cfg, root)
    ds = task.train_dataset()
    batch = task.collate([ds[0], ds[1]])
    net = task.build_model()
    seen = {}

    class Recording(torch.nn.Module):  # the real network, with the orders it is given recorded
        def forward(self, x, order, multiview_order=None):
            seen["order"] = order
            out = net(x, order, multiview_order=multiview_order)
            seen["logits"] = out["order"].detach()
            return out

    torch.manual_seed(3)
    out = task.loss(Recording(), batch)
    order = seen["order"].reshape(2, 6, -1)
    assert (order == order[:, :1]).all()  # one order per multi-view clip
    torch.manual_seed(3)
    drawn, kind = clip_orders(2, order.shape[-1], cfg.order_weights, torch.device("cpu"))  # the same draw
    assert (order[:, 0] == drawn).all()
    votes = seen["logits"].log_softmax(-1).reshape(2, 6, 3).sum(1)
    expected = -votes.log_softmax(-1)[torch.arange(2), kind].mean()
    torch.testing.assert_close(out["loss_order_clip"], expected)
    default = SYNTH_FEATURES_TASK.build(SYNTH_FEATURE_PRESETS["tiny"](), root)
    assert "loss_order_clip" not in default.loss(net, batch)  # off by default: the earlier recipe


def test_multiview_order_head_term(root):
    """model.joint_order > 0: the multi-view head gets a second order per multi-view clip, shared
    by its views, and ``order_joint`` is the cross-entropy of its logits (by hand here); the
    per-view orders stay independent; the term falls when one batch is overfitted."""
    from dataclasses import replace

    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    cfg = replace(cfg, model=replace(cfg.model, joint_order=8))
    task = SYNTH_FEATURES_TASK.build(cfg, root)
    ds = task.train_dataset()
    batch = task.collate([ds[0], ds[1]])
    torch.manual_seed(0)
    net = task.build_model()
    torch.manual_seed(3)
    out = task.loss(net, batch)
    torch.manual_seed(3)
    t = batch["images"].shape[2]
    clip_orders(12, t, cfg.order_weights, torch.device("cpu"))  # the same draws: per view, then per multi-view clip
    order, kind = clip_orders(2, t, cfg.order_weights, torch.device("cpu"))
    x = to_model_input(batch["images"])[torch.arange(2)[:, None], :, order].transpose(1, 2)  # b v t c h w, reordered
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(net.multiview_order_logits(x), kind)
    torch.testing.assert_close(out["loss_order_joint"], expected, atol=1e-5, rtol=1e-4)
    assert _overfit(task, net, batch, seed=3)["loss_order_joint"] < 0.5 * float(out["loss_order_joint"])
