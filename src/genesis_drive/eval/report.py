"""Evaluation reports: one JSON file with every number and choice, one markdown table for humans.

A report is ``{"title", "date", "rows": [...], "meta": {...}}``; each row names a metric, its value,
its bootstrap interval and sample counts. Both files are written atomically.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_json, atomic_write_text
from .bootstrap import BootstrapCI

__all__ = ["MetricRow", "format_number", "write_report"]


@dataclass
class MetricRow:
    """One reported number. ``ci`` is None only when the bootstrap was switched off."""

    metric: str
    value: float
    ci: BootstrapCI | None
    unit: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = self.ci.to_dict() if self.ci is not None else None
        return d


def format_number(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    a = abs(x)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{x:.3e}"
    return f"{x:.4g}" if a < 1 else f"{x:.2f}"


def _markdown(title: str, date: str, rows: list[MetricRow], meta: dict[str, Any]) -> str:
    level = next((r.ci.level for r in rows if r.ci is not None), 0.95)
    lines = [f"# {title}", "", f"Date: {date}", "", f"| Metric | Value | {level:.0%} CI (bootstrap) | Samples | Notes |", "|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{format_number(r.ci.low)}, {format_number(r.ci.high)}]" if r.ci is not None else "not computed"
        counts = ", ".join(f"{k} {v}" for k, v in r.counts.items())
        unit = f" {r.unit}" if r.unit else ""
        lines.append(f"| {r.metric} | {format_number(r.value)}{unit} | {ci} | {counts} | {r.note} |")
    lines += ["", "Protocol and provenance: see the JSON report beside this file.", ""]
    for key in ("protocol", "weights"):
        if key in meta:
            lines.append(f"- {key}: `{meta[key]}`")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, name: str, title: str, rows: list[MetricRow], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.md``; returns both paths."""
    out = Path(out_dir)
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    payload = {"title": title, "date": date, "rows": [r.to_dict() for r in rows], "meta": meta}
    j = atomic_write_json(out / f"{name}.json", payload, indent=2)
    m = atomic_write_text(out / f"{name}.md", _markdown(title, date, rows, meta))
    return j, m
