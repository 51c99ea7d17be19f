"""SynthTown's static world: buildings, trees, street lamps, sign poles, traffic signals, parked cars,
traffic cones and barriers, assembled with the road network into one :class:`Town`.

All geometry is in the global frame (metres, z up). Ground level off the road is the kerb height
(sidewalks and blocks are raised). Parked cars, cones and barriers are annotated objects (instance
ids 1..K); everything else is scenery (instance 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon

from .config import WorldConfig
from .mesh import Material, TriangleMesh
from .polyline import Polyline
from .primitives import box, cone, cylinder, hexahedron, icosphere, jitter_colors, quad
from .roads import CROSSING_GAP, STOP_GAP, RoadNetwork, build_network, road_mesh
from .vehicles import car
from .vehicles import lit as lit_vehicle

__all__ = ["SignalHead", "StaticObject", "Town", "build_town", "object_frame", "signal_mesh"]

FACADES = ((0.72, 0.64, 0.52), (0.5, 0.24, 0.17), (0.56, 0.56, 0.55), (0.8, 0.79, 0.75), (0.24, 0.3, 0.36), (0.78, 0.68, 0.42), (0.6, 0.47, 0.38), (0.42, 0.45, 0.5))
ROOFS = ((0.22, 0.22, 0.23), (0.35, 0.2, 0.16), (0.4, 0.4, 0.4))
WINDOW = (0.09, 0.11, 0.14)
LIT_WINDOW = (0.95, 0.78, 0.5)
BARK = (0.25, 0.17, 0.1)
LEAVES = ((0.13, 0.3, 0.08), (0.2, 0.36, 0.1), (0.1, 0.24, 0.12), (0.28, 0.36, 0.12))
METAL = (0.3, 0.31, 0.33)
LAMP_HEAD = (1.0, 0.86, 0.6)
CONE = (0.95, 0.35, 0.03)


@dataclass(frozen=True, eq=False)
class StaticObject:
    """An annotated object that does not move (parked car, cone, barrier).

    center: (3,) box centre, global frame, metres; size (w, l, h); yaw radians.
    mesh: the object's faces in the global frame (instance id = ``instance``).
    """

    instance: int
    category: str
    attributes: tuple[str, ...]
    center: np.ndarray
    size: np.ndarray
    yaw: float
    mesh: TriangleMesh


@dataclass(frozen=True, eq=False)
class SignalHead:
    """A traffic-signal head over the lanes entering junction ``node`` from arm ``arm``.

    lamps: (3, 3) centres of the red, yellow, green lamps (global); normal: (3,) facing direction;
    lateral: (3,) unit vector along the lamp face (horizontal).
    """

    node: int
    arm: int
    lamps: np.ndarray
    normal: np.ndarray
    lateral: np.ndarray


@dataclass(eq=False)
class Town:
    """A generated town. static_mesh: every static face (roads, scenery, annotated static objects).

    lamps: (L, 3) street-lamp light positions (global, metres). lit: whether lamps/windows glow.
    signal_geometry: the signal lamp quads (their lit state changes per frame, see :func:`signal_mesh`).
    """

    network: RoadNetwork
    static_mesh: TriangleMesh
    objects: list[StaticObject]
    lamps: np.ndarray
    signal_heads: list[SignalHead]
    lit: bool
    signal_geometry: TriangleMesh


def object_frame(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """4x4 object-to-global matrix of an object at (x, y, z) heading ``yaw`` (radians)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]])


def _ccw(corners: np.ndarray) -> np.ndarray:
    x, y = corners[:, 0], corners[:, 1]
    area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return corners if area > 0 else corners[::-1]


