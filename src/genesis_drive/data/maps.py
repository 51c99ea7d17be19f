"""Vector maps in the nuScenes map-expansion schema (``maps/expansion/<location>.json``).

One reader serves real nuScenes maps and the project's own: devkit's ``NuScenesMap`` accepts only
the four real location names, so the JSON is parsed here directly. The schema's geometry tables
are ``node`` (token, x, y), ``line`` (token, node_tokens) and ``polygon`` (token,
exterior_node_tokens, holes); layers reference them: ``drivable_area`` (polygon_tokens),
``ped_crossing`` / ``walkway`` (polygon_token), ``lane_divider`` / ``road_divider`` (line_token).

genesis-drive adds two layers real maps do not carry, with the same structure:
``road_edge`` (line_token) and ``lane_centerline`` (line_token). On real maps, road edges are
derived from the drivable-area boundaries and lane centre lines are left empty.

Also written: the devkit's raster *semantic prior* (``maps/<token>.png``, drivable area at
0.1 m/pixel, origin at global (0, 0), y up), which devkit render functions read.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError
from .schema import MapLayers

__all__ = ["map_to_expansion_json", "expansion_json_to_map", "read_map_expansion", "semantic_prior_png", "MAP_RESOLUTION"]

#: Raster semantic-prior resolution (metres per pixel) the devkit assumes by default.
MAP_RESOLUTION = 0.1
_MAX_PRIOR_PIXELS = 12000


def _token(*parts: object) -> str:
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def map_to_expansion_json(location: str, layers: MapLayers) -> dict:
    """Map layers (global frame) as a nuScenes map-expansion dict (deterministic tokens)."""
    doc: dict = {"version": "1.3", "canvas_edge": [0, 0], "node": [], "line": [], "polygon": []}
    for name in ("drivable_area", "road_segment", "road_block", "lane", "ped_crossing", "walkway", "stop_line",
                 "carpark_area", "road_divider", "lane_divider", "traffic_light", "road_edge", "lane_centerline"):
        doc[name] = []
    counter = {"n": 0}

    def nodes(points: np.ndarray) -> list[str]:
        toks = []
        for x, y in points:
            counter["n"] += 1
            t = _token(location, "node", counter["n"])
            doc["node"].append({"token": t, "x": float(x), "y": float(y)})
            toks.append(t)
        return toks

    def polygon(points: np.ndarray) -> str:
        t = _token(location, "polygon", len(doc["polygon"]))
        doc["polygon"].append({"token": t, "exterior_node_tokens": nodes(points), "holes": []})
        return t

    def line(points: np.ndarray) -> str:
        t = _token(location, "line", len(doc["line"]))
        doc["line"].append({"token": t, "node_tokens": nodes(points)})
        return t

    if layers.drivable_area:
        doc["drivable_area"].append(
            {"token": _token(location, "drivable_area"), "polygon_tokens": [polygon(p) for p in layers.drivable_area]}
        )
    for name in ("ped_crossing", "walkway"):
        for i, p in enumerate(getattr(layers, name)):
            doc[name].append({"token": _token(location, name, i), "polygon_token": polygon(p)})
    for name in ("lane_divider", "road_divider", "road_edge", "lane_centerline"):
        for i, p in enumerate(getattr(layers, name)):
            rec = {"token": _token(location, name, i), "line_token": line(p)}
            if name == "lane_divider":
                rec["lane_divider_segments"] = []
            doc[name].append(rec)
    bounds = np.concatenate([g for n in MapLayers.POLYGON_LAYERS + MapLayers.LINE_LAYERS for g in getattr(layers, n)] or [np.zeros((1, 2))])
    doc["canvas_edge"] = [float(max(bounds[:, 0].max(), 0)), float(max(bounds[:, 1].max(), 0))]
    return doc


def expansion_json_to_map(doc: dict, source: str = "<map>") -> MapLayers:
    """Parse a map-expansion dict (real nuScenes or genesis-drive) into :class:`MapLayers`."""
    try:
        node_xy = {n["token"]: (n["x"], n["y"]) for n in doc["node"]}
        lines = {ln["token"]: ln["node_tokens"] for ln in doc["line"]}
        polys = {p["token"]: p["exterior_node_tokens"] for p in doc["polygon"]}
    except (KeyError, TypeError) as e:
        raise DataError(f"map expansion JSON lacks node/line/polygon tables ({e})", source, "node/line/polygon") from None

    def pts(tokens: list[str], layer: str) -> np.ndarray:
        try:
            return np.array([node_xy[t] for t in tokens], dtype=np.float64)
        except KeyError as e:
            raise DataError(f"references unknown node {e}", source, layer) from None

    def poly(tok: str, layer: str) -> np.ndarray:
        if tok not in polys:
            raise DataError(f"references unknown polygon {tok}", source, layer)
        return pts(polys[tok], layer)

    def line(tok: str, layer: str) -> np.ndarray:
        if tok not in lines:
            raise DataError(f"references unknown line {tok}", source, layer)
        return pts(lines[tok], layer)

    drivable = tuple(poly(t, "drivable_area") for rec in doc.get("drivable_area", []) for t in rec["polygon_tokens"])
    fields = {
        "drivable_area": drivable,
        "ped_crossing": tuple(poly(r["polygon_token"], "ped_crossing") for r in doc.get("ped_crossing", [])),
        "walkway": tuple(poly(r["polygon_token"], "walkway") for r in doc.get("walkway", [])),
        "lane_divider": tuple(line(r["line_token"], "lane_divider") for r in doc.get("lane_divider", [])),
        "road_divider": tuple(line(r["line_token"], "road_divider") for r in doc.get("road_divider", [])),
        "lane_centerline": tuple(line(r["line_token"], "lane_centerline") for r in doc.get("lane_centerline", [])),
    }
    if "road_edge" in doc:
        fields["road_edge"] = tuple(line(r["line_token"], "road_edge") for r in doc["road_edge"])
    else:  # real nuScenes: kerbs are the drivable-area boundaries (closed rings as polylines)
        fields["road_edge"] = tuple(np.vstack([p, p[:1]]) for p in drivable)
    # Drop degenerate geometry (real maps hold a few 1-2 node polygons) rather than fail on it.
    for name in MapLayers.POLYGON_LAYERS:
        fields[name] = tuple(p for p in fields[name] if len(p) >= 3)
    for name in MapLayers.LINE_LAYERS:
        fields[name] = tuple(p for p in fields[name] if len(p) >= 2)
    return MapLayers(**fields)


def read_map_expansion(path: str | Path) -> MapLayers:
    """Read ``maps/expansion/<location>.json``; errors name the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError("map expansion file not found (the nuScenes map expansion is a separate download)", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON ({e})", path) from None
    if not isinstance(doc, dict):
        raise DataError("expected a JSON object with node/line/polygon tables", path)
    return expansion_json_to_map(doc, source=str(path))


def semantic_prior_png(layers: MapLayers) -> bytes:
    """The devkit's raster map: drivable area = 255 at :data:`MAP_RESOLUTION` m/pixel.

    Pixel (row, col) covers global x = col * res, y = (H - row) * res (origin bottom-left, as
    ``nuscenes.utils.map_mask.MapMask`` expects). Geometry at negative coordinates is clipped.
    """
    geoms = [g for g in layers.drivable_area]
    if geoms:
        hi = np.max(np.concatenate(geoms), axis=0)
        w, h = (np.clip(np.ceil(hi / MAP_RESOLUTION) + 10, 16, _MAX_PRIOR_PIXELS)).astype(int)
    else:
        w = h = 16
    img = np.zeros((h, w), dtype=np.uint8)
    for g in geoms:
        px = np.stack([g[:, 0] / MAP_RESOLUTION, h - g[:, 1] / MAP_RESOLUTION], axis=1)
        cv2.fillPoly(img, [np.round(px * 4).astype(np.int32)], 255, shift=2)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
