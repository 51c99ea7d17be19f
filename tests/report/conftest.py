"""Fixtures of the report tests: the hand-made root and one report built from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from genesis_drive.report.html import MetricRow, MetricTable, Section, Text, write_report
from genesis_drive.report.scene import scene_section

from ..data.handmade import write_handmade

METRICS = MetricTable(
    "Camera metrics",
    (
        MetricRow("FID_multi", 41.5, 38.25, 44.0, controls=(("real (ceiling)", 3.125), ("layout ignored (floor)", 90.5)), note="<b>bold?</b>"),
        MetricRow("FVD_multi", 210.0, unit="", controls=(("real (ceiling)", 12.0),)),
        MetricRow("mAP", 0.3125, 0.25, 0.375, controls=(("layout ignored (floor)", 0.0625),)),
    ),
)


@pytest.fixture(scope="session")
def hm_root(tmp_path_factory) -> Path:
    """One scene, 2 keyframes: 7 frames x 6 cameras (64 x 36), 11 LiDAR sweeps of 200 points."""
    return write_handmade(tmp_path_factory.mktemp("report_hm") / "root", num_keyframes=2)


@pytest.fixture(scope="session")
def report(hm_root, tmp_path_factory) -> Path:
    """A report: the scene against itself (two videos, a BEV, a two-cloud point view), a metric table, text."""
    base = tmp_path_factory.mktemp("report")
    scene = scene_section(hm_root, "scene-0001", base / "work", compare_root=hm_root, labels=("real", "generated"))
    sections = [scene, Section("Metrics <all>", (METRICS, Text("Numbers & intervals: 1000 bootstrap draws <seeded>.")))]
    return write_report(base / "report.html", "genesis-drive <test> report", sections)
