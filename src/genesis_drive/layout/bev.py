"""BEV raster of a clip frame: map layers and box footprints in the ego frame.

Orientation (the picture you get with ``imshow``): **row 0 is the far front** (ego +x points up,
towards decreasing row index) and **column 0 is the far left** (ego +y points left, towards
decreasing column index). Cell ``(r, c)`` has its centre at ego
``x = x_max - (r + 0.5) * res``, ``y = y_max - (c + 0.5) * res`` (metres).

Channels (float32, values in [0, 1] except the heading channels, in [-1, 1]):

* one per map layer (default: ``drivable_area, ped_crossing, walkway, lane_divider,
  road_divider, road_edge``): fraction of the cell covered by the layer's polygons, or by its
  lines stroked ``line_width`` metres wide;
* ``box_<class>`` for each detection class (:data:`DETECTION_CLASSES` order): fraction of the
  cell covered by the footprints of that class's boxes;
* ``heading_cos``, ``heading_sin``: cos and sin of the heading (yaw in the ego frame) of the box
  covering the cell, times its coverage (later boxes overwrite earlier ones where they overlap);
  ``atan2(heading_sin, heading_cos)`` recovers the yaw inside any box.

Coverage is measured by rasterising at ``supersample`` x the grid resolution with
``cv2.fillPoly`` / ``cv2.polylines`` (sub-pixel fixed point) and averaging each block of
``supersample x supersample`` sub-cells. OpenCV marks every sub-cell whose centre lies within
about half a sub-cell of the shape (it rounds span ends to the nearest centre), so coverage is
conservative: a footprint's area is overestimated by at most one sub-cell per axis
(``(l + res/s) (w + res/s)`` instead of ``l w``); thresholding coverage at 0.5 approximates the
set of cells whose centres lie inside. Boxes whose category has no detection class (or whose
class is not in ``classes``) are not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from ..data.schema import DETECTION_CLASSES, Box3D, Clip, MapLayers
from ..errors import ConfigError
from .frames import frame_map

__all__ = [
    "BevGrid",
    "BevConfig",
    "BEV_GRIDS",
    "BEV_PRESETS",
    "BEV_MAP_LAYERS",
    "bev_channel_names",
    "rasterize_bev",
    "frame_bev",
    "clip_bev",
    "sample_raster",
]

_SHIFT = 5  # fixed-point fractional bits passed to OpenCV

#: Map layers drawn by default, in channel order.
BEV_MAP_LAYERS: tuple[str, ...] = ("drivable_area", "ped_crossing", "walkway", "lane_divider", "road_divider", "road_edge")


@dataclass(frozen=True)
class BevGrid:
    """A metric grid in the ego frame: ``x_range`` (forward) and ``y_range`` (left) in metres,
    ``resolution`` metres per cell. Height (rows) spans x, width (columns) spans y."""

    x_range: tuple[float, float] = (-32.0, 32.0)
    y_range: tuple[float, float] = (-32.0, 32.0)
    resolution: float = 1.0

    def __post_init__(self) -> None:
        if not self.resolution > 0:
            raise ConfigError(f"BevGrid.resolution must be > 0 metres, got {self.resolution}")
        for name in ("x_range", "y_range"):
            lo, hi = getattr(self, name)
            cells = (hi - lo) / self.resolution
            if not hi > lo or abs(cells - round(cells)) > 1e-6 * max(1.0, cells):
                raise ConfigError(
                    f"BevGrid.{name} must be (min, max) metres with max > min spanning a whole number of "
                    f"{self.resolution} m cells, got ({lo}, {hi})"
                )
            object.__setattr__(self, name, (float(lo), float(hi)))

    @property
    def height(self) -> int:
        """Rows (along ego x)."""
        return int(round((self.x_range[1] - self.x_range[0]) / self.resolution))

    @property
    def width(self) -> int:
        """Columns (along ego y)."""
        return int(round((self.y_range[1] - self.y_range[0]) / self.resolution))

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) cells."""
        return self.height, self.width

    def ego_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """Ego ``x, y`` metres (..., 2) -> continuous ``(u, v)`` = (column, row) coordinates (..., 2);
        cell ``(r, c)`` spans ``u`` in [c, c + 1) and ``v`` in [r, r + 1)."""
        xy = np.asarray(xy, dtype=np.float64)
        u = (self.y_range[1] - xy[..., 1]) / self.resolution
        v = (self.x_range[1] - xy[..., 0]) / self.resolution
        return np.stack([u, v], axis=-1)

    def cell_centers(self) -> np.ndarray:
        """Ego ``x, y`` metres of every cell centre, (H, W, 2)."""
        x = self.x_range[1] - (np.arange(self.height) + 0.5) * self.resolution
        y = self.y_range[1] - (np.arange(self.width) + 0.5) * self.resolution
        xx, yy = np.meshgrid(x, y, indexing="ij")
        return np.stack([xx, yy], axis=-1)