def _building(corners: np.ndarray, z0: float, height: float, rng: np.random.Generator, lit: bool) -> TriangleMesh:
    corners = _ccw(corners)
    facade = np.clip(np.array(FACADES[rng.integers(len(FACADES))]) * rng.uniform(0.85, 1.15, 3), 0, 1)
    roof = np.array(ROOFS[rng.integers(len(ROOFS))])
    hexa = np.concatenate([np.c_[corners, np.full(4, z0)], np.c_[corners, np.full(4, z0 + height)]])
    parts = [jitter_colors(hexahedron(hexa, np.array([roof, roof, facade, facade, facade, facade]), Material.BUILDING, bottom=False), rng, 0.04)]
    floor_h = rng.uniform(3.0, 3.6)
    n_floors = max(int((height - 0.6) / floor_h), 1)
    spacing = rng.uniform(2.4, 3.8)
    win_w = spacing * rng.uniform(0.4, 0.65)
    win_h = floor_h * rng.uniform(0.4, 0.6)
    shopfront = rng.random() < 0.4
    glass = np.clip(np.array(WINDOW) * rng.uniform(0.8, 1.6), 0, 1)
    quads, colors, emissive = [], [], []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        edge = b - a
        length = np.linalg.norm(edge)
        t = edge / length
        out = np.array([t[1], -t[0]]) * 0.04
        n_cols = int(length / spacing)
        if n_cols < 1:
            continue
        margin = (length - n_cols * spacing) / 2 + (spacing - win_w) / 2
        for f in range(n_floors):
            if f == 0 and shopfront:
                z_lo, z_hi = z0 + 0.5, z0 + floor_h - 0.5
                cols = [(0.6, length - 0.6)]
            else:
                z_lo = z0 + f * floor_h + 0.9
                z_hi = min(z_lo + win_h, z0 + height - 0.4)
                cols = [(margin + c * spacing, margin + c * spacing + win_w) for c in range(n_cols)]
            for u0, u1 in cols:
                p0, p1 = a + t * u0 + out, a + t * u1 + out
                quads.append([(*p0, z_lo), (*p1, z_lo), (*p1, z_hi), (*p0, z_hi)])
                on = lit and rng.random() < 0.35
                colors.append(LIT_WINDOW if on else glass * rng.uniform(0.8, 1.2))
                emissive.append(rng.uniform(0.04, 0.09) if on else 0.0)
    if quads:
        q = np.asarray(quads, float)
        v = q.reshape(-1, 3)
        base = 4 * np.arange(len(q))[:, None]
        faces = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]], axis=1).reshape(-1, 3)
        c = np.repeat(np.clip(np.asarray(colors, float), 0, 1), 2, axis=0)
        e = np.repeat(np.asarray(emissive, np.float32), 2)
        m = len(faces)
        parts.append(TriangleMesh(v, faces, c, np.zeros(m, np.int32), np.full(m, int(Material.BUILDING), np.int16), e))
    return TriangleMesh.concat(parts)


def _tree(base: np.ndarray, rng: np.random.Generator) -> TriangleMesh:
    trunk_h = rng.uniform(2.0, 3.5)
    r = rng.uniform(1.5, 2.8)
    leaves = np.clip(np.array(LEAVES[rng.integers(len(LEAVES))]) * rng.uniform(0.8, 1.2), 0, 1)
    parts = [cylinder(base, base + [0, 0, trunk_h + r * 0.5], rng.uniform(0.12, 0.2), BARK, Material.VEGETATION, sides=6)]
    if rng.random() < 0.25:  # conifer
        parts.append(cone(base + [0, 0, trunk_h * 0.6], r * 0.9, r * 3.0, leaves, Material.VEGETATION, sides=8))
    else:
        parts.append(icosphere(base + [0, 0, trunk_h + 0.7 * r], np.array([r, r, r * rng.uniform(0.75, 1.05)]), leaves, Material.VEGETATION, subdivisions=1))
    return jitter_colors(TriangleMesh.concat(parts), rng, 0.12)


