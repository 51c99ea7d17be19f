"""Generate a SynthTown dataset: scenes -> rendered cameras, cast LiDAR, annotations -> nuScenes format.

Per scene: the town's map (``maps/expansion/<location>.json``), six cameras at ``camera.rate_hz``
(JPEG, faults applied), LIDAR_TOP sweeps at ``lidar.rate_hz``, keyframes at ``keyframe_hz`` with
boxes (global frame), visibility, LiDAR point counts and pedestrian keypoints. Extra files and
tables (ignored by nuscenes-devkit):

* ``synthtown/buffers/<scene>/<CHANNEL>/<timestamp>.npz`` per keyframe camera image: ``depth``
  (uint16 centimetres along the optical axis, 0 = sky), ``instance`` (uint16 instance id, 0 =
  scenery / sky), ``material`` (uint8 :class:`~genesis_drive.world.mesh.Material`);
* ``<version>/synthtown_fault.json``: one row per faulty camera image;
* ``<version>/synthtown_scene.json``: per-scene seed, time of day, weather, agent counts;
* ``<version>/synthtown_instance.json``: buffer instance id -> annotation instance token.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.nuscenes import NuScenesWriter, SceneMeta
from ..data.schema import CAMERA_CHANNELS, Box3D, CameraFrame, LidarSweep
from .config import WorldConfig
from .faults import apply_faults, draw_faults
from .lidar import RayCaster, cast_sweep
from .render import CameraView, Rasterizer
from .scene import Scene, build_scene, human_pose, scene_rng
from .sensors import camera_calibrations, lidar_beam_directions, lidar_calibration
from .visibility import CameraRay, points_visible, visibility_fractions, visibility_level

__all__ = ["GenerationStats", "buffer_path", "generate", "npz_bytes"]


@dataclass
class GenerationStats:
    """What a run produced. points_per_sweep / boxes_per_keyframe: one entry per sweep / keyframe.
    Times in seconds: the whole run, building towns and traffic, rendering cameras, casting LiDAR."""

    scenes: int = 0
    camera_frames: int = 0
    sweeps: int = 0
    keyframes: int = 0
    seconds: float = 0.0
    build_seconds: float = 0.0
    render_seconds: float = 0.0
    lidar_seconds: float = 0.0
    points_per_sweep: list[int] = field(default_factory=list)
    boxes_per_keyframe: list[int] = field(default_factory=list)
    boxes_per_category: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` (readable by ``np.load``) with fixed zip timestamps, so equal arrays give
    equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, body.getvalue())
    return buf.getvalue()


def buffer_path(scene_name: str, channel: str, timestamp: int) -> str:
    """Relative path of a keyframe camera's depth/instance/material buffers."""
    return f"synthtown/buffers/{scene_name}/{channel}/{timestamp}.npz"