#: Named grids: "tiny" 64 x 64 cells of 1 m over +-32 m; "paper" 200 x 200 cells of 0.512 m over
#: +-51.2 m (the grid of HERMES / ViDAR).
BEV_GRIDS: dict[str, BevGrid] = {
    "tiny": BevGrid((-32.0, 32.0), (-32.0, 32.0), 1.0),
    "paper": BevGrid((-51.2, 51.2), (-51.2, 51.2), 0.512),
}


@dataclass(frozen=True)
class BevConfig:
    """What the BEV raster draws: grid, map layers, classes, stroke width of lines (metres) and
    the supersampling factor used to measure coverage."""

    grid: BevGrid = field(default_factory=BevGrid)
    map_layers: tuple[str, ...] = BEV_MAP_LAYERS
    classes: tuple[str, ...] = DETECTION_CLASSES
    line_width: float = 0.5
    supersample: int = 4
    heading: bool = True

    def __post_init__(self) -> None:
        known = MapLayers.POLYGON_LAYERS + MapLayers.LINE_LAYERS
        bad = [n for n in self.map_layers if n not in known]
        if bad:
            raise ConfigError(f"BevConfig.map_layers: unknown layer(s) {bad}; expected names from {known}")
        bad = [n for n in self.classes if n not in DETECTION_CLASSES]
        if bad:
            raise ConfigError(f"BevConfig.classes: unknown class(es) {bad}; expected names from {DETECTION_CLASSES}")
        if not self.line_width > 0 or self.supersample < 1:
            raise ConfigError(f"BevConfig: line_width must be > 0 m and supersample >= 1, got {self.line_width}, {self.supersample}")

    @property
    def num_channels(self) -> int:
        return len(bev_channel_names(self))


#: Named BEV configurations, one per grid preset.
BEV_PRESETS: dict[str, BevConfig] = {
    "tiny": BevConfig(grid=BEV_GRIDS["tiny"], line_width=1.0),
    "paper": BevConfig(grid=BEV_GRIDS["paper"], line_width=0.5),
}


def bev_channel_names(config: BevConfig) -> tuple[str, ...]:
    """Names of the raster's channels, in order."""
    heading = ("heading_cos", "heading_sin") if config.heading else ()
    return tuple(config.map_layers) + tuple(f"box_{c}" for c in config.classes) + heading


def _fine_points(config: BevConfig, xy: np.ndarray) -> np.ndarray:
    """Ego x, y (K, 2) -> int32 OpenCV fixed point on the supersampled canvas."""
    uv = config.grid.ego_to_pixel(xy) * config.supersample - 0.5  # OpenCV pixel centres at integers
    return np.round(uv * (1 << _SHIFT)).astype(np.int32)


