"""Video evaluation pipeline: clip sources, frame selection, reference cache, CLI end to end."""

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from genesis_drive.errors import DataError
from genesis_drive.eval import cli
from genesis_drive.eval.extractors import ImageFeatureExtractor, VideoFeatureExtractor
from genesis_drive.eval.fd_metric import FrechetDistance
from genesis_drive.eval.i3d import InceptionI3D
from genesis_drive.eval.inception import FIDInceptionV3
from genesis_drive.eval.video import VideoEvaluator, VideoProtocol
from genesis_drive.eval.video_io import (
    DirectoryClipSource,
    NuScenesClipSource,
    open_clip_source,
    read_view,
)
from genesis_drive.eval.weights import WeightsError

from .fixtures import VIEWS, random_clips, write_clip_dir, write_nuscenes_root


class TinyImageNet(nn.Module):
    """(b, 3, h, w) in [-1, 1] -> (b, 6): channel means and standard deviations."""

    num_features = 6

    def forward(self, x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


class TinyVideoNet(nn.Module):
    """(b, 3, t, h, w) -> (b, 4): colour means and the mean absolute temporal difference."""

    num_features = 4

    def __init__(self):
        super().__init__()
        self.seen_t = []

    def forward(self, x):
        self.seen_t.append(x.shape[2])
        return torch.cat([x.mean((2, 3, 4)), (x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2, 3, 4))[:, None]], 1)


def metrics(video_net=None):
    fid = FrechetDistance(ImageFeatureExtractor(TinyImageNet(), size=16), name="FID_multi", identity={"net": "tiny-image"})
    fvd = FrechetDistance(VideoFeatureExtractor(video_net or TinyVideoNet(), size=16), name="FVD_multi", identity={"net": "tiny-video"})
    return fid, fvd


PROTO = VideoProtocol(views=VIEWS, num_frames=4, ref_window_stride=2)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("video")
    ref = write_clip_dir(base / "ref", random_clips(5, seed=0))
    gen_same = write_clip_dir(base / "gen_same", random_clips(5, seed=0))
    gen_other = write_clip_dir(base / "gen_other", random_clips(5, seed=1, brightness=40))
    return ref, gen_same, gen_other


def run(proto, gen, ref, cache=None, video_net=None, resamples=20):
    fid, fvd = metrics(video_net)
    ev = VideoEvaluator(proto, [fid], [fvd], batch_size=3)
    src = lambda p: open_clip_source(p, proto.views, proto.num_frames, proto.ref_window_stride, max_frames=proto.span)
    rows, meta = ev.evaluate(src(gen), src(ref), cache, num_resamples=resamples)
    return {r.metric: r for r in rows}, meta


def test_identical_sets_score_zero_and_brighter_sets_do_not(dirs):
    ref, same, other = dirs
    rows, _ = run(PROTO, same, ref)
    assert rows["FID_multi"].value == pytest.approx(0.0, abs=1e-9)
    assert rows["FVD_multi"].value == pytest.approx(0.0, abs=1e-9)
    rows2, meta = run(PROTO, other, ref)
    assert rows2["FID_multi"].value > 0.01 and rows2["FVD_multi"].value > 0.01
    ci = rows2["FID_multi"].ci
    assert ci.low <= rows2["FID_multi"].value <= ci.high and ci.method == "normal"
    # every view of every clip is a sample: FID frames = clips x views x frames, FVD videos = clips x views
    assert rows2["FID_multi"].counts == {"gen frames": 5 * 2 * 4, "ref frames": 5 * 2 * 4}
    assert rows2["FVD_multi"].counts == {"gen videos": 5 * 2, "ref videos": 5 * 2}
    assert meta["protocol"]["num_frames"] == 4 and meta["generated"]["clips"] == 5


def test_conditioning_frames_are_excluded(dirs):
    ref, _, other = dirs
    net = TinyVideoNet()
    proto = VideoProtocol(views=VIEWS, num_frames=4, cond_frames=1, fvd_exclude_cond=True)
    rows, _ = run(proto, other, ref, video_net=net, resamples=0)
    assert rows["FID_multi"].counts["gen frames"] == 5 * 2 * 3
    assert set(net.seen_t) == {3}
    assert rows["FID_multi"].ci is None
    assert VideoProtocol(num_frames=16, cond_frames=1).fid_frames() == list(range(1, 16))
    assert VideoProtocol(num_frames=16, cond_frames=1).fvd_frames() == list(range(16))


def test_reference_cache_is_reused_and_keyed(dirs, tmp_path):
    ref, _, other = dirs
    first, meta1 = run(PROTO, other, ref, cache=tmp_path)
    assert meta1["reference_stats"] == {"FID_multi": "computed", "FVD_multi": "computed"}
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    second, meta2 = run(PROTO, other, ref, cache=tmp_path)
    assert meta2["reference_stats"] == {"FID_multi": "cache", "FVD_multi": "cache"}
    assert second["FID_multi"].value == pytest.approx(first["FID_multi"].value, rel=1e-12)
    assert second["FVD_multi"].value == pytest.approx(first["FVD_multi"].value, rel=1e-12)
    _, meta3 = run(VideoProtocol(views=VIEWS, num_frames=3), other, ref, cache=tmp_path)
    assert meta3["reference_stats"]["FID_multi"] == "computed"
    assert len(list(tmp_path.glob("*.safetensors"))) == 4