def _lamp(base: np.ndarray, toward: np.ndarray, height: float, lit: bool) -> tuple[TriangleMesh, np.ndarray]:
    top = base + [0, 0, height]
    head = top + np.r_[toward * 1.8, -0.1]
    lateral = np.array([-toward[1], toward[0], 0.0])
    parts = [
        cylinder(base, top, 0.09, METAL, Material.POLE, sides=6),
        cylinder(top - [0, 0, 0.05], head - np.r_[toward * 0.3, 0.0], 0.05, METAL, Material.POLE, sides=5),
    ]
    c0 = head - np.r_[toward * 0.35, 0] - lateral * 0.18
    c1 = head + np.r_[toward * 0.35, 0] + lateral * 0.18
    lo, hi = np.minimum(c0, c1), np.maximum(c0, c1)
    parts.append(box(lo - [0, 0, 0.12], hi + [0, 0, 0.05], LAMP_HEAD, Material.LAMP, emissive=1.0 if lit else 0.0))
    return TriangleMesh.concat(parts), head - [0, 0, 0.2]


def _sign(base: np.ndarray, facing: np.ndarray, rng: np.random.Generator) -> TriangleMesh:
    top = base + [0, 0, 2.7]
    lateral = np.array([-facing[1], facing[0], 0.0])
    color = [(0.75, 0.05, 0.05), (0.05, 0.2, 0.6), (0.9, 0.9, 0.9), (0.85, 0.7, 0.05)][rng.integers(4)]
    c = top + np.r_[facing * 0.06, 0]
    plate = quad([c - lateral * 0.35 - [0, 0, 0.35], c + lateral * 0.35 - [0, 0, 0.35], c + lateral * 0.35 + [0, 0, 0.35], c - lateral * 0.35 + [0, 0, 0.35]], color, Material.POLE)
    return TriangleMesh.concat([cylinder(base, top + [0, 0, 0.35], 0.04, METAL, Material.POLE, sides=5), plate])


