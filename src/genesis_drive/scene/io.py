"""Scene files: YAML or JSON <-> :class:`~genesis_drive.scene.schema.Scene`.

The file format is documented in docs/scene_files.md. Loading is strict: every problem raises
:class:`~genesis_drive.errors.ConfigError` as ``FILE: PATH: message`` with the path of the bad field
(``agents[3].track[0].yaw: expected a number, got 'abc'``); unknown keys are rejected with the
allowed ones listed. Saving writes atomically; ``load(save(s)) == s``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import yaml

from ..data.atomic import atomic_write_text
from ..errors import ConfigError
from .schema import (
    SCENE_FORMAT,
    Agent,
    Caption,
    EgoPoint,
    ExplicitMap,
    Pedestrian,
    Scene,
    TownMap,
    TrackPoint,
)

__all__ = ["check_length", "load_scene", "save_scene", "scene_from_dict", "scene_to_dict"]

_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


# -- reading --------------------------------------------------------------------------------------
def _mapping(value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(required + optional)}, got {_show(value)}")
    unknown = [k for k in value if k not in required + optional]
    if unknown:
        raise ConfigError(f"{_join(path, str(unknown[0]))}: unknown key; allowed keys here: {', '.join(required + optional)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ConfigError(f"{_join(path, missing[0])}: missing (required keys here: {', '.join(required)})")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value)


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: expected a number, got {_show(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{path}: expected a finite number, got {value!r}")
    return float(value)


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}: expected a whole number, got {_show(value)}")
    return int(value)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {_show(value)}")
    return value


def _list(value: Any, path: str, what: str) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list of {what}, got {_show(value)}")
    return value


def _numbers(value: Any, path: str, n: Optional[int], what: str) -> tuple[float, ...]:
    items = _list(value, path, what)
    if n is not None and len(items) != n:
        raise ConfigError(f"{path}: expected {what}, got {len(items)} values")
    return tuple(_number(v, f"{path}[{i}]") for i, v in enumerate(items))


def _track(value: Any, path: str) -> tuple[TrackPoint, ...]:
    out = []
    for i, p in enumerate(_list(value, path, "points {t, x, y, yaw[, z]}")):
        q = _mapping(p, f"{path}[{i}]", ("t", "x", "y", "yaw"), ("z",))
        z = _number(q["z"], f"{path}[{i}].z") if q.get("z") is not None else None
        out.append(TrackPoint(*(_number(q[k], f"{path}[{i}].{k}") for k in ("t", "x", "y", "yaw")), z=z))
    return tuple(out)


def _ego(value: Any, path: str) -> tuple[EgoPoint, ...]:
    out = []
    for i, p in enumerate(_list(value, path, "points {t, x, y, yaw}")):
        q = _mapping(p, f"{path}[{i}]", ("t", "x", "y", "yaw"))
        out.append(EgoPoint(*(_number(q[k], f"{path}[{i}].{k}") for k in ("t", "x", "y", "yaw"))))
    return tuple(out)


def _geoms(value: Any, path: str, what: str) -> tuple:
    out = []
    for i, g in enumerate(_list(value, path, what)):
        pts = _list(g, f"{path}[{i}]", "points [x, y]")
        out.append(tuple(_numbers(pt, f"{path}[{i}][{k}]", 2, "[x, y] (2 numbers)") for k, pt in enumerate(pts)))
    return tuple(out)


def _map(value: Any) -> TownMap | ExplicitMap:
    m = _mapping(value, "map", (), ("town", "polygons", "polylines"))
    if "town" in m:
        if "polygons" in m or "polylines" in m:
            raise ConfigError("map: give either town or polygons/polylines, not both")
        t = _mapping(m["town"], "map.town", ("seed",), ("preset", "index"))
        return TownMap(_int(t["seed"], "map.town.seed"), _str(t.get("preset", "tiny"), "map.town.preset"), _int(t.get("index", 0), "map.town.index"))
    if not m:
        raise ConfigError("map: expected town {seed, preset, index} or polygons/polylines layers, got an empty mapping")
    out = {}
    for key in ("polygons", "polylines"):
        layers = m.get(key, {})
        if not isinstance(layers, dict):
            raise ConfigError(f"map.{key}: expected a mapping layer name -> list of point lists, got {_show(layers)}")
        out[key] = tuple((str(name), _geoms(items, f"map.{key}.{name}", "point lists [[x, y], ...]")) for name, items in layers.items())
    return ExplicitMap(**out)


_AGENT_KEYS = ("id", "category", "size", "track")


def _agent(value: Any, path: str, pedestrian: bool) -> Agent | Pedestrian:
    a = _mapping(value, path, _AGENT_KEYS, ("pose",) if pedestrian else ())
    common = dict(
        id=_str(a["id"], f"{path}.id"),
        category=_str(a["category"], f"{path}.category"),
        size=_numbers(a["size"], f"{path}.size", 3, "[w, l, h] (3 numbers, metres)"),
        track=_track(a["track"], f"{path}.track"),
    )
    if not pedestrian:
        return Agent(**common)
    pose = a.get("pose", "walk")
    if isinstance(pose, list):
        kps = tuple(_numbers(k, f"{path}.pose[{i}]", 3, "[x, y, z] (3 numbers)") for i, k in enumerate(pose))
        return Pedestrian(**common, pose="keypoints", keypoints=kps)
    return Pedestrian(**common, pose=_str(pose, f"{path}.pose"))


_TOP_REQUIRED = ("format", "name", "duration", "map", "ego")
_TOP_OPTIONAL = ("frame_rate", "keyframe_rate", "agents", "pedestrians", "caption")


def scene_from_dict(d: Any) -> Scene:
    """A :class:`Scene` from the parsed file content (raises :class:`ConfigError` with field paths)."""
    d = _mapping(d, "", _TOP_REQUIRED, _TOP_OPTIONAL)
    fmt = _str(d["format"], "format")
    if fmt != SCENE_FORMAT:
        raise ConfigError(f"format: expected {SCENE_FORMAT!r}, got {fmt!r}")
    cap = _mapping(d.get("caption", {}), "caption", (), ("time_of_day", "weather", "text"))
    caption = Caption(
        _str(cap.get("time_of_day", "day"), "caption.time_of_day"),
        _str(cap.get("weather", "clear"), "caption.weather"),
        _str(cap.get("text", ""), "caption.text"),
    )
    return Scene(
        name=_str(d["name"], "name"),
        duration=_number(d["duration"], "duration"),
        map=_map(d["map"]),
        ego=_ego(d["ego"], "ego"),
        agents=tuple(_agent(a, f"agents[{i}]", False) for i, a in enumerate(_list(d.get("agents", []), "agents", "agents"))),
        pedestrians=tuple(_agent(a, f"pedestrians[{i}]", True) for i, a in enumerate(_list(d.get("pedestrians", []), "pedestrians", "pedestrians"))),
        caption=caption,
        frame_rate=_int(d.get("frame_rate", 12), "frame_rate"),
        keyframe_rate=_int(d.get("keyframe_rate", 2), "keyframe_rate"),
        format=fmt,
    )


def check_length(scene: Scene, max_seconds: Optional[float]) -> None:
    """Raise :class:`ConfigError` when ``scene.duration`` exceeds ``max_seconds`` (the longest scene
    the models generate without rollout); ``None``: no limit."""
    if max_seconds is not None and scene.duration > max_seconds + 1e-9:
        raise ConfigError(
            f"duration: {scene.duration:g} s is longer than the {max_seconds:g} s the models generate without rollout; "
            "shorten the scene or generate it with rollout"
        )


def _format(path: Path) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: unknown scene file type {path.suffix!r}; expected one of {', '.join(_SUFFIXES)}")
    return fmt


def load_scene(path: str | Path, max_seconds: Optional[float] = None) -> Scene:
    """Read and check a scene file (``.yaml``/``.yml``/``.json``); ``max_seconds``: see :func:`check_length`."""
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise ConfigError(f"{path}: scene file not found")
    text = path.read_text()
    try:
        data = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not valid {fmt.upper()} ({' '.join(str(e).split())})") from None
    try:
        scene = scene_from_dict(data)
        check_length(scene, max_seconds)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return scene


# -- writing --------------------------------------------------------------------------------------
def _track_dict(points) -> list[dict]:
    out = []
    for p in points:
        d = {"t": p.t, "x": p.x, "y": p.y, "yaw": p.yaw}
        if getattr(p, "z", None) is not None:
            d["z"] = p.z
        out.append(d)
    return out


def scene_to_dict(scene: Scene) -> dict:
    """The file content of a scene (plain lists, numbers and strings)."""
    if isinstance(scene.map, TownMap):
        m = {"town": {"seed": scene.map.seed, "preset": scene.map.preset, "index": scene.map.index}}
    else:
        m = {}
        for key in ("polygons", "polylines"):
            layers = getattr(scene.map, key)
            if layers:
                m[key] = {name: [[list(pt) for pt in g] for g in items] for name, items in layers}

    def agent(a) -> dict:
        d = {"id": a.id, "category": a.category, "size": list(a.size), "track": _track_dict(a.track)}
        if isinstance(a, Pedestrian):
            d["pose"] = [list(k) for k in a.keypoints] if a.pose == "keypoints" else a.pose
        return d

    c = scene.caption
    return {
        "format": scene.format,
        "name": scene.name,
        "duration": scene.duration,
        "frame_rate": scene.frame_rate,
        "keyframe_rate": scene.keyframe_rate,
        "caption": {"time_of_day": c.time_of_day, "weather": c.weather, "text": c.text},
        "map": m,
        "ego": _track_dict(scene.ego),
        "agents": [agent(a) for a in scene.agents],
        "pedestrians": [agent(p) for p in scene.pedestrians],
    }


def save_scene(scene: Scene, path: str | Path) -> Path:
    """Write ``scene`` to ``path`` (YAML or JSON by suffix), atomically. Returns the path."""
    path = Path(path)
    fmt = _format(path)
    d = scene_to_dict(scene)
    text = yaml.safe_dump(d, sort_keys=False, default_flow_style=None, width=120) if fmt == "yaml" else json.dumps(d, indent=1)
    return atomic_write_text(path, text)
