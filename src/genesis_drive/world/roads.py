"""SynthTown's procedural road network: junctions, curved two-way roads, lanes, crossings, sidewalks.

Everything is in the global frame (metres, z up, all coordinates positive so the nuScenes raster map
covers the town). Traffic drives on the right. The network is a jittered grid of junctions; some
grid roads are removed, so junctions have 2 (a bend or a straight joint), 3 (T) or 4 arms. Roads are
cubic Bezier curves with 1 or 2 lanes per direction and optional parking shoulders. Junctions with 3+
arms get traffic signals and zebra crossings on every arm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString, MultiPoint, Polygon
from shapely.geometry import box as shapely_box
from shapely.geometry.polygon import orient
from shapely.ops import split, unary_union

from ..data.schema import MapLayers
from ..errors import ConfigError
from .config import RoadConfig
from .mesh import Material, TriangleMesh
from .polyline import Polyline, bezier
from .primitives import dashes, jitter_colors, polygon_mesh, polyline_strip, wall_strip

__all__ = ["Arm", "Crossing", "Junction", "Lane", "RoadNetwork", "Segment", "Signal", "build_network", "road_mesh", "simple_polygons"]

CROSSING_GAP = 0.8  # metres between a junction's edge and its zebra crossing
STOP_GAP = 1.2  # metres between a crossing and the stop line
MARK_Z = 0.02  # markings float this high above the asphalt (metres)


@dataclass(eq=False)
class Lane:
    """A lane centre line in driving direction.

    kind: "road" (on a segment) or "connector" (through a junction). node: the junction a road lane
    leads into, or the junction a connector lies in. arm: the arm (index into the junction's arms) a
    road lane enters / a connector comes from. index: 0 = next to the road divider.
    stop_s: arc length (m) where a vehicle's front stops for a red signal (= length if no signal).
    speed_limit: m/s. turn: connectors only, "straight" | "left" | "right".
    """

    id: int
    line: Polyline
    kind: str
    node: int
    arm: int
    index: int
    speed_limit: float
    segment: int = -1
    stop_s: float = 0.0
    turn: str = ""
    successors: list[int] = field(default_factory=list)

    @property
    def length(self) -> float:
        return self.line.length


@dataclass(frozen=True, eq=False)
class Arm:
    """One road leaving a junction. heading: radians pointing away from the junction; point: (2,)
    the road's end centre at the junction edge; end: 0 if the segment starts here, 1 if it ends."""

    segment: int
    end: int
    heading: float
    point: np.ndarray
    half_width: float


@dataclass(frozen=True)
class Signal:
    """A fixed-time traffic signal. phases: arm-index groups that get green together, in order.

    Each phase: ``green[i]`` s green, ``yellow`` s yellow, ``all_red`` s red for everyone; times
    are shifted by ``offset`` seconds.
    """

    phases: tuple[tuple[int, ...], ...]
    green: tuple[float, ...]
    yellow: float = 3.0
    all_red: float = 1.5
    offset: float = 0.0

    @property
    def cycle(self) -> float:
        return float(sum(self.green) + len(self.green) * (self.yellow + self.all_red))

    def _phase_windows(self) -> list[tuple[float, float, float]]:
        out, t = [], 0.0
        for g in self.green:
            out.append((t, t + g, t + g + self.yellow))
            t += g + self.yellow + self.all_red
        return out

    def state(self, arm: int, t: float) -> str:
        """"green" | "yellow" | "red" for vehicles entering from ``arm`` at time ``t`` (s)."""
        tc = (t + self.offset) % self.cycle
        for phase, (g0, g1, y1) in zip(self.phases, self._phase_windows()):
            if arm in phase:
                if g0 <= tc < g1:
                    return "green"
                if g1 <= tc < y1:
                    return "yellow"
        return "red"

    def time_to_green(self, arm: int, t: float) -> float:
        """Seconds until ``arm`` next turns green (0 while green)."""
        tc = (t + self.offset) % self.cycle
        best = np.inf
        for phase, (g0, g1, _) in zip(self.phases, self._phase_windows()):
            if arm in phase:
                if g0 <= tc < g1:
                    return 0.0
                best = min(best, (g0 - tc) % self.cycle)
        return float(best)


@dataclass(frozen=True, eq=False)
class Crossing:
    """A zebra crossing over one junction arm. polygon: (4, 2); ends: (2, 2) the two sidewalk
    points (mid-sidewalk) a pedestrian walks between; half_road: metres from the road centre to the
    kerb (the part at road level)."""

    id: int
    node: int
    arm: int
    polygon: np.ndarray
    ends: np.ndarray
    half_road: float


@dataclass(frozen=True, eq=False)
class Segment:
    """A two-way road between junctions ``nodes`` (a, b). centerline: trimmed at both junctions.
    half_width: centre to kerb (lanes + shoulder), metres."""

    id: int
    nodes: tuple[int, int]
    centerline: Polyline
    lanes_per_dir: int
    shoulder: float
    half_width: float
    speed_limit: float
    forward: tuple[int, ...]  # lane ids a -> b, index order
    backward: tuple[int, ...]  # lane ids b -> a


@dataclass(frozen=True, eq=False)
class Junction:
    node: int
    center: np.ndarray
    arms: tuple[Arm, ...]
    polygon: Polygon
    signal: Signal | None
    crossings: tuple[int, ...]


@dataclass(eq=False)
class RoadNetwork:
    """The town's roads. drivable / sidewalk: shapely geometry (global frame, metres).

    walk_paths: closed polylines along the middle of the sidewalks (pedestrian paths).
    bounds: (x0, y0, x1, y1) metres of the whole town including the scenery margin.
    """

    config: RoadConfig
    nodes: np.ndarray
    segments: list[Segment]
    junctions: list[Junction]
    lanes: list[Lane]
    crossings: list[Crossing]
    drivable: Polygon
    sidewalk: Polygon
    walk_paths: list[Polyline]
    bounds: tuple[float, float, float, float]

    def road_lanes(self) -> list[Lane]:
        return [lane for lane in self.lanes if lane.kind == "road"]

    def map_layers(self) -> MapLayers:
        """The vector map (global frame) in the schema's layers."""
        lane_div, road_div = [], []
        for seg in self.segments:
            road_div.append(seg.centerline.points)
            if seg.lanes_per_dir == 2:
                w = self.config.lane_width
                lane_div.append(seg.centerline.offset(-w).points)
                lane_div.append(seg.centerline.offset(w).points[::-1])
        edges = []
        for poly in _polygons(self.drivable):
            for ring in [poly.exterior, *poly.interiors]:
                edges.append(np.asarray(ring.coords))
        return MapLayers(
            drivable_area=tuple(simple_polygons(self.drivable)),
            ped_crossing=tuple(c.polygon for c in self.crossings),
            walkway=tuple(simple_polygons(self.sidewalk)),
            lane_divider=tuple(lane_div),
            road_divider=tuple(road_div),
            road_edge=tuple(edges),
            lane_centerline=tuple(lane.line.points for lane in self.lanes),
        )


def _polygons(geom) -> list[Polygon]:
    if geom.is_empty:
        return []
    return [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and not g.is_empty]


def simple_polygons(geom, min_area: float = 0.5) -> list[np.ndarray]:
    """Hole-free pieces (each (K, 2), counter-clockwise, not closed) covering a (Multi)Polygon.

    Polygons with holes are cut by vertical lines through their holes until none remain.
    """
    todo, out = _polygons(geom), []
    while todo:
        p = todo.pop()
        if p.area < min_area:
            continue
        if not p.interiors:
            out.append(np.asarray(orient(p, 1.0).exterior.coords)[:-1])
            continue
        hole = p.interiors[0]
        hx = np.asarray(hole.coords)[:, 0]
        cx = float(0.5 * (hx.min() + hx.max()))
        _, y0, _, y1 = p.bounds
        pieces = split(p, LineString([(cx, y0 - 1), (cx, y1 + 1)]))
        todo.extend(_polygons(pieces))
    return out


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def _grid_graph(cfg: RoadConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    nx, ny = cfg.grid
    if nx < 2 or ny < 2:
        raise ConfigError(f"RoadConfig.grid must be at least (2, 2) junctions, got {cfg.grid}")
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(*cfg.spacing, nx - 1))])
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(*cfg.spacing, ny - 1))])
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    nodes = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-cfg.jitter, cfg.jitter, (nx * ny, 2))
    nodes += cfg.margin - nodes.min(axis=0)
    idx = lambda i, j: i * ny + j
    edges = [(idx(i, j), idx(i + 1, j)) for i in range(nx - 1) for j in range(ny)]
    edges += [(idx(i, j), idx(i, j + 1)) for i in range(nx) for j in range(ny - 1)]
    order = rng.permutation(len(edges))
    kept = set(range(len(edges)))
    for e in order:
        if rng.random() >= cfg.drop_edge_prob:
            continue
        trial = kept - {e}
        deg = np.zeros(len(nodes), int)
        for k in trial:
            deg[list(edges[k])] += 1
        if deg.min() >= 2 and _connected(len(nodes), [edges[k] for k in trial]):
            kept = trial
    return nodes, [edges[k] for k in sorted(kept)]