def rasterize_bev(map_layers: MapLayers, boxes: Sequence[Box3D], config: BevConfig) -> np.ndarray:
    """BEV raster (C, H, W) float32 of ``map_layers`` and ``boxes``, both in one ego frame.

    Channels are :func:`bev_channel_names` ``(config)``; orientation as in the module docstring.
    """
    s = config.supersample
    fh, fw = config.grid.height * s, config.grid.width * s
    masks = np.zeros((len(config.map_layers) + len(config.classes), fh, fw), dtype=np.uint8)
    heading = np.zeros((2, fh, fw), dtype=np.float32)
    thickness = max(1, int(round(config.line_width / config.grid.resolution * s)))

    for i, layer in enumerate(config.map_layers):
        geoms = [_fine_points(config, g) for g in getattr(map_layers, layer)]
        if not geoms:
            continue
        if layer in MapLayers.POLYGON_LAYERS:
            cv2.fillPoly(masks[i], geoms, 1, lineType=cv2.LINE_8, shift=_SHIFT)
        else:
            cv2.polylines(masks[i], geoms, False, 1, thickness=thickness, lineType=cv2.LINE_8, shift=_SHIFT)

    class_index = {c: len(config.map_layers) + i for i, c in enumerate(config.classes)}
    for box in boxes:
        idx = class_index.get(box.detection_class)
        if idx is None:
            continue
        foot = _fine_points(config, box.bottom_corners()[:, :2])
        cv2.fillPoly(masks[idx], [foot], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        if config.heading:
            yaw = box.yaw
            cv2.fillPoly(heading[0], [foot], float(np.cos(yaw)), lineType=cv2.LINE_8, shift=_SHIFT)
            cv2.fillPoly(heading[1], [foot], float(np.sin(yaw)), lineType=cv2.LINE_8, shift=_SHIFT)

    # (c, h*s, w*s) -> (c, h, w): mean over each s x s block (INTER_AREA with an integer factor)
    size = (config.grid.width, config.grid.height)
    fine = list(masks.astype(np.float32)) + (list(heading) if config.heading else [])
    out = np.stack([cv2.resize(ch, size, interpolation=cv2.INTER_AREA) for ch in fine])
    return out


def frame_bev(clip: Clip, t: int, config: BevConfig) -> np.ndarray:
    """BEV raster (C, H, W) of frame ``t`` of ``clip`` in that frame's ego frame."""
    return rasterize_bev(frame_map(clip, t), clip.boxes[t], config)


def clip_bev(clip: Clip, config: BevConfig) -> np.ndarray:
    """BEV rasters of every frame, (T, C, H, W) float32, each in its own frame's ego frame."""
    return np.stack([frame_bev(clip, t, config) for t in range(clip.num_frames)])


def sample_raster(raster: np.ndarray, grid: BevGrid, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(C, ...)`` float32 of a raster ``(C, H, W)`` on ``grid`` at ego points
    ``xy (..., 2)`` metres (cell centres read exactly their cell's value; 0 beyond the border).
    Use it to express a raster in another frame, e.g. at the BEV cells of a LiDAR grid moved
    into this ego frame."""
    raster = np.asarray(raster, dtype=np.float32)
    if raster.ndim != 3 or raster.shape[1:] != grid.shape:
        raise ValueError(f"sample_raster: raster must be (C, {grid.height}, {grid.width}), got {raster.shape}")
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape[-1] != 2:
        raise ValueError(f"sample_raster: points must be (..., 2) ego x, y metres, got {xy.shape}")
    uv = grid.ego_to_pixel(xy.reshape(-1, 2)) - 0.5  # continuous pixel index of cell centres
    mx = np.ascontiguousarray(uv[:, 0], dtype=np.float32)[None]
    my = np.ascontiguousarray(uv[:, 1], dtype=np.float32)[None]
    out = [cv2.remap(ch, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[0] for ch in raster]
    return np.stack(out).reshape(raster.shape[0], *xy.shape[:-1])
