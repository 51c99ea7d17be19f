"""FD_synth metric: saved extractors match the network, a trained run gives a working FD, the CLI."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_drive.config import config_to_dict
from genesis_drive.errors import DataError
from genesis_drive.eval import learned_cli
from genesis_drive.eval.fd_metric import FrechetDistance
from genesis_drive.eval.synth_features import (
    ReorderedClips,
    SynthClipExtractor,
    control_order,
    load_synth_extractor,
    order_predictions,
    temporal_control_rows,
)
from genesis_drive.eval.video import VideoProtocol
from genesis_drive.eval.video_io import open_clip_source
from genesis_drive.models.evaluators.synth_features import SynthFeatureNet
from genesis_drive.train.checkpoint import save_checkpoint
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.synth_features import SYNTH_FEATURE_PRESETS, SYNTH_FEATURES_TASK

from ..data.handmade import write_handmade


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


def test_saved_extractor_matches_the_network(tmp_path):
    torch.manual_seed(0)
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    net = SynthFeatureNet(cfg.model).eval()
    save_checkpoint(tmp_path / "run", 7, model=net.state_dict(), optimizer={}, ema=None,
                    state={"task": "synth_features", "config": config_to_dict(cfg)}, keep_last=1)  # fmt: skip
    ext = load_synth_extractor(tmp_path / "run", "image")
    vid = load_synth_extractor(tmp_path / "run", "video")
    assert ext.num_features == 64 and vid.num_features == 64 and (vid.num_frames, vid.frame_stride) == (4, 4)
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
    more = replace(cfg, train=replace(cfg.train, steps=4, ckpt_every=4))
    assert train(SYNTH_FEATURES_TASK.build(more, root), more, tmp_path / "run", task_name="synth_features", resume=True).step == 4
    assert load_synth_extractor(tmp_path / "run", "image").protocol()["step"] == 4
    ext = load_synth_extractor(tmp_path / "run", "image")
    clip_imgs = torch.from_numpy(task.clip_index().load(0).images)  # t v h w c
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
    cfg = replace(cfg, clips=replace(cfg.clips, frame_stride=2))  # 4 frames 2 apart: 7-frame span, 8-frame windows
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
    rev, shuf = "FD_synth-video (control: ref clips reversed vs ref)", "FD_synth-video (control: ref clips shuffled vs ref)"
    acc = "order accuracy (control: ref clips in_order / reversed / shuffled)"
    acc_mv = "order accuracy, multi-view clips (control: ref clips in_order / reversed / shuffled)"
    assert set(rows) == {"FD_synth", "FD_synth-video", rev, shuf, acc, acc_mv}  # one scene: no floor
    assert rows[rev]["value"] > 1e-5 and rows[shuf]["value"] > 1e-5  # the same frames in another order move the features
    assert rows[rev]["counts"] == {"gen videos": 12, "ref videos": 12} and rows[acc]["counts"] == {"ref videos": 36}
    assert rows[acc_mv]["counts"] == {"ref clips": 6}
    assert 0 <= rows[acc]["value"] <= 1 and set(report["meta"]["temporal_controls"]["order_accuracy"]) == {"in_order", "reversed", "shuffled"}
    md = (out / "fd_synth.md").read_text()
    assert rev in md and acc in md
    assert rows["FD_synth"]["counts"]["gen frames"] == 2 * 6 * 4  # 2 clips (8-frame windows of 19) x 6 views x 4 frames
    assert rows["FD_synth-video"]["counts"]["gen videos"] == 2 * 6
    for name in ("FD_synth", "FD_synth-video"):
        assert abs(rows[name]["value"]) < 1e-6  # the same clips on both sides
    ident = report["meta"]["feature_networks"]["FD_synth"]
    assert ident["network"] == "synth_features/frame" and len(ident["weights_sha256"]) == 64


class _Numbered:
    """A clip source of one clip whose frame t is filled with the value t (2 views, 9 frames)."""

    views = ("CAM_FRONT", "CAM_BACK")

    def __iter__(self):
        yield "s:0", np.broadcast_to(np.arange(9, dtype=np.uint8)[None, :, None, None, None], (2, 9, 4, 6, 3)).copy()

    def __len__(self):
        return 1

    def describe(self):
        return {"kind": "numbered", "clips": 1, "clip_ids": ["s:0"]}


def test_control_orders_and_reordered_clips():
    assert control_order("reversed", 4, 0, 0).tolist() == [3, 2, 1, 0]
    seen = {tuple(control_order("shuffled", 4, i, 0)) for i in range(40)}
    assert not seen & {(0, 1, 2, 3), (3, 2, 1, 0)} and len(seen) > 5
    assert control_order("shuffled", 4, 7, 3).tolist() == control_order("shuffled", 4, 7, 3).tolist()  # reproducible
    with pytest.raises(ValueError, match=">= 3 frames"):
        control_order("shuffled", 2, 0, 0)
    protocol = VideoProtocol(views=_Numbered.views, num_frames=4, frame_stride=2)
    (cid, frames), = list(ReorderedClips(_Numbered(), protocol, "reversed"))
    assert cid == "s:0" and frames[:, :, 0, 0, 0].tolist() == [[6, 1, 4, 3, 2, 5, 0, 7, 8]] * 2  # selected frames 0 2 4 6 reversed
    (_, frames), = list(ReorderedClips(_Numbered(), protocol, "shuffled", seed=5))
    perm = control_order("shuffled", 4, 0, 5)
    assert frames[0, 0:7:2, 0, 0, 0].tolist() == (2 * perm).tolist() and frames[0, 1::2, 0, 0, 0].tolist() == [1, 3, 5, 7]
    assert ReorderedClips(_Numbered(), protocol, "shuffled").describe()["order"] == "shuffled"


def _rigged_extractor(cfg) -> SynthClipExtractor:
    """A random network whose order head always answers "in_order" (zero weights, bias on class 0)."""
    torch.manual_seed(0)
    net = SynthFeatureNet(cfg.model).eval()
    with torch.no_grad():
        net.video_heads["order"].weight.zero_()
        net.video_heads["order"].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    return SynthClipExtractor.from_run(net, cfg).eval()


def test_temporal_controls_have_the_known_answers(root):
    cfg = SYNTH_FEATURE_PRESETS["tiny"]()
    ext = _rigged_extractor(cfg)
    views = tuple(cfg.model.views)
    protocol = VideoProtocol(views=views, num_frames=4, frame_stride=2, ref_window_stride=8)
    ref = open_clip_source(root, views, protocol.span, 8, 1, max_frames=protocol.span)
    pred, clip_pred = order_predictions(ext, ref, protocol)
    assert pred.shape == (2, 6, 3) and (pred == 0).all() and clip_pred.shape == (2, 3) and (clip_pred == 0).all()
    rows, meta = temporal_control_rows(lambda: FrechetDistance(ext, name="FD_synth-video"), ext, protocol, ref, cache_dir=None,
                                       batch_size=4, num_resamples=0, level=0.9, seed=0, floor=0.5)  # fmt: skip
    by_name = {r.metric: r for r in rows}
    acc = by_name["order accuracy (control: ref clips in_order / reversed / shuffled)"]
    assert acc.value == pytest.approx(1 / 3) and acc.ci is None  # right on every in-order clip, wrong on the others
    assert meta["order_accuracy"] == {"in_order": 1.0, "reversed": 0.0, "shuffled": 0.0}
    assert meta["order_accuracy_multiview"] == meta["order_accuracy"]
    assert by_name["order accuracy, multi-view clips (control: ref clips in_order / reversed / shuffled)"].value == pytest.approx(1 / 3)
    # the reversed control by hand: the same clips, frames flipped, through the extractor
    by_hand = FrechetDistance(ext, name="FD_synth-video")
    for _, frames in ref:
        x = torch.from_numpy(np.ascontiguousarray(frames[:, 0:7:2])).permute(0, 1, 4, 2, 3)
        by_hand.update(x.flip(1))
        by_hand.update(x, real=True)
    rev = by_name["FD_synth-video (control: ref clips reversed vs ref)"]
    assert rev.value == pytest.approx(float(by_hand.compute()), rel=1e-4) and rev.value > 1e-5
    assert f"{rev.value / 0.5:.1f}x the floor" in rev.note


class _BrightnessOrder:
    """A stand-in extractor whose order head reads a view clip's brightness change m (last frame -
    first frame, in [0, 1] units): logits (5 m, -5 m, -10), so "in order" when it brightens."""

    has_multiview_head = False

    def order_logits(self, x: torch.Tensor) -> torch.Tensor:
        m = (x[:, -1].float().mean(dim=(1, 2, 3)) - x[:, 0].float().mean(dim=(1, 2, 3))) / 255
        return torch.stack([5 * m, -5 * m, torch.full_like(m, -10.0)], dim=1)


class _BackViewJudge(_BrightnessOrder):
    """The same per-view head, with a multi-view order head that answers what view 3 (CAM_BACK)
    alone answers (it darkens as recorded: "reversed")."""

    has_multiview_head = True
    views = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")

    def multiview_order_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.order_logits(x[3:4])[0]


class _OneSureView:
    """One clip of 6 views, 4 frames: view 0 brightens by 1.0 over the clip (sure: in order), views
    1-5 darken by 0.1 (each weakly wrong)."""

    views = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")

    def __iter__(self):
        t = np.arange(4)[:, None]
        level = np.where(np.arange(6)[None] == 0, 255 * t / 3, 200 - 25.5 * t / 3).T  # (v, t)
        yield "s:0", np.broadcast_to(level.round().astype(np.uint8)[:, :, None, None, None], (6, 4, 4, 6, 3)).copy()


def test_multiview_order_sums_the_views_log_probabilities():
    """Per view, 5 of 6 views answer wrongly; summed over the views the one sure view wins:
    log p(in order) = -0.00005 - 5 x 1.313 = -6.6 against log p(reversed) = -10 - 5 x 0.313 = -11.6."""
    protocol = VideoProtocol(views=_OneSureView.views, num_frames=4, frame_stride=1, ref_window_stride=4)
    per_view, per_clip = order_predictions(_BrightnessOrder(), _OneSureView(), protocol)
    assert per_view[0, :, 0].tolist() == [0, 1, 1, 1, 1, 1] and per_view[0, :, 1].tolist() == [1, 0, 0, 0, 0, 0]
    assert per_clip[0, :2].tolist() == [0, 1]  # right both ways on the multi-view clip


def test_multiview_order_head_replaces_the_vote():
    """With a multi-view order head the clip's answer is that head's, not the sum of the views'
    log-probabilities (which answers [0, 1] on this clip, the test above); the per-view answers stay."""
    protocol = VideoProtocol(views=_OneSureView.views, num_frames=4, frame_stride=1, ref_window_stride=4)
    per_view, per_clip = order_predictions(_BackViewJudge(), _OneSureView(), protocol)
    assert per_view[0, :, 0].tolist() == [0, 1, 1, 1, 1, 1]
    assert per_clip[0, :2].tolist() == [1, 0]  # view 3's answers, where the vote gives [0, 1]
    shuffled = VideoProtocol(views=_OneSureView.views[::-1], num_frames=4, frame_stride=1, ref_window_stride=4)
    with pytest.raises(DataError, match="reads the views"):
        order_predictions(_BackViewJudge(), _OneSureView(), shuffled)
