"""One SynthTown scene: its town, its simulated traffic and its appearance, and what each tick looks
like (ego pose, moving meshes, lights, annotated objects).

Ticks are steps of the simulation clock (``traffic.sim_hz``); tick 0 is the scene's first frame.
Timestamps are integer microseconds. Everything is in the global frame unless a name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.geometry import Pose
from ..data.schema import HumanPose
from .agents import Recording, Simulation
from .config import WorldConfig
from .lighting import LIGHTING_PRESETS, Light, Lighting, headlights, street_lamp, with_weather
from .mesh import Material, TriangleMesh
from .pedestrians import body_mesh, cycling_pose, standing_pose, walking_pose
from .scenery import Town, build_town, object_frame, signal_mesh
from .vehicles import lit

__all__ = ["BASE_TIMESTAMP", "REAR_AXLE", "Scene", "SceneObject", "build_scene", "human_pose", "scene_rng"]

#: Timestamp (us) of scene 0's first frame; scene i starts i * 10^9 us (~17 min) later.
BASE_TIMESTAMP = 1_600_000_000_000_000
#: Rear axle (ego frame origin) relative to the ego car's box centre, metres along its heading.
REAR_AXLE = -1.5
_MARGIN_TICKS = 3  # recorded ticks before tick 0 and after the last tick (LiDAR sweeps straddle them)
_RENDER_RANGE = 160.0  # metres: moving vehicles farther from the ego are left out of the frame
_PEDESTRIAN_RANGE = 100.0  # metres: pedestrians farther away (< 8 px tall at 640x360) likewise
STREAMS = {"town": 0, "traffic": 1, "appearance": 2, "faults": 3, "lidar": 4}


def scene_rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """The random generator of one named stream of scene ``index`` under the run's ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), STREAMS[stream]]))


@dataclass(frozen=True, eq=False)
class SceneObject:
    """An annotated object at one tick. center (3,), size (w, l, h), yaw, velocity (3,) m/s;
    keypoints (17, 3) for pedestrians; mesh: its faces at this tick (for visibility sampling)."""

    instance: int
    category: str
    attributes: tuple[str, ...]
    center: np.ndarray
    size: np.ndarray
    yaw: float
    velocity: np.ndarray
    mesh: TriangleMesh
    keypoints: np.ndarray | None = None

    @property
    def track(self) -> str:
        return f"obj-{self.instance:04d}"