def test_nuscenes_reference_root(tmp_path):
    root = write_nuscenes_root(tmp_path / "nusc")
    src = NuScenesClipSource(root, VIEWS, num_frames=4, window_stride=2)
    assert [c for c, _ in src.refs and [(r.clip_id, 0) for r in src.refs]] == ["scene-0001:0000", "scene-0001:0002", "scene-0001:0004"]
    # the generated set: the reference clips' decoded pixels as PNGs -> zero distance
    write_clip_dir(tmp_path / "gen", {cid.replace(":", "_"): f for cid, f in src})
    proto = VideoProtocol(views=VIEWS, num_frames=4, ref_window_stride=2)
    rows, meta = run(proto, tmp_path / "gen", root)
    assert rows["FID_multi"].value == pytest.approx(0.0, abs=1e-9)
    assert meta["reference"]["kind"] == "nuscenes" and meta["reference"]["clips"] == 3


def test_mp4_and_frame_folders(tmp_path):
    clips = random_clips(1, t=5, seed=3)
    write_clip_dir(tmp_path / "mp4", clips, fmt="mp4")
    frames = read_view(tmp_path / "mp4" / "clip000" / "CAM_FRONT.mp4")
    assert frames.shape == (5, 32, 48, 3)
    assert np.abs(frames.astype(int) - clips["clip000"][0]).mean() < 4  # lossy but close
    # mixed forms in one clip directory
    shutil.move(str(tmp_path / "mp4" / "clip000" / "CAM_BACK.mp4"), str(tmp_path / "CAM_BACK.mp4"))
    write_clip_dir(tmp_path / "png", clips)
    shutil.copytree(tmp_path / "png" / "clip000" / "CAM_BACK", tmp_path / "mp4" / "clip000" / "CAM_BACK")
    (_cid, both), = list(DirectoryClipSource(tmp_path / "mp4", VIEWS))
    assert both.shape == (2, 5, 32, 48, 3) and np.array_equal(both[1], clips["clip000"][1])


def test_clear_errors(tmp_path, dirs):
    ref, _, _ = dirs
    write_clip_dir(tmp_path / "partial", random_clips(1), views=("CAM_FRONT",))
    with pytest.raises(DataError, match=r"clip000.*lacks views \['CAM_BACK'\]"):
        DirectoryClipSource(tmp_path / "partial", VIEWS)
    with pytest.raises(DataError, match="needs 8"):
        run(VideoProtocol(views=VIEWS, num_frames=8), ref, ref)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no clip folders"):
        DirectoryClipSource(tmp_path / "empty", VIEWS)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), d / "pt_inception-2015-12-05-6726825d.pth")
    torch.save(InceptionI3D().state_dict(), d / "i3d_pretrained_400.pt")
    return d


def parse(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_video_end_to_end(dirs, weight_files, tmp_path):
    ref, _, other = dirs
    out = tmp_path / "report"
    args = parse(["eval", "video", "--gen", str(other), "--ref", str(ref), "--out", str(out), "--views", ",".join(VIEWS),
                  "--num-frames", "4", "--fid-size", "75", "--fvd-size", "32", "--max-gen-clips", "2", "--max-ref-clips", "3",
                  "--weights-dir", str(weight_files), "--bootstrap", "5"])  # fmt: skip
    with pytest.warns(UserWarning, match="SHA-256"):  # random weights under the canonical name: checksum prefix differs
        assert args.func(args) == 0
    report = json.loads((out / "video.json").read_text())
    rows = {r["metric"]: r for r in report["rows"]}
    assert set(rows) == {"FID_multi", "FVD_multi"}
    assert rows["FID_multi"]["counts"] == {"gen frames": 2 * 2 * 4, "ref frames": 3 * 2 * 4}
    assert all(np.isfinite(r["value"]) and r["ci"]["num_resamples"] == 5 for r in rows.values())
    assert report["meta"]["feature_networks"]["FID_multi"]["size"] == 75
    assert len(report["meta"]["weights"]["inception"]["sha256"]) == 64
    md = (out / "video.md").read_text()
    assert "| FID_multi |" in md and "| FVD_multi |" in md
    assert len(list((out / "reference_stats").glob("*.safetensors"))) == 2


def test_cli_video_missing_weights(dirs, tmp_path):
    ref, _, other = dirs
    args = parse(["eval", "video", "--gen", str(other), "--ref", str(ref), "--out", str(tmp_path), "--weights-dir", str(tmp_path), "--metrics", "fvd"])
    with pytest.raises(WeightsError, match="i3d_pretrained_400.pt"):
        args.func(args)


def test_frame_selection_stride_and_resize():
    proto = VideoProtocol(views=VIEWS, num_frames=3, frame_stride=2, image_size=(24, 8))
    fid, fvd = metrics()
    ev = VideoEvaluator(proto, [fid], [fvd])
    frames = np.zeros((2, 6, 32, 48, 3), dtype=np.uint8)
    frames[:, :, 8:24] = np.arange(6, dtype=np.uint8)[None, :, None, None, None] * 10  # frame t: centre band t * 10
    sel = ev._select("c", frames)
    # frames 0, 2, 4; covered to 24x16 then centre-cropped to 24x8: only the band remains
    assert sel.shape == (2, 3, 8, 24, 3)
    assert [int(sel[0, i].mean()) for i in range(3)] == [0, 20, 40]
    with pytest.raises(DataError, match="needs 5"):
        ev._select("c", frames[:, :4])
