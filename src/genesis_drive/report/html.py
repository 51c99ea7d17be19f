"""A self-contained HTML report: one file, no network at view time.

Everything is inside the file: CSS and JavaScript inline, videos (MP4 H.264) and pictures (PNG /
JPEG) as base64 ``data:`` URIs, point clouds as base64 float32 arrays drawn by a hand-written
canvas-2D renderer (``pointview.js``: orbit, pan, zoom, clouds toggled, colour by height or by
source). Base64 costs a third more than the files; :func:`write_report` refuses to write more than
``max_bytes`` (30 MiB by default) so a report stays something a browser opens at once: shorten
videos (fewer frames, smaller tiles) or lower :attr:`PointView.max_points` to fit.

Every text (titles, names, notes, table cells) is HTML-escaped; JSON inside ``<script>`` has its
``<`` escaped so no value can close the script element.

A report is a title and a list of :class:`Section`, each holding items: :class:`Text`,
:class:`Video`, :class:`Picture`, :class:`PointView` of :class:`Cloud`, :class:`MetricTable` of
:class:`MetricRow`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Union

import numpy as np

from ..data.atomic import atomic_write_text
from ..errors import DataError
from ..eval.report import MetricRow as EvalMetricRow
from ..eval.report import format_number

__all__ = ["Text", "Video", "Picture", "Cloud", "PointView", "MetricRow", "MetricTable", "Section", "render_report", "write_report"]

#: Default palette of clouds coloured by source (real, generated, ...).
SOURCE_COLORS: tuple[tuple[int, int, int], ...] = ((80, 170, 255), (255, 120, 60), (120, 220, 120), (230, 90, 200), (240, 220, 80))
_MEDIA = {".mp4": "video/mp4", ".webm": "video/webm", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (escaped)."""

    text: str


@dataclass(frozen=True)
class Video:
    """An MP4 (H.264, yuv420p: what :func:`genesis_drive.viz.video.write_mp4` writes) or WebM file, embedded."""

    title: str
    path: Path


@dataclass(frozen=True)
class Picture:
    """A PNG or JPEG file, embedded."""

    title: str
    path: Path


@dataclass(frozen=True)
class Cloud:
    """One point cloud of a view: points (N, >=3) ``x, y, z`` metres (z up) in the view's shared frame.

    ``color``: RGB of the cloud in the "source" colour mode (None: the next of :data:`SOURCE_COLORS`)."""

    name: str
    points: np.ndarray
    color: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class PointView:
    """An interactive 3D view of several clouds (e.g. real vs generated LiDAR), each toggled on / off.

    ``max_points``: per cloud; larger clouds are thinned by an even stride (deterministic).
    ``width`` x ``height``: canvas pixels."""

    title: str
    clouds: tuple[Cloud, ...]
    max_points: int = 40_000
    width: int = 860
    height: int = 480


@dataclass(frozen=True)
class MetricRow:
    """One number with its interval and the same metric on control inputs.

    ``controls``: (column name, value) pairs, e.g. ``(("real (ceiling)", 12.1), ("layout ignored (floor)", 88.0))``;
    ``low`` / ``high``: the interval (None: not computed)."""

    name: str
    value: float
    low: float | None = None
    high: float | None = None
    unit: str = ""
    controls: tuple[tuple[str, float], ...] = ()
    note: str = ""

    @staticmethod
    def from_eval(row: "EvalMetricRow | dict", controls: tuple[tuple[str, float], ...] = ()) -> "MetricRow":
        """The row of an evaluation report: a :class:`genesis_drive.eval.report.MetricRow` or one
        entry of the ``rows`` list of its JSON file (``metric``, ``value``, ``ci``, ``unit``, ``note``)."""
        d = row.to_dict() if isinstance(row, EvalMetricRow) else dict(row)
        ci = d.get("ci") or {}
        return MetricRow(str(d["metric"]), float(d["value"]), ci.get("low"), ci.get("high"), d.get("unit", ""), tuple(controls), d.get("note", ""))


@dataclass(frozen=True)
class MetricTable:
    """A table of :class:`MetricRow`: metric, value, interval, one column per control name, note."""

    title: str
    rows: tuple[MetricRow, ...]
    interval_label: str = "95% CI"


Item = Union[Text, Video, Picture, PointView, MetricTable]


@dataclass(frozen=True)
class Section:
    title: str
    items: tuple[Item, ...] = field(default_factory=tuple)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:1em auto;padding:0 1em;color:#1b1f24;background:#fafbfc}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}h3{font-size:1.05em;margin:1.2em 0 .4em}
