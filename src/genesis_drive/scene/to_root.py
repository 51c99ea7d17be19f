"""Render a :class:`~genesis_drive.scene.schema.Scene` with SynthTown into a nuScenes-format root.

The town comes from ``map.town`` (the same town ``genesis-drive world`` builds for that seed, preset
and scene index, with its parked cars, cones and barriers); instead of random traffic, the scene's
agents, pedestrians and ego path are placed in it, and its time of day and weather light it. The
root gets everything a SynthTown root has: six rendered cameras at ``frame_rate``, LIDAR_TOP sweeps
at the preset's LiDAR rate, keyframes at ``keyframe_rate`` with boxes (objects seen by a camera or
hit by LiDAR within the annotation range), pedestrian keypoints, calibration, ego poses, the map and
the ``synthtown_*`` tables. Sensor faults are off (a clean reference) unless ``faults`` is given.

Models: ``vehicle.car`` / ``vehicle.emergency.police`` as a car, ``vehicle.truck`` /
``vehicle.trailer`` / ``vehicle.construction`` as a truck, ``vehicle.bus.*`` as a bus,
``vehicle.bicycle`` / ``vehicle.motorcycle`` as a bicycle with rider, each mesh scaled to the
agent's size; the annotation keeps the agent's category and size. ``movable_object.*`` and
``static_object.*`` agents cannot be drawn (the town has its own cones and barriers).

Between track points positions and yaws are interpolated linearly; an agent is present from
``track[0].t - 1 / keyframe_rate`` to ``track[-1].t + 1 / keyframe_rate`` (extrapolated linearly
from its end segments, held when the track has one point) and absent (not drawn, not annotated)
otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.schema import MapLayers
from ..errors import ConfigError
from ..world import scene as world_scene
from ..world.agents import PED_FIELDS, VEH_FIELDS, Recording, Vehicle, Walker
from ..world.config import FaultConfig, WorldConfig, preset
from ..world.lighting import LIGHTING_PRESETS, with_weather
from ..world.pedestrians import Body, body_mesh, box_size, random_body
from ..world.scenery import Town, build_town, object_frame
from ..world.vehicles import VehicleModel, bicycle, bus, car, truck
from .io import check_length
from .schema import MAP_MARGIN, Agent, Pedestrian, Scene, TownMap, check_in_bounds

__all__ = ["DRAWABLE_CATEGORIES", "build_world_scene", "check_town_range", "to_root", "world_config"]

_MODELS = {
    "vehicle.car": "car",
    "vehicle.emergency.police": "car",
    "vehicle.truck": "truck",
    "vehicle.trailer": "truck",
    "vehicle.construction": "truck",
    "vehicle.bus.rigid": "bus",
    "vehicle.bus.bendy": "bus",
    "vehicle.bicycle": "cyclist",
    "vehicle.motorcycle": "cyclist",
}
#: Agent categories SynthTown can draw (pedestrian categories are all drawable).
DRAWABLE_CATEGORIES: tuple[str, ...] = tuple(_MODELS)
_ABSENT = 1.0e6  # metres: where an absent agent is parked (beyond every render and annotation range)


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded by stable names (agent ids), so a scene renders the same every time."""
    return np.random.default_rng(int(hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()[:16], 16))


def world_config(scene: Scene, image_size: Optional[tuple[int, int]] = None, faults: Optional[FaultConfig] = None, write_buffers: bool = True) -> WorldConfig:
    """The SynthTown config that renders ``scene``: its town's preset with the scene's length and rates."""
    if not isinstance(scene.map, TownMap):
        raise ConfigError("map: rendering needs a SynthTown town (map.town {seed, preset, index}); scenes with explicit "
                          "polygons/polylines cannot be rendered yet")  # fmt: skip
    town = scene.map
    base = preset(town.preset)
    camera = dataclasses.replace(base.camera, rate_hz=scene.frame_rate, image_size=tuple(image_size) if image_size else base.camera.image_size)
    try:
        return dataclasses.replace(
            base,
            name=town.preset,
            num_scenes=1,
            scene_seconds=scene.duration,
            seed=town.seed,
            keyframe_hz=scene.keyframe_rate,
            camera=camera,
            faults=FaultConfig(()) if faults is None else faults,
            write_buffers=write_buffers,
        )
    except ConfigError as e:
        raise ConfigError(f"frame_rate / keyframe_rate: SynthTown cannot render these rates ({e})") from None


