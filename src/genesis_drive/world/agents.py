"""SynthTown traffic: vehicles, cyclists, the ego car and pedestrians, simulated on the road network.

Vehicles (and cyclists) follow lane centre lines and pick a random successor at each junction.
Longitudinal control is the Intelligent Driver Model (IDM) against the nearest obstacle ahead:
the next vehicle on the same lanes, a red or yellow signal's stop line, or any agent inside the
vehicle's swept corridor along its route (crossing traffic, pedestrians on crossings). Mutual
corridor conflicts are resolved by letting the agent nearer the conflict go first. Speed is also
limited ahead of curves (connector speed limits). Pedestrians walk along the sidewalks (keeping to
the right), stand, wait at crossings for the walk phase and cross.

Positions are global (metres), headings radians, speeds m/s, times seconds since the start of the
simulation. Every random choice comes from the generator passed in, so a run is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import TrafficConfig
from .pedestrians import Body, box_size, random_body
from .roads import Lane, RoadNetwork
from .vehicles import VehicleModel, bicycle, bus, car, truck

__all__ = ["PED_FIELDS", "VEH_FIELDS", "Recording", "Simulation", "Vehicle", "Walker"]

IDM_DECEL = 2.5  # comfortable deceleration, m/s^2
IDM_MIN_GAP = 2.0  # m
IDM_HEADWAY = 1.3  # s
MAX_DECEL = 8.0
CURVE_DECEL = 1.5  # m/s^2 used to slow down ahead of curves
VEH_FIELDS = ("x", "y", "yaw", "speed", "accel", "crank")
PED_FIELDS = ("x", "y", "z", "yaw", "speed", "phase", "amplitude")


@dataclass(eq=False)
class Vehicle:
    """A lane-following agent. kind: "car" | "truck" | "bus" | "cyclist" | "ego".

    instance: annotation instance id (0 for the ego). lateral: metres left of the lane centre.
    desire: multiple of the speed limit this driver aims for. route: upcoming lane ids.
    """

    instance: int
    kind: str
    model: VehicleModel
    lane: int
    s: float
    v: float
    desire: float
    lateral: float = 0.0
    max_accel: float = 1.5
    route: list[int] = field(default_factory=list)
    accel: float = 0.0
    crank: float = 0.0
    rider: Body | None = None
    # cached leader constraint from the last decision step: (gap m, leader speed m/s)
    obstacle: tuple[float, float] = (np.inf, 0.0)
    v_limit: float = 30.0
    committed: int = -1  # lane whose stop line it will pass although the signal is no longer green

    @property
    def length(self) -> float:
        return float(self.model.size[1])

    @property
    def half_width(self) -> float:
        return float(self.model.size[0]) / 2


@dataclass(eq=False)
class Walker:
    """A pedestrian. mode: "walk" | "stand" | "wait" | "cross". path: sidewalk path index;
    s: arc length (m) on it; direction: +1 / -1 along the path; lateral: metres to the walker's right."""

    instance: int
    body: Body
    size: np.ndarray
    category: str
    speed: float
    mode: str
    path: int
    s: float
    direction: int
    lateral: float
    phase: float = 0.0
    crossing: int = -1
    cross_end: int = 0
    progress: float = 0.0
    stand_until: float = np.inf


@dataclass
class Recording:
    """States of every agent at every recorded tick.

    times: (T,) seconds since recording start. veh: (T, Nv, 6) :data:`VEH_FIELDS`; ped:
    (T, Np, 7) :data:`PED_FIELDS` (x, y, z metres global, yaw rad, speed m/s, gait phase rad,
    stride amplitude 0..1). vehicles[ego_index] is the ego car.
    """

    times: np.ndarray
    vehicles: list[Vehicle]
    walkers: list[Walker]
    veh: np.ndarray
    ped: np.ndarray
    ego_index: int = 0


def _lane_xy(lane: Lane, s: float, lateral: float) -> tuple[float, float, float]:
    """(x, y, heading) of a point ``lateral`` metres left of ``lane`` at arc length ``s``."""
    x, y, h = lane.line.at(s)
    if lateral:
        x, y = x - lateral * math.sin(h), y + lateral * math.cos(h)
    return x, y, h