def _ring_frames(ring: Polyline, step: float, phase: float, inside_ref) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, headings and road-facing unit normals every ``step`` metres along a closed ring."""
    s = np.arange(phase, ring.length, step)
    p = ring.xy(s)
    h = ring.heading(s)
    n = np.stack([-np.sin(h), np.cos(h)], axis=1)
    probe = p + n * 1.0
    toward_road = np.where(shapely.contains_xy(inside_ref, probe[:, 0], probe[:, 1])[:, None], n, -n)
    return p, h, toward_road


def _rings(geom, min_length: float = 10.0) -> list[Polyline]:
    out = []
    for poly in getattr(geom, "geoms", [geom]):
        for ring in [poly.exterior, *poly.interiors]:
            line = Polyline(np.asarray(ring.simplify(0.1).coords), closed=True)
            if line.length > min_length:
                out.append(line)
    return out


def build_town(cfg: WorldConfig, rng: np.random.Generator, lit: bool) -> Town:
    """Roads plus scenery under ``cfg`` (deterministic given ``rng``). ``lit``: lamps and some
    windows glow (dusk and night)."""
    net = build_network(cfg.roads, rng)
    rc, sc = cfg.roads, cfg.scenery
    kz = rc.kerb_height
    sw = rc.sidewalk_width
    parts = [road_mesh(net, rng)]
    drivable = net.drivable
    shapely.prepare(drivable)
    crossings = [Polygon(c.polygon).buffer(3.5) for c in net.crossings]
    near_crossing = shapely.union_all(crossings) if crossings else Polygon()
    shapely.prepare(near_crossing)
    occupied: list[np.ndarray] = []  # pole-like things on the sidewalk (x, y)

    # -- traffic signals
    heads = []
    for j in net.junctions:
        if j.signal is None:
            continue
        for ai, arm in enumerate(j.arms):
            seg = net.segments[arm.segment]
            a = np.array([np.cos(arm.heading), np.sin(arm.heading)])
            right_in = np.array([-a[1], a[0]])  # right-hand side of traffic driving toward the junction
            p = arm.point + a * (CROSSING_GAP + rc.crossing_width + 0.4)
            base = np.r_[p + right_in * (seg.half_width + 0.5), kz]
            over = np.r_[p + right_in * (seg.lanes_per_dir * rc.lane_width * 0.5), 5.3]
            parts.append(cylinder(base, base + [0, 0, 5.9 - kz], 0.11, METAL, Material.POLE, sides=6))
            parts.append(cylinder(np.r_[base[:2], 5.8], np.r_[over[:2], 5.8], 0.06, METAL, Material.POLE, sides=5))
            lateral = np.r_[right_in, 0.0]
            normal = np.r_[a, 0.0]
            lo = over - 0.18 * np.abs(normal) - 0.18 * np.abs(lateral) - [0, 0, 0.5]
            hi = over + 0.18 * np.abs(normal) + 0.18 * np.abs(lateral) + [0, 0, 0.5]
            parts.append(box(lo, hi, (0.08, 0.08, 0.08), Material.POLE))
            lamps = np.array([over + normal * 0.19 + [0, 0, dz] for dz in (0.3, 0.0, -0.3)])
            heads.append(SignalHead(j.node, ai, lamps, normal, lateral))
            occupied.append(base[:2])

    # -- street lamps and sign poles near the kerb
    lamp_pos = []
    for ring in _rings(drivable.buffer(0.6, quad_segs=4)):
        p, h, toward = _ring_frames(ring, sc.lamp_spacing, rng.uniform(0, sc.lamp_spacing), drivable)
        for pi, ti in zip(p, toward):
            if shapely.contains_xy(near_crossing, *pi):
                continue
            m, light = _lamp(np.r_[pi, kz], ti, rng.uniform(7.0, 8.0), lit)
            parts.append(m)
            lamp_pos.append(light)
            occupied.append(pi)
        p, h, toward = _ring_frames(ring, 3.3 * sc.lamp_spacing, rng.uniform(0, sc.lamp_spacing), drivable)
        for pi, hi, ti in zip(p, h, toward):
            if shapely.contains_xy(near_crossing, *pi) or min((np.linalg.norm(pi - o) for o in occupied), default=9) < 4:
                continue
            parts.append(_sign(np.r_[pi, kz], -np.array([np.cos(hi), np.sin(hi)]) if rng.random() < 0.5 else np.array([np.cos(hi), np.sin(hi)]), rng))
            occupied.append(pi)

    # -- street trees at the back of the sidewalk
    occ = np.array(occupied) if occupied else np.zeros((0, 2))
    for ring in _rings(drivable.buffer(sw - 0.8, quad_segs=4)):
        p, _, _ = _ring_frames(ring, sc.tree_spacing, rng.uniform(0, sc.tree_spacing), drivable)
        for pi in p:
            if rng.random() < 0.4 or shapely.contains_xy(near_crossing, *pi):
                continue
            if len(occ) and np.min(np.linalg.norm(occ - pi, axis=1)) < 3.0:
                continue
            parts.append(_tree(np.r_[pi, kz], rng))

    # -- buildings along the blocks
    keepout = drivable.buffer(sw + 0.3, quad_segs=4)
    shapely.prepare(keepout)
    footprints: list[Polygon] = []
    fp_bounds: list[np.ndarray] = []
    x0, y0, x1, y1 = net.bounds
    for ring in _rings(drivable.buffer(sw, quad_segs=4)):
        s = rng.uniform(0, 5)
        while s < ring.length:
            p, h = ring.xy(s), float(ring.heading(s))
            t = np.array([np.cos(h), np.sin(h)])
            n = np.array([-t[1], t[0]])
            out = n if not shapely.contains_xy(keepout, *(p + n * 2.0)) else -n
            width = rng.uniform(*sc.building_frontage)
            depth = rng.uniform(*sc.building_depth)
            f = p + out * rng.uniform(*sc.building_setback)
            corners = np.array([f - t * width / 2, f + t * width / 2, f + t * width / 2 + out * depth, f - t * width / 2 + out * depth])
            fp = Polygon(corners)
            lo, hi = corners.min(axis=0), corners.max(axis=0)
            ok = lo[0] > x0 + 2 and lo[1] > y0 + 2 and hi[0] < x1 - 2 and hi[1] < y1 - 2 and not keepout.intersects(fp)
            if ok and footprints:
                fb = np.array(fp_bounds)
                close = np.all(fb[:, :2] < hi + 0.5, axis=1) & np.all(fb[:, 2:] > lo - 0.5, axis=1)
                ok = not any(fp.distance(footprints[k]) < 0.5 for k in np.flatnonzero(close))
            if not ok:
                s += 2.0
                continue
            footprints.append(fp)
            fp_bounds.append(np.r_[lo, hi])
            height = float(np.exp(rng.uniform(np.log(sc.building_height[0]), np.log(sc.building_height[1]))))
            parts.append(_building(corners, kz, height, rng, lit))
            s += width + rng.uniform(*sc.building_gap)

    # -- park trees in open ground near the roads
    near = drivable.buffer(90.0, quad_segs=2).difference(drivable.buffer(sw + 1.5, quad_segs=4))
    blocked = shapely.union_all([fp.buffer(2.5) for fp in footprints]) if footprints else Polygon()
    open_ground = near.difference(blocked)
    n_trees = rng.poisson(sc.park_tree_density * open_ground.area)
    if n_trees:
        bx0, by0, bx1, by1 = open_ground.bounds
        cand = rng.uniform([bx0, by0], [bx1, by1], (n_trees * 4, 2))
        cand = cand[shapely.contains_xy(open_ground, cand[:, 0], cand[:, 1])][:n_trees]
        for pi in cand:
            parts.append(_tree(np.r_[pi, kz], rng))

    # -- annotated static objects: cone groups, then parked cars
    objects: list[StaticObject] = []
    blocked_spans: dict[tuple[int, int], list[tuple[float, float]]] = {}
    parking = [seg for seg in net.segments if seg.shoulder > 0]
    road_km = sum(seg.centerline.length for seg in net.segments) / 1000.0
    for _ in range(rng.poisson(sc.cone_groups_per_km * road_km) if parking else 0):
        seg = parking[rng.integers(len(parking))]
        side = int(rng.choice([-1, 1]))
        L = seg.centerline.length
        trim = CROSSING_GAP + rc.crossing_width + STOP_GAP + 3.0
        if L - 2 * trim < 20:
            continue
        s0 = rng.uniform(trim, L - trim - 16)
        n_cones = int(rng.integers(4, 8))
        blocked_spans.setdefault((seg.id, side), []).append((s0 - 3, s0 + 2.2 * n_cones + 3))
        off = side * (seg.half_width - seg.shoulder / 2)
        for k in range(n_cones):
            s = s0 + 2.2 * k + 1.5
            xy = seg.centerline.xy(s) + _left(seg.centerline, s) * off
            objects.append(_cone(len(objects) + 1, xy))
        xy = seg.centerline.xy(s0) + _left(seg.centerline, s0) * off
        yaw = float(seg.centerline.heading(s0)) + np.pi / 2
        objects.append(_barrier(len(objects) + 1, xy, yaw))
    for seg in parking:
        L = seg.centerline.length
        for side in (-1, 1):
            ends = [CROSSING_GAP + rc.crossing_width + STOP_GAP + 2.0 if net.junctions[node].signal is not None else 6.0 for node in seg.nodes]
            s = ends[0] + rng.uniform(0, 3)
            off = side * (seg.half_width - seg.shoulder / 2)
            while True:
                model = car(rng, len(objects) + 1)
                length = model.size[1]
                if s + length > L - ends[1]:
                    break
                spans = blocked_spans.get((seg.id, side), [])
                if rng.random() < sc.parked_fill and not any(a < s + length and s < b for a, b in spans):
                    sc_mid = s + length / 2
                    xy = seg.centerline.xy(sc_mid) + _left(seg.centerline, sc_mid) * (off + rng.uniform(-0.15, 0.15))
                    yaw = float(seg.centerline.heading(sc_mid)) + (0.0 if side < 0 else np.pi) + rng.uniform(-0.03, 0.03)
                    mat = object_frame(xy[0], xy[1], yaw)
                    mesh = lit_vehicle(model, 0.0, 0.0).transformed(mat)
                    objects.append(StaticObject(len(objects) + 1, model.category, ("vehicle.parked",), np.r_[xy, model.size[2] / 2], model.size, yaw, mesh))
                s += max(rng.uniform(*sc.parked_spacing), length + 0.9)
    static = TriangleMesh.concat(parts + [o.mesh for o in objects])
    return Town(net, static, objects, np.array(lamp_pos).reshape(-1, 3), heads, lit, _signal_geometry(heads))


def _left(line: Polyline, s: float) -> np.ndarray:
    h = float(line.heading(s))
    return np.array([-np.sin(h), np.cos(h)])


def _cone(instance: int, xy: np.ndarray) -> StaticObject:
    base = np.r_[xy, 0.0]
    parts = [
        box(base - [0.2, 0.2, 0], base + [0.2, 0.2, 0.04], (0.1, 0.1, 0.1), Material.BARRIER, instance),
        cone(base + [0, 0, 0.04], 0.16, 0.66, CONE, Material.BARRIER, instance, sides=10),
    ]
    return StaticObject(instance, "movable_object.trafficcone", (), np.r_[xy, 0.35], np.array([0.4, 0.4, 0.7]), 0.0, TriangleMesh.concat(parts))


def _barrier(instance: int, xy: np.ndarray, yaw: float) -> StaticObject:
    size = np.array([0.45, 1.8, 1.0])  # w, l, h; length along the barrier's heading
    parts = []
    for k in range(6):  # red/white stripes along the length
        x0 = -0.9 + 0.3 * k
        color = (0.8, 0.08, 0.05) if k % 2 == 0 else (0.9, 0.9, 0.9)
        parts.append(box((x0, -0.08, 0.55), (x0 + 0.3, 0.08, 1.0), color, Material.BARRIER, instance))
    for x in (-0.8, 0.8):
        parts.append(box((x - 0.06, -0.225, 0.0), (x + 0.06, 0.225, 0.55), (0.8, 0.8, 0.8), Material.BARRIER, instance))
    m = TriangleMesh.concat(parts).transformed(object_frame(xy[0], xy[1], yaw))
    return StaticObject(instance, "movable_object.barrier", (), np.r_[xy, 0.5], size, yaw, m)


_SIGNAL_COLORS = np.array([(1.0, 0.1, 0.05), (1.0, 0.65, 0.05), (0.1, 1.0, 0.4)], np.float32)  # red, yellow, green
_SIGNAL_STATES = {"red": 0, "yellow": 1, "green": 2}


def _signal_geometry(heads: list[SignalHead]) -> TriangleMesh:
    """Quads of every head's three lamps (2 faces per lamp, heads in order, lamps red/yellow/green)."""
    parts = []
    for head in heads:
        for k in range(3):
            c = head.lamps[k]
            lat = head.lateral * 0.11
            up = np.array([0.0, 0.0, 0.11])
            corners = [c + lat - up, c - lat - up, c - lat + up, c + lat + up]
            if np.dot(np.cross(corners[1] - corners[0], corners[2] - corners[0]), head.normal) < 0:
                corners = corners[::-1]
            parts.append(quad(corners, _SIGNAL_COLORS[k], Material.LAMP))
    return TriangleMesh.concat(parts)


def signal_mesh(town: Town, t: float) -> TriangleMesh:
    """The signal lamps at time ``t`` (s): each head's active lamp lit, the other two dark."""
    g = town.signal_geometry
    if not g.num_faces:
        return g
    on = np.zeros((len(town.signal_heads), 3), bool)
    for i, head in enumerate(town.signal_heads):
        on[i, _SIGNAL_STATES[town.network.junctions[head.node].signal.state(head.arm, t)]] = True
    on = np.repeat(on.reshape(-1), 2)
    colors = np.where(on[:, None], g.face_color, g.face_color * 0.12)
    return TriangleMesh(g.vertices, g.faces, colors, g.face_instance, g.face_material, on.astype(np.float32))