def _town_bounds(layers: MapLayers) -> tuple[float, float, float, float]:
    pts = np.concatenate([g for n in MapLayers.POLYGON_LAYERS + MapLayers.LINE_LAYERS for g in getattr(layers, n)])
    lo, hi = pts.min(0), pts.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def check_town_range(scene: Scene) -> None:
    """Raise :class:`ConfigError` naming the first ego or agent point farther than ``MAP_MARGIN``
    metres outside the bounding box of the scene's town map (builds the town's road network only)."""
    from ..world.roads import build_network

    tm = scene.map
    if not isinstance(tm, TownMap):
        raise ConfigError("map: check_town_range needs a SynthTown town (map.town)")
    net = build_network(preset(tm.preset).roads, world_scene.scene_rng(tm.seed, tm.index, "town"))
    check_in_bounds(scene, _town_bounds(net.map_layers()), MAP_MARGIN)


def _sample_track(track, times: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Box-centre x, y, z (or NaN), yaw (T, 4) of a track at ``times`` (s) and a (T,) mask of presence."""
    t = np.array([p.t for p in track])
    xy = np.array([(p.x, p.y) for p in track])
    z = np.array([np.nan if p.z is None else p.z for p in track])
    yaw = np.unwrap(np.array([p.yaw for p in track]))
    vals = np.column_stack([xy, z, yaw])  # (K, 4)
    out = np.empty((len(times), 4))
    if len(t) == 1:
        out[:] = vals[0]
    else:
        for c in range(4):
            out[:, c] = np.interp(times, t, vals[:, c])
        for end, (i0, i1) in ((times < t[0], (0, 1)), (times > t[-1], (-2, -1))):
            slope = (vals[i1] - vals[i0]) / (t[i1] - t[i0])
            ref = 0 if i0 == 0 else -1
            out[end] = vals[ref] + (times[end, None] - t[ref]) * slope
    present = (times >= t[0] - reach - 1e-9) & (times <= t[-1] + reach + 1e-9)
    return out, present


def _speed(xy: np.ndarray, times: np.ndarray) -> np.ndarray:
    if len(times) < 2:
        return np.zeros(len(times))
    return np.hypot(np.gradient(xy[:, 0], times), np.gradient(xy[:, 1], times))


def _scaled(model: VehicleModel, category: str, size: tuple[float, float, float]) -> VehicleModel:
    """``model`` stretched to ``size`` (w, l, h) and relabelled ``category`` (object frame: x = length)."""
    w, l, h = size
    s = np.array([l / model.size[1], w / model.size[0], h / model.size[2]])
    return VehicleModel(category, np.array(size, float), model.mesh.transformed(np.diag([*s, 1.0])), model.head, model.tail, model.headlight_offset * s)


def _vehicle(agent: Agent, instance: int) -> Vehicle:
    kind = _MODELS[agent.category]
    rng = _rng("agent", agent.id)
    rider = None
    if kind == "cyclist":
        rider = random_body(rng)
        model = bicycle(rng, instance, rider)
    else:
        model = {"car": car, "truck": truck, "bus": bus}[kind](rng, instance)
    return Vehicle(instance, kind, _scaled(model, agent.category, agent.size), 0, 0.0, 0.0, 1.0, rider=rider)


def _body(p: Pedestrian) -> Body:
    body = random_body(_rng("pedestrian", p.id), child=p.category == "human.pedestrian.child")
    unit_h = float(box_size(dataclasses.replace(body, height=1.75))[2]) - 0.01  # box height of a 1.75 m body
    return dataclasses.replace(body, height=float(max(p.size[2] - 0.01, 0.2) * 1.75 / unit_h))


@dataclasses.dataclass(eq=False)
class _PosedScene(world_scene.Scene):
    """A SynthTown scene whose pedestrians with given keypoints (person frame) hold that pose."""

    poses: dict = dataclasses.field(default_factory=dict)  # instance -> (17, 3) keypoints, person frame

    def objects(self, tick, center_xy=None, radius=np.inf, pedestrian_radius=None):
        out = super().objects(tick, center_xy, radius, pedestrian_radius)
        if not self.poses:
            return out
        row = self._row(tick)
        index = {w.instance: i for i, w in enumerate(self.recording.walkers)}
        for k, o in enumerate(out):
            if o.instance in self.poses:
                i = index[o.instance]
                x, y, z, yaw = self.recording.ped[row, i, :4]
                frame = object_frame(x, y, yaw, z)
                kp = self.poses[o.instance]
                mesh = body_mesh(self.recording.walkers[i].body, kp, o.instance).transformed(frame)
                out[k] = dataclasses.replace(o, keypoints=kp @ frame[:3, :3].T + frame[:3, 3], mesh=mesh)
        return out


def build_world_scene(scene: Scene, cfg: WorldConfig, town: Optional[Town] = None) -> world_scene.Scene:
    """The SynthTown scene (town + a recording of the scene's agents) that :func:`to_root` renders.

    Raises :class:`ConfigError` for agents SynthTown cannot draw and for positions outside the town.
    """
    for i, a in enumerate(scene.agents):
        if a.category not in _MODELS:
            raise ConfigError(f"agents[{i}].category: SynthTown cannot draw {a.category!r}; drawable: {', '.join(DRAWABLE_CATEGORIES)}")
    tm = scene.map
    tod, weather = scene.caption.time_of_day, scene.caption.weather
    if town is None:
        town = build_town(cfg, world_scene.scene_rng(tm.seed, tm.index, "town"), lit=tod in ("dusk", "night"))
    check_in_bounds(scene, _town_bounds(town.network.map_layers()), MAP_MARGIN)
    hz = cfg.traffic.sim_hz
    ticks = round(scene.duration * hz)
    margin = world_scene._MARGIN_TICKS
    times = (np.arange(ticks + 2 * margin) - margin) / hz  # (R,) seconds of the recorded rows
    reach = 1.0 / scene.keyframe_rate

    # ego (vehicle 0): the recording holds the car's box centre, the ego pose is its rear axle
    ego_t = np.array([p.t for p in scene.ego])
    ego_yaw = np.interp(times, ego_t, np.unwrap([p.yaw for p in scene.ego]))
    rear = np.column_stack([np.interp(times, ego_t, [p.x for p in scene.ego]), np.interp(times, ego_t, [p.y for p in scene.ego])])
    centre = rear - world_scene.REAR_AXLE * np.column_stack([np.cos(ego_yaw), np.sin(ego_yaw)])
    vehicles = [Vehicle(0, "ego", car(_rng("ego", scene.name), 0), 0, 0.0, 0.0, 1.0)]
    veh = np.zeros((len(times), 1 + len(scene.agents), len(VEH_FIELDS)))
    veh[:, 0, :3] = np.column_stack([centre, ego_yaw])
    veh[:, 0, 3] = _speed(centre, times)

    first = len(town.objects) + 1
    for j, a in enumerate(scene.agents, start=1):
        vehicles.append(_vehicle(a, first + j - 1))
        vals, present = _sample_track(a.track, times, reach)
        speed = _speed(vals[:, :2], times)
        veh[:, j] = np.column_stack([vals[:, 0], vals[:, 1], vals[:, 3], speed, np.gradient(speed, times), np.cumsum(speed) / hz / 0.45])
        veh[~present, j, :2] = _ABSENT

    walkers, poses = [], {}
    ped = np.zeros((len(times), len(scene.pedestrians), len(PED_FIELDS)))
    for i, p in enumerate(scene.pedestrians):
        instance = first + len(scene.agents) + i
        body = _body(p)
        walkers.append(Walker(instance, body, np.array(p.size, float), p.category, 0.0, "walk", 0, 0.0, 1, 0.0))
        vals, present = _sample_track(p.track, times, reach)
        ground = np.where(np.isnan(vals[:, 2]), 0.0, vals[:, 2] - p.size[2] / 2)
        speed = _speed(vals[:, :2], times)
        phase = (2 * np.pi * np.cumsum(speed) / hz / (1.35 * body.s)) % (2 * np.pi)
        amp = ((speed > 0.2) & (p.pose == "walk")).astype(float)
        ped[:, i] = np.column_stack([vals[:, 0], vals[:, 1], ground, vals[:, 3], speed, phase, amp])
        ped[~present, i, :2] = _ABSENT
        if p.pose == "keypoints":
            poses[instance] = np.array(p.keypoints, float)
    rec = Recording(np.arange(len(times)) / hz, vehicles, walkers, veh, ped, 0)
    lighting = with_weather(LIGHTING_PRESETS[tod], weather)
    location = f"synthtown-{tm.seed}-{tm.index:04d}"
    return _PosedScene(cfg, tm.index, scene.name, location, town, rec, tod, weather, lighting, ticks, poses)


def to_root(
    scene: Scene,
    out: str | Path,
    overwrite: bool = False,
    image_size: Optional[tuple[int, int]] = None,
    faults: Optional[FaultConfig] = None,
    write_buffers: bool = True,
    max_seconds: Optional[float] = None,
    progress: bool = False,
):
    """Render ``scene`` into the nuScenes-format root ``out`` (atomically: a hidden sibling renamed
    into place, nothing left on error). ``image_size``: (width, height) pixels (default: the town
    preset's). Returns the :class:`~genesis_drive.world.generate.GenerationStats`.
    """
    from ..world.generate import generate

    check_length(scene, max_seconds)
    cfg = world_config(scene, image_size, faults, write_buffers)
    ws = build_world_scene(scene, cfg)
    return generate(cfg, out, overwrite=overwrite, progress=progress, scenes=[ws])
