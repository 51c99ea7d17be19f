"""Curation report: score histograms, pictures of kept and rejected clips, a markdown page.

``REPORT_DIR/histograms.png`` (every sub-score, group and the total, threshold marked),
``REPORT_DIR/examples/<kept|rejected>-<n>.jpg`` (frame 0 of every view, nuScenes layout: front
row FRONT_LEFT, FRONT, FRONT_RIGHT; back row BACK_LEFT, BACK, BACK_RIGHT) and
``REPORT_DIR/report.md`` linking them with the scores, reasons and captions.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ..data.atomic import atomic_write_bytes, atomic_write_text
from ..data.schema import Clip
from .manifest import read_manifest
from .scoring import GROUPS, SUBSCORES
from .worker import ClipLoader, CurationConfig, PlannedClip

__all__ = ["clip_mosaic", "score_histograms", "write_report"]

_LAYOUT = (("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"), ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"))


def clip_mosaic(clip: Clip, frame: int = 0, tile_width: int = 320, title: str = "") -> np.ndarray:
    """RGB uint8 picture ``(h w 3)`` of one frame of every view in the nuScenes 2 x 3 layout
    (views the clip lacks are black), with channel names and an optional title bar."""
    h0, w0 = clip.images.shape[2:4]
    tw, th = tile_width, max(1, round(h0 * tile_width / w0))
    rows = []
    for names in _LAYOUT:
        tiles = []
        for ch in names:
            tile = np.zeros((th, tw, 3), np.uint8)
            if ch in clip.views:
                tile = cv2.resize(clip.images[frame, clip.views.index(ch)], (tw, th), interpolation=cv2.INTER_AREA)
            cv2.putText(tile, ch, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
            tiles.append(tile)
        rows.append(np.concatenate(tiles, axis=1))
    pic = np.concatenate(rows, axis=0)
    if title:
        bar = np.zeros((22, pic.shape[1], 3), np.uint8)
        cv2.putText(bar, title[:140], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        pic = np.concatenate([bar, pic], axis=0)
    return pic


def score_histograms(rows: list[dict], threshold: float, path: Path) -> Path:
    """One histogram per sub-score, group and the total over the scored rows; PNG at ``path``."""
    from matplotlib.figure import (
        Figure,  # no pyplot: no global figure state or backend switch
    )

    names = [f"score_{s}" for s in SUBSCORES] + list(GROUPS) + ["total"]
    ok = [r for r in rows if r["status"] == "ok"]
    cols = 4
    fig = Figure(figsize=(14, 10))
    axes = fig.subplots((len(names) + cols - 1) // cols, cols)
    for ax, name in zip(axes.ravel(), names):
        vals = [r[name] for r in ok if r[name] is not None]
        ax.hist(vals, bins=20, range=(0, 1), color="#4477aa")
        if name == "total":
            ax.axvline(threshold, color="#cc3311", linestyle="--", label=f"threshold {threshold:g}")
            ax.legend(fontsize=7)
        ax.set_title(name.removeprefix("score_"), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"DataCrafter scores over {len(ok)} scored clips")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return atomic_write_bytes(path, buf.getvalue())


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def write_report(manifest: Path, report_dir: Path, root: Path | None = None, cfg: CurationConfig = CurationConfig(), examples: int = 4) -> Path:
    """Write the report of ``manifest`` into ``report_dir``; example pictures need the dataset
    ``root`` (skipped when None). Returns the markdown page's path."""
    rows = read_manifest(manifest)
    report_dir = Path(report_dir)
    score_histograms(rows, cfg.score.threshold, report_dir / "histograms.png")
    ok = [r for r in rows if r["status"] == "ok"]
    kept = sorted((r for r in ok if r["kept"]), key=lambda r: -r["total"])
    rejected = sorted((r for r in ok if not r["kept"]), key=lambda r: r["total"])
    failed = [r for r in rows if r["status"] != "ok"]
    reasons = Counter(x for r in rows for x in r["rejection_reasons"])

    lines = [
        f"# DataCrafter report: {Path(manifest).name}",
        "",
        f"{len(rows)} rows: {len(kept)} kept, {len(rejected)} rejected by score, {len(failed)} not scored (errors / empty scenes).",
        f"S = {cfg.score.weights[0]:g} clarity + {cfg.score.weights[1]:g} structure + {cfg.score.weights[2]:g} aesthetics; kept when S >= {cfg.score.threshold:g}.",
        "",
        "| reason | rows |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in reasons.most_common()],
        "",
        "| score | mean | min | max |",
        "|---|---|---|---|",
    ]
    for name in [f"score_{s}" for s in SUBSCORES] + list(GROUPS) + ["total"]:
        vals = np.array([r[name] for r in ok], dtype=np.float64)
        if vals.size:
            lines.append(f"| {name.removeprefix('score_')} | {vals.mean():.3f} | {vals.min():.3f} | {vals.max():.3f} |")
    lines += ["", "![score histograms](histograms.png)", ""]

    loader = None
    if root is not None and examples > 0:
        from ..data.nuscenes import NuScenesReader

        loader = ClipLoader(NuScenesReader(root, cfg.version), cfg.clip_spec)
    for label, group in (("kept", kept[:examples]), ("rejected", rejected[:examples])):
        lines += [f"## {label.capitalize()} examples", ""]
        for n, r in enumerate(group):
            reasons_txt = ", ".join(r["rejection_reasons"]) or "-"
            lines.append(f"### {r['clip_id']}: S = {r['total']:.3f} (clarity {r['clarity']:.2f}, structure {r['structure']:.2f}, aesthetics {r['aesthetics']:.2f}); reasons: {reasons_txt}")
            if loader is not None:
                p = PlannedClip(r["clip_index"], r["clip_id"], r["scene_token"], r["scene_name"], tuple(r["frame_tokens"]), tuple(r["views"]))
                try:
                    clip = loader.load(p)
                    pic = clip_mosaic(clip, title=f"{r['clip_id']}  S={r['total']:.3f}  {reasons_txt}")
                    rel = f"examples/{label}-{n}.jpg"
                    atomic_write_bytes(report_dir / rel, _jpeg(pic))
                    lines.append(f"\n![{r['clip_id']}]({rel})")
                except Exception as e:  # the report must not fail on one unreadable clip
                    lines.append(f"\n(picture unavailable: {type(e).__name__}: {e})")
            if r["caption_text"]:
                lines += ["", "```", r["caption_text"], "```"]
            lines.append("")
    if failed:
        lines += ["## Rows not scored", "", "| clip | status | reason | message |", "|---|---|---|---|"]
        lines += [f"| {r['clip_id']} | {r['status']} | {', '.join(r['rejection_reasons'])} | {(r['error'] or '').replace('|', '/')[:160]} |" for r in failed[:50]]
    page = report_dir / "report.md"
    atomic_write_text(page, "\n".join(lines) + "\n")
    return page
