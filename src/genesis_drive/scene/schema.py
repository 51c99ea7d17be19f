"""The typed scene: map, agents with tracks, pedestrians with poses, ego path, caption, timing.

Frames and units: every position is in the *world* (global, map) frame in metres, x-y on the
ground, z up; yaws in radians counter-clockwise from +x; times ``t`` in seconds from the scene's
first frame (t = 0). Agent track points are box centres; ``z`` (optional) is the box-centre
height (default: the box stands on z = 0, i.e. ``z = h / 2``). Ego points are the ego frame's
origin (the rear axle, as nuScenes ``ego_pose``). Sizes are ``(w, l, h)`` metres (nuScenes order).

Every :class:`Scene` is checked when it is built (:func:`check_scene`), so a scene object is always
valid; the editing methods return new scenes (the dataclasses are frozen). Problems raise
:class:`~genesis_drive.errors.ConfigError` whose message starts with the path of the bad field,
e.g. ``agents[3].track[1].t: track times must increase (1.0 after 1.0)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from ..data.schema import CATEGORIES, MapLayers
from ..errors import ConfigError
from ..world.config import PRESETS
from ..world.lighting import LIGHTING_PRESETS, WEATHERS

__all__ = [
    "AGENT_CATEGORIES",
    "PEDESTRIAN_CATEGORIES",
    "POSE_PRESETS",
    "SCENE_FORMAT",
    "TIMES_OF_DAY",
    "WEATHERS",
    "Agent",
    "Caption",
    "EgoPoint",
    "ExplicitMap",
    "Pedestrian",
    "Scene",
    "TownMap",
    "TrackPoint",
    "check_scene",
]

#: Format tag written as ``format:`` in every scene file.
SCENE_FORMAT = "genesis-drive/scene/v1"
#: Time-of-day and weather names SynthTown can render (:mod:`genesis_drive.world.lighting`).
TIMES_OF_DAY: tuple[str, ...] = tuple(LIGHTING_PRESETS)
#: Pedestrian pose presets: ``walk`` (gait cycle driven by the distance walked) or ``stand``.
POSE_PRESETS: tuple[str, ...] = ("walk", "stand")
PEDESTRIAN_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c.startswith("human.pedestrian."))
AGENT_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c not in PEDESTRIAN_CATEGORIES)
#: Pose keypoint count (COCO order, :data:`genesis_drive.data.schema.COCO_KEYPOINTS`).
NUM_KEYPOINTS = 17
_EPS = 1e-6


@dataclass(frozen=True)
class TrackPoint:
    """One sample of an agent's track: time ``t`` (s), box centre ``x, y`` (m, world), ``yaw`` (rad),
    optional box-centre height ``z`` (m; ``None``: standing on z = 0)."""

    t: float
    x: float
    y: float
    yaw: float
    z: Optional[float] = None

    def moved(self, dx: float, dy: float) -> "TrackPoint":
        return dataclasses.replace(self, x=self.x + dx, y=self.y + dy)


@dataclass(frozen=True)
class EgoPoint:
    """One sample of the ego path: time ``t`` (s), rear-axle ``x, y`` (m, world), heading ``yaw`` (rad)."""

    t: float
    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class Agent:
    """A vehicle or object: ``id`` (unique in the scene), nuScenes ``category``, ``size`` (w, l, h) m
    and ``track`` (time-ordered). The agent is present from its first to its last track time
    (extended by linear extrapolation for up to one keyframe interval, see docs/scene_files.md)."""

    id: str
    category: str
    size: tuple[float, float, float]
    track: tuple[TrackPoint, ...]


@dataclass(frozen=True)
class Pedestrian:
    """A person: as :class:`Agent`, plus ``pose``: a preset of :data:`POSE_PRESETS`, or
    ``"keypoints"`` with ``keypoints`` (17 x 3, person frame: x forward, y left, z up, metres,
    origin on the ground under the body centre), held for the whole track."""

    id: str
    category: str
    size: tuple[float, float, float]
    track: tuple[TrackPoint, ...]
    pose: str = "walk"
    keypoints: Optional[tuple[tuple[float, float, float], ...]] = None


@dataclass(frozen=True)
class TownMap:
    """A SynthTown town: the town of scene ``index`` of a run with ``seed`` under ``preset``
    (exactly what ``genesis-drive world --seed SEED --preset PRESET`` builds for that scene)."""

    seed: int
    preset: str = "tiny"
    index: int = 0


@dataclass(frozen=True)
class ExplicitMap:
    """A vector map given point by point (world frame, metres).

    polygons: layer name -> rings ((x, y), ...) for :attr:`MapLayers.POLYGON_LAYERS`;
    polylines: layer name -> lines for :attr:`MapLayers.LINE_LAYERS` (``lane_centerline``: lanes).
    """

    polygons: tuple[tuple[str, tuple[tuple[tuple[float, float], ...], ...]], ...] = ()
    polylines: tuple[tuple[str, tuple[tuple[tuple[float, float], ...], ...]], ...] = ()

    def layers(self) -> MapLayers:
        """The map as :class:`MapLayers` (global frame)."""
        return MapLayers(**{name: tuple(items) for name, items in self.polygons + self.polylines})

    def bounds(self) -> Optional[tuple[float, float, float, float]]:
        """(x0, y0, x1, y1) of every map point, or ``None`` for an empty map."""
        pts = [p for _, items in self.polygons + self.polylines for g in items for p in g]
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class Caption:
    """Scene-level caption fields: ``time_of_day`` (:data:`TIMES_OF_DAY`), ``weather``
    (:data:`WEATHERS`) and free ``text``."""

    time_of_day: str = "day"
    weather: str = "clear"
    text: str = ""


@dataclass(frozen=True)
class Scene:
    """A scene to generate or render.

    duration: seconds; sensor frames at ``k / frame_rate`` for every ``k / frame_rate < duration``;
    keyframes (annotations) at ``k / keyframe_rate``. ``ego`` must cover the first to the last frame.
    ``map``: a :class:`TownMap` or an :class:`ExplicitMap`. Editing methods return new scenes.
    """

    name: str
    duration: float
    map: TownMap | ExplicitMap
    ego: tuple[EgoPoint, ...]
    agents: tuple[Agent, ...] = ()
    pedestrians: tuple[Pedestrian, ...] = ()
    caption: Caption = field(default_factory=Caption)
    frame_rate: int = 12
    keyframe_rate: int = 2
    format: str = SCENE_FORMAT

    def __post_init__(self) -> None:
        check_scene(self)

    # -- derived ------------------------------------------------------------------------------
    @property
    def last_frame_time(self) -> float:
        """Time (s) of the last sensor frame: the largest ``k / frame_rate`` below ``duration``."""
        return (math.ceil(self.duration * self.frame_rate - _EPS) - 1) / self.frame_rate

    def keyframe_times(self) -> tuple[float, ...]:
        """Times (s) of the keyframes: ``k / keyframe_rate`` below ``duration``."""
        n = math.ceil(self.duration * self.keyframe_rate - _EPS)
        return tuple(k / self.keyframe_rate for k in range(n))

    def ids(self) -> tuple[str, ...]:
        """Ids of every agent and pedestrian, in file order."""
        return tuple(a.id for a in self.agents) + tuple(p.id for p in self.pedestrians)

    def get(self, agent_id: str) -> Agent | Pedestrian:
        """The agent or pedestrian with ``agent_id``; :class:`ConfigError` listing the ids if unknown."""
        for a in self.agents + self.pedestrians:
            if a.id == agent_id:
                return a
        raise ConfigError(f"no agent or pedestrian with id {agent_id!r}; the scene has {list(self.ids()) or 'none'}")

    # -- editing (each returns a new, re-checked scene) -----------------------------------------
    def add_agent(self, agent: Agent | Pedestrian) -> "Scene":
        """A scene with ``agent`` added (a :class:`Pedestrian` goes to ``pedestrians``)."""
        if agent.id in self.ids():
            raise ConfigError(f"an agent with id {agent.id!r} already exists; ids must be unique")
        if isinstance(agent, Pedestrian):
            return dataclasses.replace(self, pedestrians=self.pedestrians + (agent,))
        return dataclasses.replace(self, agents=self.agents + (agent,))

    def remove_agent(self, agent_id: str) -> "Scene":
        """A scene without the agent or pedestrian ``agent_id``."""
        self.get(agent_id)
        return dataclasses.replace(
            self,
            agents=tuple(a for a in self.agents if a.id != agent_id),
            pedestrians=tuple(p for p in self.pedestrians if p.id != agent_id),
        )

    def move_agent(self, agent_id: str, dx: float = 0.0, dy: float = 0.0, track: Optional[tuple[TrackPoint, ...]] = None) -> "Scene":
        """A scene with agent ``agent_id`` shifted by ``(dx, dy)`` metres (world frame) at every track
        point, or given the new ``track`` (then ``dx``, ``dy`` must be 0)."""
        old = self.get(agent_id)
        if track is not None:
            if dx or dy:
                raise ConfigError("move_agent: pass either a new track or dx/dy, not both")
            new_track = tuple(track)
        else:
            new_track = tuple(p.moved(float(dx), float(dy)) for p in old.track)
        new = dataclasses.replace(old, track=new_track)
        return dataclasses.replace(
            self,
            agents=tuple(new if a.id == agent_id else a for a in self.agents),
            pedestrians=tuple(new if p.id == agent_id else p for p in self.pedestrians),
        )

    def with_time_of_day(self, time_of_day: str) -> "Scene":
        """A scene at another time of day (one of :data:`TIMES_OF_DAY`)."""
        return dataclasses.replace(self, caption=dataclasses.replace(self.caption, time_of_day=time_of_day))

    def with_weather(self, weather: str) -> "Scene":
        """A scene under other weather (one of :data:`WEATHERS`)."""
        return dataclasses.replace(self, caption=dataclasses.replace(self.caption, weather=weather))

    def with_text(self, text: str) -> "Scene":
        """A scene with another free caption text."""
        return dataclasses.replace(self, caption=dataclasses.replace(self.caption, text=text))


# -- checks ---------------------------------------------------------------------------------------
def _fail(path: str, message: str) -> None:
    raise ConfigError(f"{path}: {message}")


def _check_finite(path: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(path, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        _fail(path, f"expected a finite number, got {value!r}")


def _check_times(path: str, points, kind: str) -> None:
    if not points:
        _fail(path, f"expected at least one {kind} point, got none")
    for i, p in enumerate(points):
        for name in ("t", "x", "y", "yaw") + (("z",) if getattr(p, "z", None) is not None else ()):
            _check_finite(f"{path}[{i}].{name}", getattr(p, name))
        if i and p.t <= points[i - 1].t:
            _fail(f"{path}[{i}].t", f"{kind} times must increase ({p.t} after {points[i - 1].t})")


def _check_size(path: str, size) -> None:
    if len(size) != 3:
        _fail(path, f"expected [w, l, h] (3 numbers, metres), got {len(size)} values")
    for k, v in enumerate(size):
        _check_finite(f"{path}[{k}]", v)
        if v <= 0:
            _fail(f"{path}[{k}]", f"sizes must be > 0 metres, got {v}")


def check_scene(scene: Scene) -> None:
    """Every rule a scene must follow, raising :class:`ConfigError` at the first broken one."""
    if scene.format != SCENE_FORMAT:
        _fail("format", f"expected {SCENE_FORMAT!r}, got {scene.format!r}")
    if not scene.name or "/" in scene.name:
        _fail("name", f"expected a non-empty name without '/', got {scene.name!r}")
    _check_finite("duration", scene.duration)
    if scene.duration <= 0:
        _fail("duration", f"must be > 0 seconds, got {scene.duration}")
    for name in ("frame_rate", "keyframe_rate"):
        v = getattr(scene, name)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            _fail(name, f"expected a positive whole number of Hz, got {v!r}")
    if scene.frame_rate % scene.keyframe_rate:
        _fail("frame_rate", f"must be a multiple of keyframe_rate={scene.keyframe_rate}, got {scene.frame_rate}")
    _check_map(scene.map)
    c = scene.caption
    if c.time_of_day not in TIMES_OF_DAY:
        _fail("caption.time_of_day", f"expected one of {', '.join(TIMES_OF_DAY)}, got {c.time_of_day!r}")
    if c.weather not in WEATHERS:
        _fail("caption.weather", f"expected one of {', '.join(WEATHERS)}, got {c.weather!r}")
    if not isinstance(c.text, str):
        _fail("caption.text", f"expected a string, got {c.text!r}")
    _check_times("ego", scene.ego, "ego")
    end = scene.last_frame_time
    if scene.ego[0].t > _EPS or scene.ego[-1].t < end - _EPS:
        _fail("ego", f"the ego path must cover every frame, t = 0 .. {end:g} s (duration {scene.duration:g} s at "
                     f"{scene.frame_rate} Hz); it covers {scene.ego[0].t:g} .. {scene.ego[-1].t:g} s")  # fmt: skip
    seen: dict[str, str] = {}
    bounds = scene.map.bounds() if isinstance(scene.map, ExplicitMap) else None
    for group, items, valid in (("agents", scene.agents, AGENT_CATEGORIES), ("pedestrians", scene.pedestrians, PEDESTRIAN_CATEGORIES)):
        for i, a in enumerate(items):
            path = f"{group}[{i}]"
            if not isinstance(a.id, str) or not a.id:
                _fail(f"{path}.id", f"expected a non-empty string, got {a.id!r}")
            if a.id in seen:
                _fail(f"{path}.id", f"id {a.id!r} is used twice (also {seen[a.id]}); ids must be unique")
            seen[a.id] = path
            if a.category not in valid:
                other = " (a pedestrian category: list it under pedestrians)" if a.category in PEDESTRIAN_CATEGORIES else ""
                other = other or (" (not a pedestrian category: list it under agents)" if a.category in AGENT_CATEGORIES else "")
                _fail(f"{path}.category", f"unknown category {a.category!r}{other}; expected one of {', '.join(valid)}")
            _check_size(f"{path}.size", a.size)
            _check_times(f"{path}.track", a.track, "track")
            if a.track[-1].t < -_EPS or a.track[0].t > end + _EPS:
                _fail(f"{path}.track", f"times {a.track[0].t:g} .. {a.track[-1].t:g} s lie outside the scene (0 .. {end:g} s)")
            if bounds is not None:
                _check_in_bounds(f"{path}.track", a.track, bounds)
            if isinstance(a, Pedestrian):
                _check_pose(path, a)
    if bounds is not None:
        _check_in_bounds("ego", scene.ego, bounds)


#: Metres an agent may stand beyond the bounding box of an explicit map.
MAP_MARGIN = 50.0


def _check_in_bounds(path: str, points, bounds: tuple[float, float, float, float], margin: float = MAP_MARGIN) -> None:
    x0, y0, x1, y1 = bounds
    for i, p in enumerate(points):
        if not (x0 - margin <= p.x <= x1 + margin and y0 - margin <= p.y <= y1 + margin):
            _fail(f"{path}[{i}]", f"position ({p.x:g}, {p.y:g}) is out of the map's range: x {x0 - margin:g} .. {x1 + margin:g}, "
                                  f"y {y0 - margin:g} .. {y1 + margin:g} m (map bounds plus {margin:g} m)")  # fmt: skip


def check_in_bounds(scene: Scene, bounds: tuple[float, float, float, float], margin: float = MAP_MARGIN) -> None:
    """Raise :class:`ConfigError` naming the first ego or agent point outside ``bounds`` (x0, y0, x1, y1
    metres, world frame) widened by ``margin`` (used for towns, whose bounds are known once built)."""
    _check_in_bounds("ego", scene.ego, bounds, margin)
    for group, items in (("agents", scene.agents), ("pedestrians", scene.pedestrians)):
        for i, a in enumerate(items):
            _check_in_bounds(f"{group}[{i}].track", a.track, bounds, margin)


def _check_pose(path: str, p: Pedestrian) -> None:
    if p.pose == "keypoints":
        if p.keypoints is None or len(p.keypoints) != NUM_KEYPOINTS:
            _fail(f"{path}.pose", f"expected {NUM_KEYPOINTS} keypoints [x, y, z] (person frame, metres), got "
                                  f"{0 if p.keypoints is None else len(p.keypoints)}")  # fmt: skip
        for k, kp in enumerate(p.keypoints):
            if len(kp) != 3:
                _fail(f"{path}.pose[{k}]", f"expected [x, y, z] (3 numbers), got {len(kp)} values")
            for j, v in enumerate(kp):
                _check_finite(f"{path}.pose[{k}][{j}]", v)
    elif p.pose in POSE_PRESETS:
        if p.keypoints is not None:
            _fail(f"{path}.pose", f"pose preset {p.pose!r} takes no keypoints")
    else:
        _fail(f"{path}.pose", f"expected a preset ({', '.join(POSE_PRESETS)}) or {NUM_KEYPOINTS} keypoints [x, y, z], got {p.pose!r}")


def _check_map(m) -> None:
    if isinstance(m, TownMap):
        if isinstance(m.seed, bool) or not isinstance(m.seed, int) or m.seed < 0:
            _fail("map.town.seed", f"expected a whole number >= 0, got {m.seed!r}")
        if isinstance(m.index, bool) or not isinstance(m.index, int) or m.index < 0:
            _fail("map.town.index", f"expected a whole number >= 0, got {m.index!r}")
        if m.preset not in PRESETS:
            _fail("map.town.preset", f"unknown SynthTown preset {m.preset!r}; expected one of {', '.join(PRESETS)}")
        return
    if not isinstance(m, ExplicitMap):
        _fail("map", f"expected a town or explicit layers, got {type(m).__name__}")
    for key, allowed, min_pts in (("polygons", MapLayers.POLYGON_LAYERS, 3), ("polylines", MapLayers.LINE_LAYERS, 2)):
        names = [n for n, _ in getattr(m, key)]
        for name in names:
            if name not in allowed:
                _fail(f"map.{key}.{name}", f"unknown {key[:-1]} layer; expected one of {', '.join(allowed)}")
        for name, items in getattr(m, key):
            for i, g in enumerate(items):
                if len(g) < min_pts:
                    _fail(f"map.{key}.{name}[{i}]", f"expected at least {min_pts} points [x, y], got {len(g)}")
                for k, pt in enumerate(g):
                    if len(pt) != 2:
                        _fail(f"map.{key}.{name}[{i}][{k}]", f"expected [x, y] (2 numbers), got {len(pt)} values")
                    for j, v in enumerate(pt):
                        _check_finite(f"map.{key}.{name}[{i}][{k}][{j}]", v)
