"""Road facts of a clip from its vector map (frame-0 ego frame: x forward, y left, metres).

Lanes are counted where lane centre lines cross a line across the road ``probe_x`` metres ahead:
a centre line heading within 45 degrees of the ego's heading is a lane in the ego's direction,
within 45 degrees of the opposite heading an oncoming lane. Centre lines running across the ego's
path (within ``junction_half_width`` metres of its axis, up to ``junction_range`` metres ahead)
make the road an intersection; otherwise the
heading change of the ego's lane over the next ``curve_lookahead`` metres makes it straight or
curved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.schema import MapLayers

__all__ = ["RoadConfig", "RoadFacts", "road_facts"]


@dataclass(frozen=True)
class RoadConfig:
    """Distances in metres, angles in degrees."""

    probe_x: float = 5.0
    lane_half_width: float = 15.0
    junction_range: float = 25.0
    junction_half_width: float = 4.0
    curve_lookahead: float = 30.0
    curve_deg: float = 15.0
    crossing_range: float = 40.0
    walkway_range: float = 25.0


@dataclass
class RoadFacts:
    """type: "straight" | "curve" | "intersection" | "unknown" (no lane centre lines);
    curve_direction: "left" | "right" | None; lane counts None when unknown."""

    type: str
    curve_direction: str | None
    lanes_same_direction: int | None
    lanes_opposite: int | None
    pedestrian_crossing_ahead: bool
    walkway_sides: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _crossings(line: np.ndarray, x: float) -> list[tuple[float, float, int]]:
    """(y, heading, segment index) where polyline ``line`` (K, 2) crosses the line ``X = x``."""
    out = []
    for i in range(len(line) - 1):
        (x0, y0), (x1, y1) = line[i], line[i + 1]
        if (x0 - x) * (x1 - x) <= 0 and x0 != x1:
            a = (x - x0) / (x1 - x0)
            out.append((y0 + a * (y1 - y0), float(np.arctan2(y1 - y0, x1 - x0)), i))
    return out


def _heading_after(line: np.ndarray, seg: int, start: np.ndarray, dist: float) -> float:
    """Heading (rad) of ``line`` ``dist`` metres along it after ``start`` on segment ``seg``."""
    left = dist
    p = start
    for i in range(seg, len(line) - 1):
        d = float(np.linalg.norm(line[i + 1] - p))
        if d >= left or i == len(line) - 2:
            v = line[i + 1] - line[i]
            return float(np.arctan2(v[1], v[0]))
        left -= d
        p = line[i + 1]
    v = line[-1] - line[-2]
    return float(np.arctan2(v[1], v[0]))


def road_facts(m: MapLayers, cfg: RoadConfig = RoadConfig()) -> RoadFacts:
    """Road type, lanes, crossings and walkways around the ego from ego-frame map layers."""
    same, opposite = [], []
    for line in m.lane_centerline:
        for y, heading, seg in _crossings(line, cfg.probe_x):
            if abs(y) > cfg.lane_half_width:
                continue
            c = np.cos(heading)
            if c > np.cos(np.radians(45)):
                same.append((abs(y), y, heading, seg, line))
            elif c < -np.cos(np.radians(45)):
                opposite.append(y)
    # lane centre lines are split into pieces: merge crossings closer than 1.5 m (one lane)
    def count(ys: list[float]) -> int:
        ys = sorted(ys)
        return sum(1 for i, y in enumerate(ys) if i == 0 or y - ys[i - 1] > 1.5)

    from shapely.geometry import LineString, Point, Polygon, box

    # an intersection: a lane runs across the ego's path (the band |y| < junction_half_width ahead)
    path = box(-5.0, -cfg.junction_half_width, cfg.junction_range, cfg.junction_half_width)
    junction = False
    for line in m.lane_centerline:
        seg = np.diff(line, axis=0)
        across = np.abs(np.sin(np.arctan2(seg[:, 1], seg[:, 0]))) > np.sin(np.radians(45))
        if any(LineString(line[i : i + 2]).intersects(path) for i in np.flatnonzero(across)):
            junction = True
            break
    curve_dir = None
    if not m.lane_centerline:
        rtype = "unknown"
    elif junction:
        rtype = "intersection"
    else:
        rtype = "straight"
        if same:
            _, y, heading, seg, line = min(same, key=lambda s: s[0])
            h2 = _heading_after(line, seg, np.array([cfg.probe_x, y]), cfg.curve_lookahead)
            turn = float(np.degrees(np.angle(np.exp(1j * (h2 - heading)))))
            if abs(turn) > cfg.curve_deg:
                rtype, curve_dir = "curve", ("left" if turn > 0 else "right")
    ahead = box(0.0, -cfg.lane_half_width, cfg.crossing_range, cfg.lane_half_width)
    crossing = any(Polygon(p).buffer(0).intersects(ahead) for p in m.ped_crossing)
    sides = set()
    ego = Point(0.0, 0.0)
    for p in m.walkway:
        poly = Polygon(p).buffer(0)
        if poly.distance(ego) < cfg.walkway_range:
            near = poly.intersection(ego.buffer(cfg.walkway_range))
            sides.add("left" if near.centroid.y > 0 else "right")
    known = bool(m.lane_centerline)
    return RoadFacts(
        type=rtype,
        curve_direction=curve_dir,
        lanes_same_direction=count([s[1] for s in same]) if known else None,
        lanes_opposite=count(opposite) if known else None,
        pedestrian_crossing_ahead=bool(crossing),
        walkway_sides=sorted(sides),
    )