def _row_token(*parts: object) -> str:
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def generate(cfg: WorldConfig, out: str | Path, overwrite: bool = False, progress: bool = True, scenes: Sequence[Scene] | None = None) -> GenerationStats:
    """Write ``cfg.num_scenes`` scenes to the nuScenes-format root ``out`` (atomically).

    ``scenes``: pre-built scenes to write instead of building them from ``cfg.seed`` (e.g. scenes
    given by a scene file, :mod:`genesis_drive.scene.to_root`); then ``cfg.num_scenes`` must equal
    ``len(scenes)``."""
    if scenes is not None and len(scenes) != cfg.num_scenes:
        raise ValueError(f"generate: {len(scenes)} scenes given but cfg.num_scenes={cfg.num_scenes}")
    stats = GenerationStats()
    t0 = time.perf_counter()
    hz = cfg.traffic.sim_hz
    n_cam = int(np.ceil(round(cfg.scene_seconds * hz) / (hz // cfg.camera.rate_hz)))
    w, h = cfg.camera.image_size
    with NuScenesWriter(out, version=cfg.version, overwrite=overwrite) as writer, Rasterizer(w, h, shadow_map_size=cfg.camera.shadow_map_size) as raster:
        bar = tqdm(total=cfg.num_scenes * n_cam, unit="frame", desc="SynthTown", disable=not progress, dynamic_ncols=True)
        fault_rows, scene_rows, instance_rows = [], [], []
        for index in range(cfg.num_scenes):
            bar.set_postfix_str(f"scene {index + 1}/{cfg.num_scenes}: building")
            t1 = time.perf_counter()
            scene = build_scene(cfg, index) if scenes is None else scenes[index]
            stats.build_seconds += time.perf_counter() - t1
            bar.set_postfix_str(f"scene {index + 1}/{cfg.num_scenes}: {scene.time_of_day}, {scene.weather}")
            _write_scene(scene, writer, raster, stats, fault_rows, scene_rows, instance_rows, bar)
        bar.close()
        writer.add_extra_table("synthtown_fault", fault_rows)
        writer.add_extra_table("synthtown_scene", scene_rows)
        writer.add_extra_table("synthtown_instance", instance_rows)
    stats.seconds = time.perf_counter() - t0
    return stats


def _write_scene(scene: Scene, writer: NuScenesWriter, raster: Rasterizer, stats: GenerationStats, fault_rows, scene_rows, instance_rows, bar) -> None:
    """Map, calibrations, every camera frame, LiDAR sweep and keyframe of one scene."""
    cfg = scene.config
    hz = scene.hz
    cam_step, lidar_step, key_step = hz // cfg.camera.rate_hz, hz // cfg.lidar.rate_hz, hz // cfg.keyframe_hz
    cams = camera_calibrations(cfg.camera.image_size)
    lidar_cal = lidar_calibration()
    writer.add_map(scene.location, scene.town.network.map_layers())
    scene_token = writer.begin_scene(SceneMeta(scene.name, _description(scene), scene.location), [*cams, lidar_cal])
    scene_rows.append(_scene_row(scene, scene_token))
    raster.set_static(scene.town.static_mesh)
    caster = RayCaster(scene.town.static_mesh)
    faults = draw_faults(cfg.faults, scene_rng(cfg.seed, scene.index, "faults"), int(np.ceil(scene.ticks / cam_step)), CAMERA_CHANNELS)
    lidar_rng = scene_rng(cfg.seed, scene.index, "lidar")
    tracks: dict[int, str] = {}
    for tick in range(scene.ticks):
        is_cam, is_lidar, is_key = tick % cam_step == 0, tick % lidar_step == 0, tick % key_step == 0
        if not (is_cam or is_lidar):
            continue
        ts = scene.timestamp(tick)
        ego = scene.ego_pose(tick)
        dynamic, objects = scene.dynamic_mesh(tick, ego.translation[:2])
        w, h = cfg.camera.image_size
        views = [CameraView(c.channel, c.intrinsics, (ego @ c.sensor_to_ego).matrix(), w, h) for c in cams]
        if is_cam:
            t1 = time.perf_counter()
            out = raster.render(views, dynamic, scene.frame_lighting(tick, ego), rain_seed=(scene.index * 100003 + tick // cam_step) % 2**28)
            stats.render_seconds += time.perf_counter() - t1
            _write_images(scene, writer, scene_token, cams, out, faults, tick // cam_step, ego, ts, is_key, fault_rows, stats)
            stats.camera_frames += 1
            bar.update(1)
        if is_lidar:
            t1 = time.perf_counter()
            caster.set_dynamic(dynamic)
            sweep = _sweep(scene, caster, lidar_cal, tick, ego, lidar_rng)
            writer.add_lidar_sweep(scene_token, LidarSweep(sweep.points, lidar_cal.sensor_to_ego, ego, ts, is_key))
            stats.sweeps += 1
            stats.points_per_sweep.append(len(sweep.points))
            stats.lidar_seconds += time.perf_counter() - t1
        if is_key:  # keyframes are always LiDAR ticks (lidar.rate_hz is a multiple of keyframe_hz)
            boxes, poses, ids = _annotate(scene, caster, views, objects, ego, sweep.points, lidar_cal.sensor_to_ego)
            writer.add_sample(scene_token, ts, boxes, poses)
            stats.keyframes += 1
            stats.boxes_per_keyframe.append(len(boxes))
            for b, inst in zip(boxes, ids):
                stats.boxes_per_category[b.category] += 1
                tracks.setdefault(inst, b.instance_token)
    for inst, track in sorted(tracks.items()):
        instance_rows.append(
            {
                "token": _row_token("synthtown_instance", scene.name, inst),
                "scene_token": scene_token,
                "instance_id": inst,
                "track": track,
                "instance_token": writer.instance_token(scene_token, track),
            }
        )
    stats.scenes += 1


def _description(scene: Scene) -> str:
    kinds = Counter(v.kind for v in scene.recording.vehicles)
    town = scene.town
    return (
        f"{scene.time_of_day}, {scene.weather}; SynthTown {len(town.network.junctions)} junctions, "
        f"{kinds['car'] + kinds['truck'] + kinds['bus']} moving vehicles, {kinds['cyclist']} cyclists, "
        f"{len(scene.recording.walkers)} pedestrians, {len(town.objects)} parked cars / cones / barriers"
    )


def _scene_row(scene: Scene, scene_token: str) -> dict:
    kinds = Counter(v.kind for v in scene.recording.vehicles)
    return {
        "token": _row_token("synthtown_scene", scene.name),
        "scene_token": scene_token,
        "name": scene.name,
        "preset": scene.config.name,
        "seed": scene.config.seed,
        "index": scene.index,
        "time_of_day": scene.time_of_day,
        "weather": scene.weather,
        "num_junctions": len(scene.town.network.junctions),
        "num_vehicles": kinds["car"] + kinds["truck"] + kinds["bus"],
        "num_cyclists": kinds["cyclist"],
        "num_pedestrians": len(scene.recording.walkers),
        "num_static_objects": len(scene.town.objects),
    }


def _write_images(scene, writer, scene_token, cams, out, faults, frame_idx, ego, ts, is_key, fault_rows, stats) -> None:
    """The six rendered images of one frame (faults applied and recorded) and, at keyframes, their buffers."""
    for v, c in enumerate(cams):
        events = faults.get((frame_idx, c.channel), [])
        image = apply_faults(out.rgb[v], events) if events else out.rgb[v]
        sd = writer.add_camera_frame(scene_token, CameraFrame(c.channel, image, c.intrinsics, c.sensor_to_ego, ego, ts, is_key))
        for e in events:
            fault_rows.append(
                {
                    "token": _row_token("synthtown_fault", sd, e.kind),
                    "scene_token": scene_token,
                    "sample_data_token": sd,
                    "channel": c.channel,
                    "timestamp": ts,
                    "is_key_frame": is_key,
                    "kind": e.kind,
                    "severity": round(e.severity, 4),
                    "per": e.per,
                }
            )
            stats.faults[e.kind] += 1
        if is_key and scene.config.write_buffers:
            depth_cm = np.where(np.isfinite(out.depth[v]), np.clip(np.round(out.depth[v] * 100.0), 1, 65535), 0).astype(np.uint16)
            buffers = {"depth": depth_cm, "instance": out.instance[v].astype(np.uint16), "material": out.material[v].astype(np.uint8)}
            writer.add_extra_file(buffer_path(scene.name, c.channel, ts), npz_bytes(buffers))


def _sweep(scene: Scene, caster: RayCaster, lidar_cal, tick: int, ego, rng: np.random.Generator):
    """One LiDAR sweep at a tick, each azimuth column fired from the ego pose at its own time."""
    lidar = scene.config.lidar
    _, column_frac, _ = lidar_beam_directions(lidar)
    if lidar.rolling:
        columns = scene.ego_matrices(tick / scene.hz + column_frac / lidar.rate_hz)
    else:
        columns = np.repeat(ego.matrix()[None], len(column_frac), 0)
    return cast_sweep(caster, lidar, lidar_cal.sensor_to_ego, columns, ego, rng, scene.weather)


def _annotate(scene: Scene, caster: RayCaster, views: list[CameraView], objects, ego, points: np.ndarray, lidar_to_ego) -> tuple[list[Box3D], list, list[int]]:
    """Boxes (global frame), pedestrian poses and instance ids of the objects observed at a keyframe.

    An object is annotated when its centre is within ``annotation_range`` (x-y) of the ego and it is
    hit by at least one LiDAR point of the keyframe sweep or seen by a camera.
    """
    cfg = scene.config
    ego_xy = ego.translation[:2]
    cand = [o for o in objects if np.hypot(*(o.center[:2] - ego_xy)) <= cfg.annotation_range]
    if not cand:
        return [], [], []
    cams = [CameraRay(v.intrinsics, v.cam_to_global, v.width, v.height) for v in views]
    fractions = visibility_fractions(caster, cams, [o.mesh.vertices for o in cand], [o.instance for o in cand])
    m = (ego @ lidar_to_ego).matrix()
    pts_g = points[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]
    boxes, poses, ids = [], [], []
    for o, frac in zip(cand, fractions):
        box = Box3D.from_yaw(o.center, o.size, o.yaw, o.category)
        near = np.all(np.abs(pts_g[:, :2] - o.center[:2]) <= np.max(o.size), axis=1)
        n_pts = int(box.contains(pts_g[near]).sum()) if near.any() else 0
        if n_pts == 0 and not frac:
            continue
        box = Box3D.from_yaw(
            o.center, o.size, o.yaw, o.category, instance_token=o.track, attributes=o.attributes,
            velocity=o.velocity, visibility=visibility_level(frac), num_lidar_pts=n_pts,
        )  # fmt: skip
        boxes.append(box)
        ids.append(o.instance)
        if o.keypoints is not None:
            _, seen = points_visible(caster, cams, o.keypoints, np.full(17, o.instance), tolerance=0.25)
            poses.append(human_pose(o, seen))
    return boxes, poses, ids
