"""The self-contained HTML report: embedded media, escaping, point payloads, metric tables, limits."""

from __future__ import annotations

import base64
import json
import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.errors import DataError
from genesis_drive.export.pictures import keyframe_points_ego
from genesis_drive.report.html import Cloud, MetricRow, Picture, PointView, Section, Video, render_report, write_report

from .conftest import METRICS


def _payloads(doc: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"<script type='application/json'>(.*?)</script>", doc)]


def _decode(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4").reshape(-1, 3)


def test_self_contained(report):
    doc = report.read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)""", doc)
    assert len(refs) == 3 and all(r.startswith("data:") for r in refs)  # 2 videos, 1 BEV picture
    assert "http://" not in doc and "https://" not in doc and "<link" not in doc
    assert "default-src 'none'" in doc  # the page may not fetch anything, even by mistake
    assert report.stat().st_size < 2**20


def test_video_is_the_h264_file(report):
    doc = report.read_text()
    uri = re.search(r"<video[^>]*src='data:video/mp4;base64,([^']*)'", doc).group(1)
    mp4 = report.parent / "work" / "real_scene-0001.mp4"
    assert base64.b64decode(uri) == mp4.read_bytes()
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(mp4)], capture_output=True, text=True)
    assert re.search(r"Video: h264 .*yuv420p", probe.stderr), probe.stderr  # what Chromium plays


def test_escaping(report):
    doc = report.read_text()
    assert "<title>genesis-drive &lt;test&gt; report</title>" in doc
    assert "<h2>Metrics &lt;all&gt;</h2>" in doc and "&lt;b&gt;bold?&lt;/b&gt;" in doc and "<b>" not in doc
    assert "Numbers &amp; intervals: 1000 bootstrap draws &lt;seeded&gt;." in doc
    hostile = Cloud("</script><script>alert(1)</script>", np.zeros((2, 3)))
    page = render_report("t", [Section("s", (PointView("v", (hostile,)),))])
    assert "alert(1)" in page and "<script>alert(1)" not in page
    assert _payloads(page)[0]["clouds"][0]["name"] == hostile.name  # the JSON still decodes to the name


def test_point_view_payload(report, hm_root):
    (data,) = _payloads(report.read_text())
    assert [c["name"] for c in data["clouds"]] == ["real LIDAR_TOP", "generated LIDAR_TOP"]
    reader = NuScenesReader(hm_root)
    points, _ = keyframe_points_ego(reader, reader.sample_tokens(reader.scene_tokens()[0])[0])
    for c in data["clouds"]:  # the same root twice: both clouds are its keyframe sweep in its ego frame
        np.testing.assert_allclose(_decode(c["xyz"]), points[:, :3], atol=1e-4)
    pts = np.arange(3000 * 3, dtype=np.float64).reshape(-1, 3)
    page = render_report("t", [Section("s", (PointView("v", (Cloud("a", pts, (1, 2, 3)),), max_points=1000),))])
    (p,) = _payloads(page)
    np.testing.assert_array_equal(_decode(p["clouds"][0]["xyz"]), pts[::3].astype(np.float32))
    assert p["clouds"][0]["color"] == [1, 2, 3] and p["zrange"] == [float(np.percentile(pts[::3, 2], 2)), float(np.percentile(pts[::3, 2], 98))]


def test_metric_table():
    page = render_report("t", [Section("m", (METRICS,))])
    table = re.search(r"<table>(.*?)</table>", page).group(1)
    rows = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)]
    assert rows == [
        ["metric", "value", "95% CI", "real (ceiling)", "layout ignored (floor)", "note"],
        ["FID_multi", "41.50", "[38.25, 44.00]", "3.12", "90.50", "&lt;b&gt;bold?&lt;/b&gt;"],
        ["FVD_multi", "210.00", "not computed", "12.00", "&ndash;", ""],
        ["mAP", "0.3125", "[0.25, 0.375]", "&ndash;", "0.0625", ""],
    ]


def test_limits_and_bad_items(tmp_path, report):
    mp4 = report.parent / "work" / "real_scene-0001.mp4"
    with pytest.raises(DataError, match="over the 0.0 MiB limit"):
        write_report(tmp_path / "r.html", "t", [Section("s", (Video("v", mp4),))], max_bytes=1000)
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(DataError, match="cannot embed '.gif'"):
        render_report("t", [Section("s", (Picture("p", tmp_path / "a.gif"),))])
    with pytest.raises(DataError, match="report file not found"):
        render_report("t", [Section("s", (Picture("p", tmp_path / "a.png"),))])
    with pytest.raises(TypeError, match="report item must be"):
        render_report("t", [Section("s", ("just a string",))])
    with pytest.raises(ValueError, match=r"Cloud 'c'.*\(N, >=3\)"):
        render_report("t", [Section("s", (PointView("v", (Cloud("c", np.zeros((4, 2))),)),))])


def test_rows_from_an_evaluation_report():
    from genesis_drive.eval.bootstrap import BootstrapCI
    from genesis_drive.eval.report import MetricRow as EvalRow

    ci = BootstrapCI(value=12.5, low=11.0, high=14.25, std=0.8, level=0.95, num_resamples=100, seed=0)
    row = EvalRow("FID_multi", 12.5, ci, unit="", counts={"real": 8}, note="n=8")
    expected = MetricRow("FID_multi", 12.5, 11.0, 14.25, "", (("real (ceiling)", 2.0),), "n=8")
    assert MetricRow.from_eval(row, (("real (ceiling)", 2.0),)) == expected
    assert MetricRow.from_eval(row.to_dict(), (("real (ceiling)", 2.0),)) == expected
    assert MetricRow.from_eval(EvalRow("x", 1.0, None)).low is None