class Simulation:
    """The traffic of one town. Call :meth:`run` once; agents never enter or leave the town."""

    def __init__(self, net: RoadNetwork, cfg: TrafficConfig, rng: np.random.Generator, first_instance: int, hz: int):
        self.net = net
        self.cfg = cfg
        self.rng = rng
        self.hz = hz
        self.dt = 1.0 / hz
        self.decide_every = max(hz // 10, 1)  # obstacle decisions at 10 Hz, kinematics every tick
        self._samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._predecessors: dict[int, list[int]] = {lane.id: [] for lane in net.lanes}
        for lane in net.lanes:
            for succ in lane.successors:
                self._predecessors[succ].append(lane.id)
        self.t = 0.0
        self.vehicles: list[Vehicle] = []
        self.walkers: list[Walker] = []
        self._next_instance = first_instance
        self._crossing_ends = self._attach_crossings()
        self._spawn()

    # -- setup -------------------------------------------------------------------------------
    def _instance(self) -> int:
        self._next_instance += 1
        return self._next_instance - 1

    def _attach_crossings(self) -> dict[int, list[tuple[float, int, int]]]:
        """For each sidewalk path: (arc length, crossing id, crossing end) of the crossings it meets."""
        out: dict[int, list[tuple[float, int, int]]] = {i: [] for i in range(len(self.net.walk_paths))}
        self._end_on_path: dict[tuple[int, int], tuple[int, float]] = {}
        for c in self.net.crossings:
            for e in (0, 1):
                best = None
                for pi, path in enumerate(self.net.walk_paths):
                    s, d = path.project(c.ends[e][None])
                    if best is None or d[0] < best[2]:
                        best = (pi, float(s[0]), float(d[0]))
                if best is not None and best[2] < 2.0:
                    out[best[0]].append((best[1], c.id, e))
                    self._end_on_path[(c.id, e)] = (best[0], best[1])
        return out

    def _spawn(self) -> None:
        cfg, rng, net = self.cfg, self.rng, self.net
        road = net.road_lanes()
        lane_km = sum(lane.length for lane in road) / 1000.0
        occupied: dict[int, list[tuple[float, float]]] = {}

        def free_spot(lane: Lane, length: float) -> float | None:
            for _ in range(20):
                s = float(rng.uniform(length / 2, max(lane.stop_s - length / 2 - 1.0, length / 2 + 0.1)))
                if all(abs(s - s2) > (length + l2) / 2 + 6.0 for s2, l2 in occupied.get(lane.id, [])):
                    occupied.setdefault(lane.id, []).append((s, length))
                    return s
            return None

        # the ego first, on a long lane
        long_lanes = [lane for lane in road if lane.length > 40]
        ego_lane = long_lanes[rng.integers(len(long_lanes))]
        ego_model = car(rng, 0)
        s = float(rng.uniform(5.0, max(ego_lane.length * 0.5, 6.0)))
        occupied[ego_lane.id] = [(s, 30.0)]
        desire = float(rng.uniform(*cfg.ego_speed)) / ego_lane.speed_limit
        self.vehicles.append(Vehicle(0, "ego", ego_model, ego_lane.id, s, 0.6 * ego_lane.speed_limit * desire, desire))
        n_veh = rng.poisson(cfg.vehicles_per_km * lane_km)
        for _ in range(n_veh):
            u = rng.random()
            inst = self._instance()
            if u < cfg.bus_fraction:
                kind, model, acc = "bus", bus(rng, inst), 1.0
            elif u < cfg.bus_fraction + cfg.truck_fraction:
                kind, model, acc = "truck", truck(rng, inst), 1.1
            else:
                kind, model, acc = "car", car(rng, inst), float(rng.uniform(1.3, 2.0))
            lane = road[rng.integers(len(road))]
            s = free_spot(lane, model.size[1])
            if s is None:
                self._next_instance -= 1
                continue
            desire = float(rng.uniform(0.85, 1.1)) * (0.9 if kind != "car" else 1.0)
            self.vehicles.append(Vehicle(inst, kind, model, lane.id, s, desire * lane.speed_limit * rng.uniform(0.3, 1.0), desire, 0.0, acc))
        n_cyc = rng.poisson(cfg.cyclists_per_km * lane_km)
        for _ in range(n_cyc):
            lane = road[rng.integers(len(road))]
            seg = net.segments[lane.segment]
            if lane.index != seg.lanes_per_dir - 1:
                continue
            inst = self._instance()
            rider = random_body(rng)
            model = bicycle(rng, inst, rider)
            s = free_spot(lane, model.size[1])
            if s is None:
                self._next_instance -= 1
                continue
            speed = float(rng.uniform(4.0, 6.5))
            lateral = -(net.config.lane_width / 2 - 0.55)
            self.vehicles.append(Vehicle(inst, "cyclist", model, lane.id, s, speed, speed / lane.speed_limit, lateral, 1.0, rider=rider))
        walk_km = sum(p.length for p in net.walk_paths) / 1000.0
        for _ in range(rng.poisson(cfg.pedestrians_per_km * walk_km)):
            child = rng.random() < cfg.child_fraction
            body = random_body(rng, child)
            path = int(rng.integers(len(net.walk_paths)))
            stand = rng.random() < cfg.standing_fraction
            self.walkers.append(
                Walker(
                    instance=self._instance(),
                    body=body,
                    size=box_size(body),
                    category="human.pedestrian.child" if child else "human.pedestrian.adult",
                    speed=float(rng.uniform(0.8, 1.1) if child else rng.uniform(1.1, 1.6)),
                    mode="stand" if stand else "walk",
                    path=path,
                    s=float(rng.uniform(0, net.walk_paths[path].length)),
                    direction=int(rng.choice([-1, 1])),
                    lateral=float(rng.uniform(0.25, 0.8)),
                    phase=float(rng.uniform(0, 2 * np.pi)),
                )
            )
        for veh in self.vehicles:
            self._extend_route(veh)

    # -- vehicles ----------------------------------------------------------------------------
    def _extend_route(self, veh: Vehicle, n: int = 4) -> None:
        last = veh.route[-1] if veh.route else veh.lane
        while len(veh.route) < n:
            succ = self.net.lanes[last].successors
            if not succ:
                break
            weights = np.array([2.0 if self.net.lanes[k].turn in ("straight", "") else 1.0 for k in succ])
            last = succ[int(self.rng.choice(len(succ), p=weights / weights.sum()))]
            veh.route.append(last)

    def _lane_samples(self, lid: int) -> tuple[np.ndarray, np.ndarray]:
        """Points (K, 2) and left normals (K, 2) of a lane at every whole metre of arc length (cached)."""
        if lid not in self._samples:
            line = self.net.lanes[lid].line
            ss = np.arange(0.0, line.length, 1.0)
            h = line.heading(ss)
            self._samples[lid] = (line.xy(ss), np.stack([-np.sin(h), np.cos(h)], axis=1))
        return self._samples[lid]

    def _path_points(self, veh: Vehicle, ahead: float) -> tuple[np.ndarray, np.ndarray]:
        """Points (K, 2) about 1 m apart along the vehicle's route (at its lateral offset) from its
        centre to ``ahead`` metres past its front bumper, and their distances (K,) from the front
        bumper (negative beside the vehicle, so agents merging alongside are seen too)."""
        pts, dists = [], []
        s0 = veh.s  # vehicle centre, as arc length on the current lane
        covered = -veh.length / 2  # route distance from the front bumper to s0
        for lid in [veh.lane] + veh.route:
            length = self.net.lanes[lid].length
            if s0 >= length:
                s0 -= length
                continue
            p, n = self._lane_samples(lid)
            k0 = int(np.ceil(s0))
            k1 = min(len(p), int(s0 + ahead - covered) + 1)
            if k1 > k0:
                pts.append(p[k0:k1] + veh.lateral * n[k0:k1] if veh.lateral else p[k0:k1])
                dists.append(covered + np.arange(k0, k1) - s0)
            covered += length - s0
            s0 = 0.0
            if covered >= ahead:
                break
        if not pts:
            return np.zeros((0, 2)), np.zeros(0)
        return np.concatenate(pts), np.concatenate(dists)

    def _decide(self) -> None:
        """Update each vehicle's obstacle (gap, speed) and look-ahead speed limit."""
        net = self.net
        vehs = self.vehicles
        n = len(vehs)
        pos = np.zeros((n, 2))
        head = np.zeros(n)
        for i, v in enumerate(vehs):
            x, y, head[i] = _lane_xy(net.lanes[v.lane], v.s, v.lateral)
            pos[i] = (x, y)
        ped_pos = np.array([self._walker_xy(w)[:2] for w in self.walkers]).reshape(-1, 2)
        by_lane: dict[int, list[int]] = {}
        for i, v in enumerate(vehs):
            by_lane.setdefault(v.lane, []).append(i)
        conflict = np.full((n, n), np.inf)
        base_gap = np.full(n, np.inf)
        base_speed = np.zeros(n)
        for i, v in enumerate(vehs):
            ahead = max(12.0, v.v * 3.0 + 10.0)
            gap, lead_v = np.inf, 0.0
            # (a) same lanes along the route, and lanes merging into them (ordered by the
            # distance still to go to the merge point)
            offset = -v.s
            same_lane_ids = set()
            path = [v.lane] + v.route
            for k, lid in enumerate(path):
                for j in by_lane.get(lid, []):
                    if j == i:
                        continue
                    u = vehs[j]
                    d = offset + u.s
                    if d > 0:
                        g = d - (u.length + v.length) / 2
                        same_lane_ids.add(j)
                        if g < gap:
                            gap, lead_v = g, u.v
                if k > 0:
                    for pred in self._predecessors[lid]:
                        if pred == path[k - 1]:
                            continue
                        for j in by_lane.get(pred, []):
                            u = vehs[j]
                            d = offset - (net.lanes[pred].length - u.s)
                            if not (d > 0 or (d == 0 and j < i)):
                                same_lane_ids.add(j)  # behind us in merge order: it yields to us
                            else:  # ahead of us in merge order (and still in the corridor check)
                                g, lead = d - (u.length + v.length) / 2, u.v
                                wait = offset - v.length / 2 - 1.0
                                if g < 1.0 and wait > -0.5:  # side by side in merge order: wait before the merge point
                                    g, lead = wait, 0.0
                                if g < gap:
                                    gap, lead_v = g, lead
                offset += net.lanes[lid].length
                if offset > ahead + 40:
                    break
            # (b) signal at the end of the current lane (or the next road lane, if close)
            offset = 0.0
            for lid in [v.lane] + v.route[:2]:
                lane = net.lanes[lid]
                rel = offset + (lane.stop_s - (v.s if lid == v.lane else 0.0)) - v.length / 2
                if lane.kind == "road" and lane.stop_s < lane.length and rel > -0.5:
                    if lid == v.committed and (v.v > 1.0 or rel <= 0):
                        break  # decided to clear the junction on yellow: keep going
                    v.committed = -1
                    state = net.junctions[lane.node].signal.state(lane.arm, self.t)
                    moving = v.v > 1.0
                    if state == "yellow" and moving and rel <= v.v * v.v / (2 * 3.5):
                        v.committed = lid  # too close to stop comfortably: go on
                    elif state == "red" and moving and rel <= v.v * v.v / (2 * 6.0):
                        v.committed = lid  # turned red too close to stop at all: clear the junction
                    elif state != "green" and rel < gap:
                        gap, lead_v = max(rel, 0.0), 0.0
                    break
                offset += lane.length - (v.s if lid == v.lane else 0.0)
                if offset > ahead + 40:
                    break
            # (c) corridor: agents near the route ahead
            pts, dists = self._path_points(v, ahead)
            if len(pts):
                near = [j for j in np.flatnonzero(np.linalg.norm(pos - pos[i], axis=1) < ahead + 12) if j != i and j not in same_lane_ids]
                if near:
                    dd = np.linalg.norm(pts[:, None] - pos[near][None], axis=2)  # (K, M)
                    k = np.argmin(dd, axis=0)
                    for m, j in enumerate(near):
                        if dd[k[m], m] < v.half_width + vehs[j].half_width + 0.4:
                            conflict[i, j] = max(dists[k[m]] - vehs[j].length / 2, 0.0)
                if len(ped_pos):
                    pn = np.flatnonzero(np.linalg.norm(ped_pos - pos[i], axis=1) < ahead + 5)
                    if len(pn):
                        dd = np.linalg.norm(pts[:, None] - ped_pos[pn][None], axis=2)
                        k = np.argmin(dd, axis=0)
                        hit = dd[k, np.arange(len(pn))] < v.half_width + 0.7
                        if hit.any():
                            g = max(float(np.min(dists[k[hit]])) - 0.5, 0.0)
                            if g < gap:
                                gap, lead_v = g, 0.0
            base_gap[i], base_speed[i] = gap, lead_v
        # mutual conflicts: the agent nearer the conflict point goes first
        for i in range(n):
            for j in np.flatnonzero(np.isfinite(conflict[i])):
                mutual = np.isfinite(conflict[j, i])
                yields = not mutual or conflict[i, j] > conflict[j, i] or (conflict[i, j] == conflict[j, i] and i > j)
                if yields and conflict[i, j] < base_gap[i]:
                    base_gap[i], base_speed[i] = conflict[i, j], 0.0
        for i, v in enumerate(vehs):
            v.obstacle = (float(base_gap[i]), float(base_speed[i]))
            lim = net.lanes[v.lane].speed_limit
            dist = net.lanes[v.lane].length - v.s
            for lid in v.route[:3]:
                lane = net.lanes[lid]
                lim = min(lim, np.sqrt(lane.speed_limit**2 + 2 * CURVE_DECEL * max(dist - v.length / 2, 0.0)))
                dist += lane.length
            v.v_limit = float(lim)

    def _step_vehicles(self) -> None:
        dt = self.dt
        for v in self.vehicles:
            v0 = max(v.desire * v.v_limit, 0.5)
            gap, lead_v = v.obstacle
            # the gap shrinks as both move; keep it current between decisions
            acc = v.max_accel * (1 - (v.v / v0) ** 4)
            if np.isfinite(gap):
                s_star = IDM_MIN_GAP + max(0.0, v.v * IDM_HEADWAY + v.v * (v.v - lead_v) / (2 * np.sqrt(v.max_accel * IDM_DECEL)))
                acc -= v.max_accel * (s_star / max(gap, 0.1)) ** 2
            acc = float(np.clip(acc, -MAX_DECEL, v.max_accel))
            v_new = max(v.v + acc * dt, 0.0)
            ds = 0.5 * (v.v + v_new) * dt
            v.accel = (v_new - v.v) / dt
            v.v = v_new
            v.s += ds
            if np.isfinite(gap):
                v.obstacle = (gap - ds + lead_v * dt, lead_v)
            if v.kind == "cyclist":
                v.crank += ds / 0.45  # ~2.8 m per crank turn
            while v.s > self.net.lanes[v.lane].length and v.route:
                v.s -= self.net.lanes[v.lane].length
                v.lane = v.route.pop(0)
                self._extend_route(v)
            if v.s > self.net.lanes[v.lane].length:  # no successor (cannot happen on a closed network)
                v.s = self.net.lanes[v.lane].length
                v.v = 0.0

    # -- pedestrians -------------------------------------------------------------------------
    def _walker_xy(self, w: Walker) -> tuple[float, float, float, float]:
        """(x, y, heading, ground height) of a walker."""
        kz = self.net.config.kerb_height
        if w.mode == "cross":
            c = self.net.crossings[w.crossing]
            a, b = c.ends[w.cross_end], c.ends[1 - w.cross_end]
            length = float(np.linalg.norm(b - a))
            d = (b - a) / length
            p = a + d * w.progress + np.array([d[1], -d[0]]) * (w.lateral - 0.5)
            on_road = abs(w.progress - length / 2) < c.half_road
            return float(p[0]), float(p[1]), math.atan2(d[1], d[0]), 0.0 if on_road else kz
        x, y, h = self.net.walk_paths[w.path].at(w.s)
        r = -w.direction * w.lateral  # keep to the right of the walking direction
        heading = h if w.direction > 0 else h + math.pi
        return x - r * math.sin(h), y + r * math.cos(h), heading, kz

    def _step_walkers(self) -> None:
        dt, rng = self.dt, self.rng
        for w in self.walkers:
            if w.mode == "stand":
                if self.t >= w.stand_until:
                    w.mode = "walk"
                continue
            if w.mode == "wait":
                c = self.net.crossings[w.crossing]
                sig = self.net.junctions[c.node].signal
                if sig.state(c.arm, self.t) == "red" and sig.time_to_green(c.arm, self.t) > 7.0:
                    w.mode, w.progress = "cross", 0.0
                continue
            step = w.speed * dt
            w.phase = (w.phase + 2 * np.pi * step / (1.35 * w.body.s)) % (2 * np.pi)
            if w.mode == "cross":
                c = self.net.crossings[w.crossing]
                w.progress += step
                if w.progress >= np.linalg.norm(c.ends[1] - c.ends[0]):
                    target = self._end_on_path.get((c.id, 1 - w.cross_end))
                    if target is None:
                        w.progress = 0.0
                        w.cross_end = 1 - w.cross_end
                        continue
                    w.path, w.s = target
                    w.direction = int(rng.choice([-1, 1]))
                    w.mode = "walk"
                    # step past the crossing so the walker does not take it again at once
                    w.s = (w.s + w.direction * 1.0) % self.net.walk_paths[w.path].length
                continue
            path = self.net.walk_paths[w.path]
            s_new = w.s + w.direction * step
            for s_c, cid, end in self._crossing_ends.get(w.path, []):
                lo, hi = sorted((w.s, s_new))
                passed = lo <= s_c < hi or lo <= s_c + path.length < hi or lo <= s_c - path.length < hi
                if passed and rng.random() < self.cfg.crossing_prob:
                    w.mode, w.crossing, w.cross_end, w.s = "wait", cid, end, s_c
                    break
            else:
                w.s = s_new % path.length
                if rng.random() < 0.02 * dt:  # occasionally stop for a while
                    w.mode, w.stand_until = "stand", self.t + float(rng.uniform(3, 10))

    # -- running -----------------------------------------------------------------------------
    def _snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        veh = np.zeros((len(self.vehicles), len(VEH_FIELDS)))
        for i, v in enumerate(self.vehicles):
            x, y, h = _lane_xy(self.net.lanes[v.lane], v.s, v.lateral)
            veh[i] = (x, y, h, v.v, v.accel, v.crank)
        ped = np.zeros((len(self.walkers), len(PED_FIELDS)))
        for i, w in enumerate(self.walkers):
            x, y, h, z = self._walker_xy(w)
            moving = w.mode in ("walk", "cross")
            ped[i] = (x, y, z, h, w.speed if moving else 0.0, w.phase, 1.0 if moving else 0.0)
        return veh, ped

    def step(self, tick: int) -> None:
        if tick % self.decide_every == 0:
            self._decide()
        self._step_vehicles()
        self._step_walkers()
        self.t += self.dt

    def run(self, preroll_ticks: int, ticks: int, progress=None) -> Recording:
        """Simulate ``preroll_ticks`` unrecorded ticks, then record ``ticks`` ticks (state *before* each step)."""
        for k in range(preroll_ticks):
            self.step(k)
        veh = np.zeros((ticks, len(self.vehicles), len(VEH_FIELDS)))
        ped = np.zeros((ticks, len(self.walkers), len(PED_FIELDS)))
        for k in range(ticks):
            veh[k], ped[k] = self._snapshot()
            self.step(preroll_ticks + k)
            if progress is not None:
                progress(1)
        return Recording(np.arange(ticks) * self.dt, self.vehicles, self.walkers, veh, ped, 0)