@dataclass(eq=False)
class Scene:
    """A scene ready to be rendered. ``ticks``: number of scene ticks; ``lighting``: base lighting
    (time of day + weather, without this frame's lamps); ``time_of_day`` / ``weather``: names."""

    config: WorldConfig
    index: int
    name: str
    location: str
    town: Town
    recording: Recording
    time_of_day: str
    weather: str
    lighting: Lighting
    ticks: int

    @property
    def hz(self) -> int:
        return self.config.traffic.sim_hz

    def timestamp(self, tick: int) -> int:
        """Microseconds of a tick (integer arithmetic, so every sensor at one tick agrees)."""
        return BASE_TIMESTAMP + self.index * 1_000_000_000 + (tick * 1_000_000 + self.hz // 2) // self.hz

    def _row(self, tick: int) -> int:
        return tick + _MARGIN_TICKS

    # -- ego ------------------------------------------------------------------------------------
    def ego_xy_yaw(self, times: np.ndarray) -> np.ndarray:
        """Ego (rear axle) x, y, yaw (N, 3) at ``times`` (s since tick 0), interpolated."""
        rec = self.recording
        t = (np.arange(len(rec.times)) - _MARGIN_TICKS) / self.hz
        st = rec.veh[:, rec.ego_index]
        yaw = np.unwrap(st[:, 2])
        x = np.interp(times, t, st[:, 0]) + REAR_AXLE * np.cos(np.interp(times, t, yaw))
        y = np.interp(times, t, st[:, 1]) + REAR_AXLE * np.sin(np.interp(times, t, yaw))
        return np.stack([x, y, np.interp(times, t, yaw)], axis=-1)

    def ego_pose(self, tick: int) -> Pose:
        """Ego frame -> global at a tick."""
        x, y, yaw = self.ego_xy_yaw(np.array([tick / self.hz]))[0]
        return Pose.from_xy_yaw(x, y, yaw)

    def ego_matrices(self, times: np.ndarray) -> np.ndarray:
        """Ego -> global 4x4 matrices (N, 4, 4) at ``times`` (s)."""
        s = self.ego_xy_yaw(times)
        m = np.tile(np.eye(4), (len(s), 1, 1))
        c, sn = np.cos(s[:, 2]), np.sin(s[:, 2])
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -sn, sn, c
        m[:, 0, 3], m[:, 1, 3] = s[:, 0], s[:, 1]
        return m

    # -- moving things ----------------------------------------------------------------------------
    def objects(self, tick: int, center_xy: np.ndarray | None = None, radius: float = np.inf, pedestrian_radius: float | None = None) -> list[SceneObject]:
        """Every annotated object (static ones, vehicles except the ego, cyclists, pedestrians) at a
        tick, optionally only those within ``radius`` metres (x-y) of ``center_xy`` (pedestrians:
        within ``pedestrian_radius``, default ``radius``)."""
        rec, row = self.recording, self._row(tick)
        t = tick / self.hz
        out: list[SceneObject] = []

        def near(xy, r: float = radius) -> bool:
            return center_xy is None or np.hypot(xy[0] - center_xy[0], xy[1] - center_xy[1]) <= r

        ped_radius = radius if pedestrian_radius is None else pedestrian_radius

        for o in self.town.objects:
            if near(o.center):
                out.append(SceneObject(o.instance, o.category, o.attributes, o.center, o.size, o.yaw, np.zeros(3), o.mesh))
        night = self.town.lit
        for i, v in enumerate(rec.vehicles):
            if i == rec.ego_index:
                continue
            x, y, yaw, speed, accel, crank = rec.veh[row, i]
            if not near((x, y)):
                continue
            frame = object_frame(x, y, yaw)
            vel = np.array([speed * np.cos(yaw), speed * np.sin(yaw), 0.0])
            if v.kind == "cyclist":
                mesh = TriangleMesh.concat([v.model.mesh, body_mesh(v.rider, cycling_pose(v.rider, crank), v.instance, Material.CYCLIST)])
                attrs = ("cycle.with_rider",)
            else:
                braking = accel < -1.0
                mesh = lit(v.model, 1.0 if night else 0.0, 1.0 if braking else (0.5 if night else 0.0))
                attrs = ("vehicle.moving",) if speed > 0.5 else ("vehicle.stopped",)
            size = v.model.size
            out.append(SceneObject(v.instance, v.model.category, attrs, np.array([x, y, size[2] / 2]), size, float(yaw), vel, mesh.transformed(frame)))
        for i, w in enumerate(rec.walkers):
            x, y, z, yaw, speed, phase, amp = rec.ped[row, i]
            if not near((x, y), ped_radius):
                continue
            kp = walking_pose(w.body, phase, amp) if amp > 0 else standing_pose(w.body, t + i)
            frame = object_frame(x, y, yaw, z)
            kp_g = kp @ frame[:3, :3].T + frame[:3, 3]
            vel = np.array([speed * np.cos(yaw), speed * np.sin(yaw), 0.0])
            attrs = ("pedestrian.moving",) if speed > 0.2 else ("pedestrian.standing",)
            mesh = body_mesh(w.body, kp, w.instance).transformed(frame)
            out.append(SceneObject(w.instance, w.category, attrs, np.array([x, y, z + w.size[2] / 2]), w.size, float(yaw), vel, mesh, kp_g))
        return out

    def dynamic_mesh(self, tick: int, ego_xy: np.ndarray) -> tuple[TriangleMesh, list[SceneObject]]:
        """Faces that move or change at a tick (agents near the ego, signal lamps) and the objects."""
        objs = self.objects(tick, ego_xy, _RENDER_RANGE, _PEDESTRIAN_RANGE)
        moving = [o.mesh for o in objs if o.instance > len(self.town.objects)]
        return TriangleMesh.concat(moving + [signal_mesh(self.town, tick / self.hz)]), objs

    def frame_lighting(self, tick: int, ego: Pose) -> Lighting:
        """Base lighting plus this tick's lamps and headlights (dusk and night only)."""
        if not self.town.lit:
            return self.lighting
        lights: list[Light] = []
        ego_xy = ego.translation[:2]
        lamps = self.town.lamps
        if len(lamps):
            d = np.linalg.norm(lamps[:, :2] - ego_xy, axis=1)
            lights += [street_lamp(p) for p in lamps[np.argsort(d)[:12]] if np.linalg.norm(p[:2] - ego_xy) < 90]
        lights += list(headlights(ego.matrix(), front_x=3.4, half_track=0.7, height=0.65))
        rec, row = self.recording, self._row(tick)
        cars = [(np.hypot(*(rec.veh[row, i, :2] - ego_xy)), i) for i, v in enumerate(rec.vehicles) if i != rec.ego_index and v.kind != "cyclist"]
        for _, i in sorted(cars)[:6]:
            x, y, yaw = rec.veh[row, i, :3]
            v = rec.vehicles[i]
            m = object_frame(x, y, yaw)
            lights += list(headlights(m, front_x=float(v.model.size[1] / 2), half_track=float(v.model.size[0] / 2 - 0.3), height=float(v.model.headlight_offset[2])))
        return self.lighting.with_lights(lights)


def build_scene(cfg: WorldConfig, index: int) -> Scene:
    """Town, traffic and appearance of scene ``index`` of a run (deterministic in ``cfg.seed``)."""
    app = scene_rng(cfg.seed, index, "appearance")
    tods, tw = zip(*cfg.appearance.time_of_day)
    weathers, ww = zip(*cfg.appearance.weather)
    tod = str(tods[app.choice(len(tods), p=np.array(tw) / sum(tw))])
    weather = str(weathers[app.choice(len(weathers), p=np.array(ww) / sum(ww))])
    lighting = with_weather(LIGHTING_PRESETS[tod], weather)
    town = build_town(cfg, scene_rng(cfg.seed, index, "town"), lit=tod in ("dusk", "night"))
    hz = cfg.traffic.sim_hz
    sim = Simulation(town.network, cfg.traffic, scene_rng(cfg.seed, index, "traffic"), len(town.objects) + 1, hz)
    ticks = round(cfg.scene_seconds * hz)
    rec = sim.run(max(int(cfg.traffic.preroll * hz) - _MARGIN_TICKS, 0), ticks + 2 * _MARGIN_TICKS)
    name = f"scene-{cfg.seed}-{index:04d}"
    return Scene(cfg, index, name, f"synthtown-{cfg.seed}-{index:04d}", town, rec, tod, weather, lighting, ticks)


def human_pose(obj: SceneObject, visible: np.ndarray) -> HumanPose:
    """The :class:`HumanPose` (global frame) of a pedestrian object."""
    return HumanPose(obj.keypoints, obj.track, visible)

