"""A BEV plot (PNG) of LiDAR points, boxes with heading and map layers, in one ego frame.

Drawn with matplotlib's Agg canvas (no pyplot state). Orientation matches the BEV raster of
:mod:`genesis_drive.layout.bev`: ego +x (forward) points up, ego +y (left) points left; the
ego sits at the origin (a black triangle pointing forward).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from ..data.atomic import atomic_write_bytes
from ..data.schema import Box3D, MapLayers
from ..layout.colors import CLASS_COLORS, MAP_COLORS

__all__ = ["bev_figure", "plot_bev"]


def _rgb(c: tuple[int, int, int]) -> tuple[float, float, float]:
    return c[0] / 255, c[1] / 255, c[2] / 255


def _yx(xy: np.ndarray) -> np.ndarray:
    """Ego (x, y) -> plot (horizontal, vertical) = (y, x); the horizontal axis is inverted."""
    return np.asarray(xy)[:, ::-1]


def bev_figure(
    points_ego: np.ndarray | None = None,
    boxes: Sequence[Box3D] = (),
    map_layers: MapLayers | None = None,
    extent: float = 50.0,
    title: str = "",
    size_inches: float = 8.0,
) -> Figure:
    """The BEV figure: map layers, LiDAR points (N, >=3) ego x, y, z metres coloured by height,
    box footprints in class colours with a heading line from the centre to the front edge, within
    ``extent`` metres of the ego in x and y."""
    fig = Figure(figsize=(size_inches, size_inches), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("white")
    if map_layers is not None:
        for name in ("drivable_area", "walkway", "ped_crossing"):
            for g in getattr(map_layers, name):
                ax.add_patch(Polygon(_yx(g), closed=True, facecolor=_rgb(MAP_COLORS[name]), alpha=0.25, edgecolor="none", zorder=1))
        styles = {"lane_divider": ((0.5, 0.5, 0.5), "--"), "road_divider": ((0.75, 0.65, 0.1), "-"), "road_edge": (_rgb(MAP_COLORS["road_edge"]), "-")}
        for name, (color, ls) in styles.items():
            for g in getattr(map_layers, name):
                yx = _yx(g)
                ax.plot(yx[:, 0], yx[:, 1], color=color, linestyle=ls, linewidth=1.0, zorder=2)
    if points_ego is not None and len(points_ego):
        pts = np.asarray(points_ego, dtype=np.float64)
        keep = (np.abs(pts[:, 0]) <= extent) & (np.abs(pts[:, 1]) <= extent)
        pts = pts[keep]
        sc = ax.scatter(pts[:, 1], pts[:, 0], c=pts[:, 2], s=0.5, cmap="viridis", vmin=-1.0, vmax=4.0, linewidths=0, zorder=3)
        fig.colorbar(sc, ax=ax, fraction=0.04, pad=0.02, label="LiDAR point height z (m, ego)")
    for box in boxes:
        color = _rgb(CLASS_COLORS.get(box.detection_class, (0, 0, 0)))
        foot = box.bottom_corners()[:, :2]  # front-left, front-right, back-right, back-left
        ax.add_patch(Polygon(_yx(foot), closed=True, facecolor=color, alpha=0.35, edgecolor=color, linewidth=1.5, zorder=4))
        tip = foot[:2].mean(axis=0)
        ax.plot([box.center[1], tip[1]], [box.center[0], tip[0]], color=color, linewidth=1.5, zorder=5)
    ax.add_patch(Polygon(np.array([[0.0, 2.0], [-1.0, -1.0], [1.0, -1.0]]), closed=True, facecolor="black", zorder=6))
    ax.set_xlim(extent, -extent)  # +y (left) on the left
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("ego y (m, + = left)")
    ax.set_ylabel("ego x (m, + = forward)")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_bev(
    path: str | Path,
    points_ego: np.ndarray | None = None,
    boxes: Sequence[Box3D] = (),
    map_layers: MapLayers | None = None,
    extent: float = 50.0,
    title: str = "",
) -> Path:
    """Write the BEV plot of :func:`bev_figure` as a PNG at ``path`` (atomically)."""
    fig = bev_figure(points_ego, boxes, map_layers, extent, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())
