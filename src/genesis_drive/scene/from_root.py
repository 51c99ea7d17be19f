"""A :class:`~genesis_drive.scene.schema.Scene` from a real (or SynthTown) nuScenes-format sample.

The scene starts at the given sample (t = 0 at its timestamp) and runs to the end of its nuScenes
scene (or ``seconds``). Agents: every annotated instance of the scene's keyframes in that window,
one track point per keyframe where it is annotated (box centre with z, yaw, size of its first
annotation). Pedestrians: instances of ``human.pedestrian.*`` categories, pose preset ``walk`` if any
of their annotations has the attribute ``pedestrian.moving``, else ``stand``. Ego: the ego pose of
every LIDAR_TOP sample_data (key frames and sweeps) in the window (the first camera channel when
the root has no LiDAR). Caption: SynthTown roots' ``synthtown_scene`` time of day and weather; other
roots: ``night`` / ``dusk`` / ``rain`` / ``fog`` when the scene description names them, else ``day``
and ``clear``; the description becomes the caption text.

Map: SynthTown roots whose ``synthtown_scene`` row names a known preset give ``map.town`` (seed,
preset, index) and leave the town's own parked cars, cones and barriers out of ``agents`` (they
come with the town); otherwise (real nuScenes, or a SynthTown preset not in
:data:`genesis_drive.world.config.PRESETS`) the root's vector map, cropped to ``map_margin`` metres
around the ego path, is written out as explicit layers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.geometry import yaw_from_quat
from ..data.nuscenes import NuScenesReader
from ..data.schema import LIDAR_CHANNEL, MapLayers
from ..errors import DataError
from ..world.config import PRESETS
from .schema import PEDESTRIAN_CATEGORIES, Agent, Caption, EgoPoint, ExplicitMap, Pedestrian, Scene, TownMap, TrackPoint

__all__ = ["caption_from_description", "from_root"]

_US = 1e-6


def caption_from_description(description: str) -> Caption:
    """Time of day and weather named by a scene description ("Night, rain, ..." -> night, rain)."""
    words = set(re.findall(r"[a-z]+", description.lower()))
    tod = "night" if "night" in words else ("dusk" if "dusk" in words else "day")
    weather = "rain" if words & {"rain", "raining", "rainy"} else ("fog" if words & {"fog", "foggy"} else "clear")
    return Caption(tod, weather, description)


def _find_sample(reader: NuScenesReader, sample_token: str) -> dict:
    try:
        return reader.nusc.get("sample", sample_token)
    except KeyError:
        some = ", ".join(reader.sample_tokens(reader.scene_tokens()[0])[:3]) if reader.scene_tokens() else "none"
        raise DataError(f"no sample with token {sample_token!r} (e.g. {some})", reader.root, "sample.token") from None


def from_root(
    root: str | Path,
    sample_token: str,
    seconds: Optional[float] = None,
    version: Optional[str] = None,
    map_margin: float = 80.0,
) -> Scene:
    """The scene of ``root`` from sample ``sample_token`` on (``seconds``: at most this long).

    Raises :class:`DataError` for an unknown token or a window without ego poses.
    """
    reader = NuScenesReader(root, version)
    nusc = reader.nusc
    sample = _find_sample(reader, sample_token)
    scene_token = sample["scene_token"]
    scene_rec = nusc.get("scene", scene_token)
    t0 = sample["timestamp"]
    keys = [nusc.get("sample", tok) for tok in reader.sample_tokens(scene_token)]
    keys = [s for s in keys if s["timestamp"] >= t0 and (seconds is None or (s["timestamp"] - t0) * _US < seconds - 1e-9)]
    kf_times = [(s["timestamp"] - t0) * _US for s in keys]
    keyframe_rate = max(1, round((len(kf_times) - 1) / kf_times[-1])) if len(kf_times) > 1 and kf_times[-1] > 0 else 2

    # ego path: every LiDAR (or first channel) sample_data in the window
    channels = reader.channels(scene_token)
    channel = LIDAR_CHANNEL if LIDAR_CHANNEL in channels else channels[0]
    duration = kf_times[-1] + 1.0 / keyframe_rate
    if seconds is not None:
        duration = min(duration, seconds)
    ego = []
    for tok in reader.channel_tokens(scene_token, channel):
        sd = reader.sample_data(tok)
        t = (sd["timestamp"] - t0) * _US
        if -1e-9 <= t < duration - 1e-9:
            pose = reader.ego_pose(tok)
            ego.append(EgoPoint(round(t, 6), float(pose.translation[0]), float(pose.translation[1]), yaw_from_quat(pose.rotation)))
    if not ego:
        raise DataError(f"no {channel} ego pose from sample {sample_token} on", reader.root, "sample_data")
    frame_rate = 12 if 12 % keyframe_rate == 0 else keyframe_rate
    # the ego must cover every frame: end the scene one frame after the last ego pose at most
    last_ok = math.floor(ego[-1].t * frame_rate + 1e-6) / frame_rate
    duration = min(duration, last_ok + 1.0 / frame_rate)

    # SynthTown: town seed and the town's static objects
    st_rows = [r for r in reader.extra_table("synthtown_scene") if r.get("scene_token") == scene_token]
    town = None
    static_tracks: set[str] = set()
    if st_rows and st_rows[0].get("preset") in PRESETS:
        row = st_rows[0]
        town = TownMap(int(row["seed"]), str(row["preset"]), int(row["index"]))
        n_static = int(row["num_static_objects"])
        static_tracks = {
            r["instance_token"] for r in reader.extra_table("synthtown_instance") if r.get("scene_token") == scene_token and 1 <= int(r["instance_id"]) <= n_static
        }
    names = {r["instance_token"]: r["track"] for r in reader.extra_table("synthtown_instance") if r.get("scene_token") == scene_token}
    if st_rows:
        caption = Caption(st_rows[0]["time_of_day"], st_rows[0]["weather"], scene_rec["description"])
    else:
        caption = caption_from_description(scene_rec["description"])

    # tracks: one point per keyframe where the instance is annotated
    tracks: dict[str, list] = {}
    info: dict[str, tuple] = {}
    moving: set[str] = set()
    for s, t in zip(keys, kf_times):
        if t >= duration - 1e-9:
            continue
        for b in reader.boxes(s["token"]):
            inst = b.instance_token
            if inst in static_tracks:
                continue
            info.setdefault(inst, (b.category, tuple(float(v) for v in b.size)))
            tracks.setdefault(inst, []).append(TrackPoint(round(t, 6), float(b.center[0]), float(b.center[1]), float(b.yaw), float(b.center[2])))
            if "pedestrian.moving" in b.attributes:
                moving.add(inst)
    agents, peds = [], []
    for inst, track in tracks.items():
        category, size = info[inst]
        aid = names.get(inst, inst)
        if category in PEDESTRIAN_CATEGORIES:
            peds.append(Pedestrian(aid, category, size, tuple(track), "walk" if inst in moving else "stand"))
        else:
            agents.append(Agent(aid, category, size, tuple(track)))

    if town is not None:
        scene_map: TownMap | ExplicitMap = town
    else:
        layers = reader.map_layers(reader.scene_location(scene_token))
        xy = np.array([(p.x, p.y) for p in ego])
        lo, hi = xy.min(0), xy.max(0)
        layers = layers.crop((lo + hi) / 2, float(np.max(hi - lo)) / 2 + map_margin)
        scene_map = _explicit(layers)
    name = f"{scene_rec['name']}-from-{sample_token[:8]}"
    return Scene(name, float(duration), scene_map, tuple(ego), tuple(agents), tuple(peds), caption, frame_rate, keyframe_rate)


def _explicit(layers: MapLayers) -> ExplicitMap:
    def conv(names) -> tuple:
        out = []
        for n in names:
            items = getattr(layers, n)
            if items:
                out.append((n, tuple(tuple((float(x), float(y)) for x, y in g) for g in items)))
        return tuple(out)

    return ExplicitMap(conv(MapLayers.POLYGON_LAYERS), conv(MapLayers.LINE_LAYERS))