def _connected(n: int, edges: list[tuple[int, int]]) -> bool:
    adj = {i: [] for i in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    seen, todo = {0}, [0]
    while todo:
        for m in adj[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return len(seen) == n


def build_network(cfg: RoadConfig, rng: np.random.Generator) -> RoadNetwork:
    """A random road network under ``cfg`` (deterministic given ``rng``'s state)."""
    nodes, edges = _grid_graph(cfg, rng)
    lw, sw = cfg.lane_width, cfg.sidewalk_width
    # -- full curves between junction centres, widths per road
    curves, widths = [], []
    for a, b in edges:
        pa, pb = nodes[a], nodes[b]
        d = pb - pa
        n = np.array([-d[1], d[0]]) / np.linalg.norm(d)
        o1, o2 = rng.uniform(-cfg.curve, cfg.curve, 2) * np.linalg.norm(d)
        curves.append(Polyline(bezier(pa, pa + d / 3 + n * o1, pa + 2 * d / 3 + n * o2, pb, step=0.5)))
        lanes_per_dir = 2 if rng.random() < cfg.two_lane_prob else 1
        shoulder = cfg.shoulder_width if rng.random() < cfg.parking_prob else 0.0
        widths.append([lanes_per_dir, shoulder, 0.0, float(rng.uniform(*cfg.speed_limit))])
    # roads meeting at a bend (2-arm junction) keep their lane count, so lanes never merge there
    degree = np.bincount(np.array(edges).ravel(), minlength=len(nodes))
    changed = True
    while changed:
        changed = False
        for node in np.flatnonzero(degree == 2):
            k1, k2 = [k for k, e in enumerate(edges) if node in e]
            n = min(widths[k1][0], widths[k2][0])
            if widths[k1][0] != n or widths[k2][0] != n:
                widths[k1][0] = widths[k2][0] = n
                changed = True
    widths = [(n, sh, n * lw + sh, sp) for n, sh, _, sp in widths]
    # -- junction radii: far enough out that neighbouring roads (with sidewalks) do not overlap
    arms_at: dict[int, list[tuple[int, int, float]]] = {i: [] for i in range(len(nodes))}
    for k, (a, b) in enumerate(edges):
        c = curves[k]
        arms_at[a].append((k, 0, float(c.heading(0.0))))
        arms_at[b].append((k, 1, float(c.heading(c.length)) + np.pi))
    radius = np.zeros(len(nodes))
    for node, arms in arms_at.items():
        arms.sort(key=lambda t: _wrap(t[2]))
        need = max(widths[k][2] for k, _, _ in arms) + 2.5
        angles = _wrap(np.array([t[2] for t in arms]))
        for i in range(len(arms)):
            j = (i + 1) % len(arms)
            gap = (angles[j] - angles[i]) % (2 * np.pi)
            if gap < np.pi - 1e-3:
                wmax = max(widths[arms[i][0]][2], widths[arms[j][0]][2]) + sw + cfg.corner_radius
                need = max(need, wmax / np.tan(gap / 2))
        radius[node] = need + 0.5
    # -- trimmed segments and their lanes
    segments: list[Segment] = []
    lanes: list[Lane] = []
    for k, (a, b) in enumerate(edges):
        c = curves[k]
        s0, s1 = radius[a], c.length - radius[b]
        if s1 - s0 < 20.0:
            raise ConfigError(f"RoadConfig.spacing {cfg.spacing} is too small for the junction sizes (road {k} is {s1 - s0:.1f} m long)")
        center = c.sub(s0, s1, step=1.0)
        n_lanes, shoulder, hw, speed = widths[k]
        fwd, bwd = [], []
        for i in range(n_lanes):
            fl = Lane(len(lanes), center.offset(-(i + 0.5) * lw), "road", b, -1, i, speed, segment=k)
            lanes.append(fl)
            fwd.append(fl.id)
            bl = Lane(len(lanes), center.offset((i + 0.5) * lw).reversed(), "road", a, -1, i, speed, segment=k)
            lanes.append(bl)
            bwd.append(bl.id)
        segments.append(Segment(k, (a, b), center, n_lanes, shoulder, hw, speed, tuple(fwd), tuple(bwd)))
    # -- junctions: arms, connectors, polygons, signals, crossings
    junctions: list[Junction] = []
    crossings: list[Crossing] = []
    for node in range(len(nodes)):
        arms = []
        for k, end, _ in arms_at[node]:
            seg = segments[k]
            if end == 0:
                arms.append(Arm(k, 0, float(seg.centerline.heading(0.0)), seg.centerline.xy(0.0), seg.half_width))
            else:
                L = seg.centerline.length
                arms.append(Arm(k, 1, float(seg.centerline.heading(L)) + np.pi, seg.centerline.xy(L), seg.half_width))
        signalised = len(arms) >= 3
        for ai, arm in enumerate(arms):
            seg = segments[arm.segment]
            for lid in seg.backward if arm.end == 0 else seg.forward:
                lanes[lid].arm = ai
                if signalised:
                    lanes[lid].stop_s = lanes[lid].length - (CROSSING_GAP + cfg.crossing_width + STOP_GAP)
                else:
                    lanes[lid].stop_s = lanes[lid].length
        connector_lines = []
        planned = []  # (arm, incoming lane ids, outgoing lane ids, turn, pairing mode, incoming index, outgoing index)
        for ai, arm_in in enumerate(arms):
            seg_in = segments[arm_in.segment]
            incoming = seg_in.backward if arm_in.end == 0 else seg_in.forward
            for aj, arm_out in enumerate(arms):
                if aj == ai:
                    continue
                seg_out = segments[arm_out.segment]
                outgoing = seg_out.forward if arm_out.end == 0 else seg_out.backward
                h_in = arm_in.heading + np.pi
                turn_angle = float(_wrap(arm_out.heading - h_in))
                turn = "straight" if abs(turn_angle) < np.deg2rad(35) else ("left" if turn_angle > 0 else "right")
                mode = turn if signalised else "straight"
                planned += [(ai, incoming, outgoing, turn, mode, i_in, i_out) for i_in, i_out in _lane_pairs(len(incoming), len(outgoing), mode)]

        def merges(incoming, outgoing, mode, i_in) -> bool:
            return mode == "straight" and i_in >= len(outgoing)

        # an incoming lane without a matching straight lane merges on only where it has no other way to go
        has_exit = {p[1][p[5]] for p in planned if not merges(p[1], p[2], p[4], p[5])}
        for ai, incoming, outgoing, turn, mode, i_in, i_out in planned:
            if merges(incoming, outgoing, mode, i_in) and incoming[i_in] in has_exit:
                continue
            lin, lout = lanes[incoming[i_in]], lanes[outgoing[i_out]]
            p0, p3 = lin.line.xy(lin.length), lout.line.xy(0.0)
            h0, h3 = float(lin.line.heading(lin.length)), float(lout.line.heading(0.0))
            hd = 0.42 * np.linalg.norm(p3 - p0)
            pts = bezier(p0, p0 + hd * np.array([np.cos(h0), np.sin(h0)]), p3 - hd * np.array([np.cos(h3), np.sin(h3)]), p3, step=1.0)
            line = Polyline(pts)
            speed = min(lin.speed_limit, lout.speed_limit, _curve_speed(line))
            con = Lane(len(lanes), line, "connector", node, ai, i_in, speed, turn=turn)
            con.stop_s = con.length
            con.successors.append(lout.id)
            lin.successors.append(con.id)
            lanes.append(con)
            connector_lines.append(line)
        pts = []
        for arm in arms:
            n = np.array([-np.sin(arm.heading), np.cos(arm.heading)])
            pts += [arm.point + n * arm.half_width, arm.point - n * arm.half_width]
        poly = MultiPoint(pts).convex_hull
        if connector_lines:
            poly = unary_union([poly] + [LineString(cl.points).buffer(lw / 2 + 0.6, quad_segs=3) for cl in connector_lines])
        poly = Polygon(max(_polygons(poly), key=lambda p: p.area).exterior)
        signal = None
        cross_ids = []
        if signalised:
            signal = _make_signal(arms, rng)
            for ai, arm in enumerate(arms):
                seg = segments[arm.segment]
                line = seg.centerline if arm.end == 0 else seg.centerline.reversed()
                s0, s1 = CROSSING_GAP, CROSSING_GAP + cfg.crossing_width
                hw = seg.half_width
                c0, c1 = line.xy(s0), line.xy(s1)
                h = float(line.heading(0.5 * (s0 + s1)))
                n = np.array([-np.sin(h), np.cos(h)])
                polygon = np.array([c0 - n * hw, c1 - n * hw, c1 + n * hw, c0 + n * hw])
                mid = line.xy(0.5 * (s0 + s1))
                ends = np.array([mid + n * (hw + sw / 2), mid - n * (hw + sw / 2)])
                crossings.append(Crossing(len(crossings), node, ai, polygon, ends, hw))
                cross_ids.append(crossings[-1].id)
        junctions.append(Junction(node, nodes[node], tuple(arms), poly, signal, tuple(cross_ids)))
    # -- surfaces
    strips = []
    for seg in segments:
        left = seg.centerline.offset(seg.half_width).points
        right = seg.centerline.offset(-seg.half_width).points
        strips.append(Polygon(np.concatenate([right, left[::-1]])).buffer(0))
    r = cfg.corner_radius
    drivable = unary_union(strips + [j.polygon for j in junctions]).buffer(r, quad_segs=4).buffer(-r, quad_segs=4)
    drivable = orient(drivable, 1.0) if isinstance(drivable, Polygon) else drivable
    sidewalk = drivable.buffer(sw, quad_segs=4).difference(drivable)
    walk_paths = []
    for poly in _polygons(drivable.buffer(sw / 2, quad_segs=4)):
        for ring in [poly.exterior, *poly.interiors]:
            line = Polyline(np.asarray(ring.simplify(0.1).coords), closed=True)
            if line.length > 10:
                walk_paths.append(Polyline(line.sample(1.0), closed=True))
    x0, y0 = nodes.min(axis=0) - cfg.margin
    x1, y1 = nodes.max(axis=0) + cfg.margin
    return RoadNetwork(cfg, nodes, segments, junctions, lanes, crossings, drivable, sidewalk, walk_paths, (float(max(x0, 1.0)), float(max(y0, 1.0)), float(x1), float(y1)))


def _lane_pairs(n_in: int, n_out: int, turn: str) -> list[tuple[int, int]]:
    """Which incoming lane feeds which outgoing lane (index 0 = next to the divider)."""
    if turn == "straight":
        return [(i, min(i, n_out - 1)) for i in range(n_in)]
    if turn == "right":
        return [(n_in - 1, n_out - 1)]
    return [(0, 0)]


def _curve_speed(line: Polyline, lateral_accel: float = 2.5) -> float:
    """Highest speed (m/s) keeping lateral acceleration under ``lateral_accel`` along ``line``."""
    s = np.arange(0.0, line.length, 1.0)
    if len(s) < 3:
        return 30.0
    kappa = np.abs(np.diff(line.heading(s))) / np.diff(s)
    return float(max(np.sqrt(lateral_accel / max(kappa.max(), 1e-4)), 3.5))


def _make_signal(arms: list[Arm], rng: np.random.Generator) -> Signal:
    """Opposite arms share a phase; the rest get their own."""
    n = len(arms)
    heads = np.array([a.heading for a in arms])
    left = set(range(n))
    phases = []
    while left:
        i = min(left)
        left.discard(i)
        j = min(left, key=lambda k: abs(abs(_wrap(heads[k] - heads[i])) - np.pi), default=None)
        if j is not None and abs(abs(_wrap(heads[j] - heads[i])) - np.pi) < np.deg2rad(40):
            left.discard(j)
            phases.append((i, j))
        else:
            phases.append((i,))
    green = tuple(float(g) for g in rng.uniform(9.0, 15.0, len(phases)))
    sig = Signal(tuple(phases), green)
    return Signal(sig.phases, sig.green, offset=float(rng.uniform(0, sig.cycle)))


# -- meshes ----------------------------------------------------------------------------------------

ASPHALT = (0.16, 0.16, 0.17)
SIDEWALK = (0.52, 0.51, 0.49)
KERB = (0.62, 0.61, 0.58)
WHITE = (0.85, 0.85, 0.82)
YELLOW = (0.85, 0.66, 0.12)
GRASS = (0.22, 0.33, 0.12)


def road_mesh(net: RoadNetwork, rng: np.random.Generator) -> TriangleMesh:
    """Asphalt, sidewalks, kerbs, terrain and painted markings of the network (static, instance 0)."""
    cfg = net.config
    kz = cfg.kerb_height
    parts = [
        jitter_colors(polygon_mesh(net.drivable, 0.0, ASPHALT, Material.ROAD, max_edge=2.5, interior_spacing=4.0), rng, 0.07),
        jitter_colors(polygon_mesh(net.sidewalk, kz, SIDEWALK, Material.SIDEWALK, max_edge=1.5, interior_spacing=2.5), rng, 0.06),
    ]
    x0, y0, x1, y1 = net.bounds
    ground = shapely_box(x0, y0, x1, y1).difference(net.drivable.buffer(cfg.sidewalk_width, quad_segs=4))
    grass = polygon_mesh(ground, kz, GRASS, Material.TERRAIN, max_edge=4.0, interior_spacing=9.0)
    tint = rng.uniform(0.75, 1.2, (grass.num_faces, 1)) * np.array([[1.0, 1.0, 1.0]]) + rng.uniform(-0.05, 0.05, (grass.num_faces, 3))
    parts.append(TriangleMesh(grass.vertices, grass.faces, np.clip(grass.face_color * tint, 0, 1), grass.face_instance, grass.face_material, grass.face_emissive))
    for poly in _polygons(net.drivable):
        for ring in [poly.exterior, *poly.interiors]:
            parts.append(wall_strip(np.asarray(ring.coords), 0.0, kz, KERB, Material.SIDEWALK))
    parts.append(_markings(net))
    return TriangleMesh.concat(parts)


def _markings(net: RoadNetwork) -> TriangleMesh:
    cfg = net.config
    lw = cfg.lane_width
    parts = []
    line_w = 0.13
    trim = CROSSING_GAP + cfg.crossing_width + STOP_GAP  # markings end at the stop line
    for seg in net.segments:
        c = seg.centerline
        a_sig = net.junctions[seg.nodes[0]].signal is not None
        b_sig = net.junctions[seg.nodes[1]].signal is not None
        s0, s1 = (trim if a_sig else 0.0), c.length - (trim if b_sig else 0.0)
        core = c.sub(s0, s1)
        for d in (-0.12, 0.12):  # double yellow road divider
            parts.append(polyline_strip(core.offset(d).points, line_w, MARK_Z, YELLOW, Material.LANE_MARKING))
        if seg.lanes_per_dir == 2:
            for d in (-lw, lw):
                for piece in dashes(core.offset(d).points, 3.0, 6.0):
                    parts.append(polyline_strip(piece, line_w, MARK_Z, WHITE, Material.LANE_MARKING))
        if seg.shoulder > 0:  # parking lane boundary
            for d in (-(seg.half_width - seg.shoulder), seg.half_width - seg.shoulder):
                parts.append(polyline_strip(core.offset(d).points, line_w, MARK_Z, WHITE, Material.LANE_MARKING))
        for end, sig in ((0, a_sig), (1, b_sig)):
            if not sig:
                continue
            s = trim - 0.25 if end == 0 else c.length - trim + 0.25
            p, h = c.xy(s), float(c.heading(s))
            n = np.array([-np.sin(h), np.cos(h)])
            side = 1.0 if end == 0 else -1.0  # incoming lanes: left of a->b at a, right at b
            span = seg.lanes_per_dir * lw
            parts.append(polyline_strip(np.array([p + side * n * 0.15, p + side * n * span]), 0.45, MARK_Z, WHITE, Material.LANE_MARKING))
    for cr in net.crossings:
        c0, c1, _, c3 = cr.polygon  # c0, c1 on one kerb side; c3, c2 on the other
        along = c1 - c0
        width = np.linalg.norm(c3 - c0)
        n_stripes = int(width / 1.0)
        for i in range(n_stripes):
            f = (i + 0.5) / n_stripes
            base = c0 + f * (c3 - c0)
            parts.append(polyline_strip(np.array([base + 0.08 * along, base + 0.92 * along]), 0.5, MARK_Z, WHITE, Material.CROSSING))
    return TriangleMesh.concat(parts)