video,img{max-width:100%;display:block;border:1px solid #d0d7de;background:#000}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #d0d7de;padding:3px 9px;text-align:right}
th{background:#eef1f4}td:first-child,th:first-child{text-align:left}td.note{text-align:left;color:#57606a}
.gd-pointview canvas{display:block;border:1px solid #d0d7de;cursor:grab;max-width:100%}
.gd-pv-controls{display:flex;gap:1em;align-items:center;flex-wrap:wrap;margin:.3em 0;font-size:.9em}
.gd-swatch{display:inline-block;width:.8em;height:.8em;margin:0 .3em;border-radius:2px}.gd-hint{color:#57606a;font-size:.85em}
footer{color:#57606a;font-size:.8em;margin:2em 0}
"""


def _data_uri(path: Path) -> str:
    path = Path(path)
    media = _MEDIA.get(path.suffix.lower())
    if media is None:
        raise DataError(f"cannot embed {path.suffix!r} files; expected one of {', '.join(_MEDIA)}", path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("report file not found", path) from None
    return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _script_json(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _thin(points: np.ndarray, max_points: int, name: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"Cloud {name!r}: points must be (N, >=3) x, y, z metres, got {pts.shape}")
    pts = pts[np.all(np.isfinite(pts[:, :3]), axis=1), :3]
    if len(pts) > max_points:
        pts = pts[:: math.ceil(len(pts) / max_points)]
    return pts.astype("<f4")


def _point_view(view: PointView, index: int) -> str:
    clouds, all_pts = [], []
    for i, c in enumerate(view.clouds):
        pts = _thin(c.points, view.max_points, c.name)
        all_pts.append(pts)
        color = list(c.color or SOURCE_COLORS[i % len(SOURCE_COLORS)])
        clouds.append({"name": c.name, "color": color, "xyz": base64.b64encode(pts.tobytes()).decode("ascii")})
    stacked = np.concatenate(all_pts) if all_pts else np.zeros((0, 3), np.float32)
    if len(stacked):
        z = np.percentile(stacked[:, 2], [2, 98])
        center = np.median(stacked, axis=0)
        radius = float(np.percentile(np.linalg.norm(stacked - center, axis=1), 90)) or 1.0
    else:
        z, center, radius = np.array([0.0, 1.0]), np.zeros(3), 1.0
    data = {"clouds": clouds, "zrange": [float(z[0]), float(z[1])], "center": [float(v) for v in center], "radius": radius}
    return (
        f"<h3>{_e(view.title)}</h3><div class='gd-pointview' id='pointview-{index}'>"
        f"<canvas width='{int(view.width)}' height='{int(view.height)}'></canvas>"
        "<div class='gd-pv-controls'></div>"
        "<div class='gd-hint'>drag: orbit &middot; shift+drag or right-drag: pan &middot; wheel: zoom (metres, z up)</div>"
        f"<script type='application/json'>{_script_json(data)}</script></div>"
    )


def _fmt(x: float | None) -> str:
    return "&ndash;" if x is None else _e(format_number(float(x)))


def _table(t: MetricTable) -> str:
    controls: list[str] = []
    for r in t.rows:
        controls += [k for k, _ in r.controls if k not in controls]
    head = ["metric", "value", t.interval_label, *controls, "note"]
    out = [f"<h3>{_e(t.title)}</h3><table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for r in t.rows:
        unit = f" {_e(r.unit)}" if r.unit else ""
        interval = f"[{_fmt(r.low)}, {_fmt(r.high)}]" if r.low is not None and r.high is not None else "not computed"
        values = dict(r.controls)
        cells = [_e(r.name), _fmt(r.value) + unit, interval, *(_fmt(values.get(k)) for k in controls)]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td class='note'>{_e(r.note)}</td></tr>")
    return "".join(out) + "</table>"


def _item(item: Item, index: int) -> str:
    if isinstance(item, Text):
        return f"<p>{_e(item.text)}</p>"
    if isinstance(item, Video):
        return f"<h3>{_e(item.title)}</h3><video controls muted loop playsinline preload='auto' src='{_data_uri(item.path)}'></video>"
    if isinstance(item, Picture):
        return f"<h3>{_e(item.title)}</h3><img alt='{_e(item.title)}' src='{_data_uri(item.path)}'>"
    if isinstance(item, PointView):
        return _point_view(item, index)
    if isinstance(item, MetricTable):
        return _table(item)
    raise TypeError(f"report item must be Text, Video, Picture, PointView or MetricTable, got {type(item).__name__}")


def render_report(title: str, sections: list[Section] | tuple[Section, ...]) -> str:
    """The whole HTML document (a string) of the report."""
    js = resources.files("genesis_drive.report").joinpath("pointview.js").read_text(encoding="utf-8")
    body, n = [], 0
    for s in sections:
        body.append(f"<section><h2>{_e(s.title)}</h2>")
        for item in s.items:
            body.append(_item(item, n))
            n += 1
        body.append("</section>")
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; media-src data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        + "\n".join(body)
        + f"<footer>genesis-drive report, written {_e(date)}; self-contained (no network).</footer>"
        + f"<script>{js}</script></body></html>\n"
    )


def write_report(out_html: str | Path, title: str, sections: list[Section] | tuple[Section, ...], max_bytes: int = 30 * 2**20) -> Path:
    """Write the report of :func:`render_report` to ``out_html`` atomically; returns the path.

    Raises DataError when the document would exceed ``max_bytes`` (embedded media are the bulk)."""
    text = render_report(title, sections)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise DataError(
            f"report would be {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.1f} MiB limit; "
            "embed shorter / smaller videos, fewer pictures or fewer points (PointView.max_points)",
            out_html,
        )
    return atomic_write_text(out_html, text)
