"""nuScenes-format datasets: write them from schema objects, read any of them through nuscenes-devkit.

Layout of a root (what :class:`NuScenesWriter` writes and :class:`NuScenesReader` reads)::

    ROOT/<version>/{category,attribute,visibility,instance,sensor,calibrated_sensor,ego_pose,
                    log,scene,sample,sample_data,sample_annotation,map}.json
    ROOT/<version>/human_pose.json        genesis-drive extra table (ignored by the devkit)
    ROOT/samples/<CHANNEL>/<scene>__<CHANNEL>__<timestamp>.{jpg,pcd.bin}   key frames
    ROOT/sweeps/<CHANNEL>/...                                              other frames
    ROOT/maps/<token>.png                 raster semantic prior (devkit renderers)
    ROOT/maps/expansion/<location>.json   vector map, nuScenes map-expansion schema

LiDAR files are float32 x 5 (x, y, z, intensity, ring) in the sensor frame. Images are JPEG.
Annotations (``sample_annotation``) are in the global frame; velocities are not stored (the
devkit derives them from neighbouring annotations, and so does the reader).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import DataError
from .atomic import atomic_write_json
from .geometry import Pose
from .maps import expansion_json_to_map, map_to_expansion_json, read_map_expansion, semantic_prior_png
from .schema import ATTRIBUTES, CATEGORIES, Box3D, CameraFrame, HumanPose, LidarSweep, MapLayers

__all__ = [
    "SensorCalibration",
    "SceneMeta",
    "NuScenesWriter",
    "NuScenesReader",
    "TABLES",
    "find_versions",
]

TABLES = (
    "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor",
    "ego_pose", "log", "scene", "sample", "sample_data", "sample_annotation", "map",
)  # fmt: skip

_VISIBILITY = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)
JPEG_QUALITY = 95


def _token(*parts: object) -> str:
    """A deterministic 32-hex nuScenes-style token."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class SensorCalibration:
    """A sensor's calibration on the ego vehicle.

    sensor_to_ego: sensor frame -> ego frame. intrinsics: (3, 3) pixels at ``image_size``
    (width, height) for cameras; ``None`` for LiDAR.
    """

    channel: str
    modality: str
    sensor_to_ego: Pose
    intrinsics: Optional[np.ndarray] = None
    image_size: Optional[tuple[int, int]] = None

    def __post_init__(self) -> None:
        if self.modality not in ("camera", "lidar", "radar"):
            raise ValueError(f"SensorCalibration.modality must be camera|lidar|radar, got {self.modality!r}")
        if self.modality == "camera" and (self.intrinsics is None or np.asarray(self.intrinsics).shape != (3, 3)):
            raise ValueError(f"SensorCalibration({self.channel}).intrinsics must be (3, 3) for a camera")


@dataclass(frozen=True)
class SceneMeta:
    """Scene and log description. ``location`` names the map: maps/expansion/<location>.json."""

    name: str
    description: str
    location: str
    vehicle: str = "synthtown-ego"
    date_captured: str = "2026-01-01"


@dataclass
class _SceneState:
    token: str
    meta: SceneMeta
    log_token: str
    calib: dict  # channel -> calibrated_sensor token
    calib_pose: dict  # channel -> SensorCalibration
    samples: list  # sample records (time-ordered at close)
    data: list  # sample_data records
    ego_poses: dict  # timestamp -> ego_pose token


class NuScenesWriter:
    """Write a nuScenes-format dataset, atomically (into ``ROOT.tmp-*``, renamed on :meth:`close`).

    Use as a context manager; if the block raises, nothing is left at ``root``. Tokens are
    deterministic given the same calls in the same order, so identical inputs give identical files.
    """

    def __init__(self, root: str | Path, version: str = "v1.0-trainval", overwrite: bool = False, key_tolerance_us: int = 0):
        """``key_tolerance_us``: how far (us) a key frame's timestamp may be from its sample's.
        0 demands equality (SynthTown's synchronised sensors); real nuScenes cameras fire up to
        ~50 ms away from the LiDAR sweep that stamps the sample."""
        self.root = Path(root)
        self.key_tolerance_us = int(key_tolerance_us)
        if not version.startswith("v1.0-"):
            raise DataError(f"version must look like 'v1.0-<split>', got {version!r}", self.root, "version")
        if self.root.exists() and not overwrite:
            raise DataError("already exists (pass overwrite=True / --overwrite to replace it)", self.root)
        self.version = version
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.tmp-", dir=self.root.parent))
        self._scenes: dict[str, _SceneState] = {}
        self._tables: dict[str, list] = {t: [] for t in TABLES}
        self._extra_tables: dict[str, list] = {"human_pose": []}
        self._sensors: dict[str, str] = {}
        self._maps: dict[str, str] = {}
        self._instances: dict[str, dict] = {}
        self._anns_by_instance: dict[str, list] = {}
        self._closed = False
        for i, name in enumerate(CATEGORIES):
            self._tables["category"].append({"token": _token("category", name), "name": name, "description": name, "index": i})
        for name in ATTRIBUTES:
            self._tables["attribute"].append({"token": _token("attribute", name), "name": name, "description": name})
        for tok, level, desc in _VISIBILITY:
            self._tables["visibility"].append({"token": tok, "level": level, "description": desc})

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "NuScenesWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Discard everything written so far."""
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._closed = True

    # -- maps and scenes -------------------------------------------------------------------
    def add_map(self, location: str, layers: MapLayers) -> None:
        """Write ``maps/expansion/<location>.json`` and the raster prior; layers in the global frame."""
        self._check_open()
        if location in self._maps:
            raise DataError(f"map for location {location!r} added twice", self.root, "location")
        token = _token("map", location)
        self._write_file(f"maps/{token}.png", semantic_prior_png(layers))
        doc = map_to_expansion_json(location, layers)
        self._write_file(f"maps/expansion/{location}.json", json.dumps(doc).encode())
        self._maps[location] = token
        self._tables["map"].append({"token": token, "log_tokens": [], "category": "semantic_prior", "filename": f"maps/{token}.png"})

    def begin_scene(self, meta: SceneMeta, calibrations: list[SensorCalibration]) -> str:
        """Start a scene; returns its token. Its map (``meta.location``) must be added first."""
        self._check_open()
        token = _token("scene", meta.name)
        if token in self._scenes:
            raise DataError(f"scene name {meta.name!r} used twice", self.root, "scene.name")
        if meta.location not in self._maps:
            raise DataError(f"no map added for location {meta.location!r}; call add_map first", self.root, "log.location")
        log_token = _token("log", meta.name)
        self._tables["log"].append(
            {"token": log_token, "logfile": meta.name, "vehicle": meta.vehicle, "date_captured": meta.date_captured, "location": meta.location}
        )
        next(m for m in self._tables["map"] if m["token"] == self._maps[meta.location])["log_tokens"].append(log_token)
        state = _SceneState(token, meta, log_token, {}, {}, [], [], {})
        for c in calibrations:
            if c.channel not in self._sensors:
                st = _token("sensor", c.channel)
                self._sensors[c.channel] = st
                self._tables["sensor"].append({"token": st, "channel": c.channel, "modality": c.modality})
            ct = _token("calibrated_sensor", meta.name, c.channel)
            self._tables["calibrated_sensor"].append(
                {
                    "token": ct,
                    "sensor_token": self._sensors[c.channel],
                    "translation": c.sensor_to_ego.translation.tolist(),
                    "rotation": c.sensor_to_ego.rotation.tolist(),
                    "camera_intrinsic": np.asarray(c.intrinsics).tolist() if c.intrinsics is not None else [],
                }
            )
            state.calib[c.channel] = ct
            state.calib_pose[c.channel] = c
        self._scenes[token] = state
        return token

    def add_sample(self, scene_token: str, timestamp: int, boxes: list[Box3D], poses: list[HumanPose] = ()) -> str:
        """Add a keyframe at ``timestamp`` (us) with annotations in the global frame. Sensor
        frames flagged ``is_key_frame`` attach to the sample nearest in time (see ``key_tolerance_us``).

        ``Box3D.instance_token`` identifies a track (any stable string; mapped to instance tokens).
        ``HumanPose.instance_token`` must match a box of the same sample.
        """
        scene = self._scene(scene_token)
        token = _token("sample", scene.meta.name, int(timestamp))
        if any(s["token"] == token for s in scene.samples):
            raise DataError(f"two samples at timestamp {timestamp} in scene {scene.meta.name}", self.root, "sample.timestamp")
        scene.samples.append({"token": token, "timestamp": int(timestamp), "prev": "", "next": "", "scene_token": scene_token, "data": {}})
        ann_by_track = {}
        for b in boxes:
            if not b.instance_token:
                raise DataError("every Box3D needs an instance_token (track id)", self.root, "Box3D.instance_token")
            if b.category not in CATEGORIES:
                raise DataError(f"unknown category {b.category!r}; expected one of {CATEGORIES}", self.root, "Box3D.category")
            bad = [a for a in b.attributes if a not in ATTRIBUTES]
            if bad:
                raise DataError(f"unknown attributes {bad}; expected from {ATTRIBUTES}", self.root, "Box3D.attributes")
            inst_tok = self.instance_token(scene_token, b.instance_token)
            if inst_tok not in self._instances:
                self._instances[inst_tok] = {"token": inst_tok, "category_token": _token("category", b.category)}
                self._anns_by_instance[inst_tok] = []
            ann_tok = _token("sample_annotation", token, b.instance_token)
            ann = {
                "token": ann_tok,
                "sample_token": token,
                "instance_token": inst_tok,
                "visibility_token": str(b.visibility),
                "attribute_tokens": [_token("attribute", a) for a in b.attributes],
                "translation": b.center.tolist(),
                "size": b.size.tolist(),
                "rotation": b.rotation.tolist(),
                "prev": "",
                "next": "",
                "num_lidar_pts": int(b.num_lidar_pts),
                "num_radar_pts": int(b.num_radar_pts),
            }
            self._tables["sample_annotation"].append(ann)
            self._anns_by_instance[inst_tok].append((int(timestamp), ann))
            ann_by_track[b.instance_token] = ann_tok
        for p in poses:
            if p.instance_token not in ann_by_track:
                raise DataError(f"pose of {p.instance_token!r} has no box in this sample", self.root, "HumanPose.instance_token")
            self._extra_tables["human_pose"].append(
                {
                    "token": _token("human_pose", ann_by_track[p.instance_token]),
                    "sample_annotation_token": ann_by_track[p.instance_token],
                    "keypoints": p.keypoints.tolist(),
                    "visible": p.visible.astype(int).tolist(),
                }
            )
        return token

    def instance_token(self, scene_token: str, track: str) -> str:
        """The instance token the dataset will use for track id ``track`` of a scene."""
        return _token("instance", self._scene(scene_token).meta.name, track)

    def add_camera_frame(self, scene_token: str, frame: CameraFrame) -> str:
        """Add a camera image (written as JPEG); key frames go to samples/, others to sweeps/."""
        scene = self._scene(scene_token)
        calib = self._calibration(scene, frame.channel, "camera")
        w, h = frame.size
        if calib.image_size is not None and tuple(calib.image_size) != (w, h):
            raise DataError(
                f"image is {w}x{h} but the calibration of {frame.channel} says {calib.image_size[0]}x{calib.image_size[1]}",
                self.root,
                "CameraFrame.image",
            )
        buf = io.BytesIO()
        Image.fromarray(frame.image).save(buf, format="JPEG", quality=JPEG_QUALITY)
        return self._add_data(scene, frame.channel, frame.timestamp, frame.is_key_frame, frame.ego_to_global, buf.getvalue(), "jpg", w, h)

    def add_lidar_sweep(self, scene_token: str, sweep: LidarSweep) -> str:
        """Add a LiDAR sweep (sensor frame, float32 x 5) as ``.pcd.bin``."""
        scene = self._scene(scene_token)
        self._calibration(scene, sweep.channel, "lidar")
        data = np.ascontiguousarray(sweep.points, dtype=np.float32).tobytes()
        return self._add_data(scene, sweep.channel, sweep.timestamp, sweep.is_key_frame, sweep.ego_to_global, data, "pcd.bin", 0, 0)

    def add_extra_file(self, relpath: str, data: bytes) -> None:
        """Write any extra file under the root (e.g. depth buffers); ``relpath`` is relative."""
        self._check_open()
        p = Path(relpath)
        if p.is_absolute() or ".." in p.parts:
            raise DataError("extra file paths must be relative and inside the root", relpath)
        self._write_file(relpath, data)

    def add_extra_table(self, name: str, rows: list[dict]) -> None:
        """Add rows to ``<version>/<name>.json`` (a table the devkit ignores)."""
        self._check_open()
        if name in TABLES:
            raise DataError(f"{name!r} is a nuScenes table; extra tables need another name", self.root, "table")
        self._extra_tables.setdefault(name, []).extend(rows)

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> Path:
        """Link prev/next, write all tables, and move the dataset into place atomically."""
        if self._closed:
            return self.root
        try:
            self._finish_tables()
            table_dir = self._tmp / self.version
            table_dir.mkdir(parents=True, exist_ok=True)
            for name, rows in {**self._tables, **self._extra_tables}.items():
                atomic_write_json(table_dir / f"{name}.json", rows, indent=None)
            if self.root.exists():
                old = self.root.with_name(f".{self.root.name}.old-{os.getpid()}")
                os.replace(self.root, old)
                os.replace(self._tmp, self.root)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self._tmp, self.root)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.root

    def _finish_tables(self) -> None:
        if not self._scenes:
            raise DataError("no scene was added", self.root)
        for scene in self._scenes.values():
            if not scene.samples:
                raise DataError(f"scene {scene.meta.name} has no keyframe (add_sample)", self.root, "scene")
            scene.samples.sort(key=lambda s: s["timestamp"])
            for a, b in zip(scene.samples, scene.samples[1:]):
                a["next"], b["prev"] = b["token"], a["token"]
            key_ts = np.array([s["timestamp"] for s in scene.samples])
            by_channel: dict[str, list] = {}
            for rec in scene.data:
                if rec["is_key_frame"]:
                    j = int(np.argmin(np.abs(key_ts - rec["timestamp"])))
                    sample = scene.samples[j]
                    if abs(int(key_ts[j]) - rec["timestamp"]) > self.key_tolerance_us:
                        raise DataError(
                            f"key frame of {rec['_channel']} at {rec['timestamp']} is more than {self.key_tolerance_us} us "
                            f"from every sample timestamp",
                            self.root,
                            "is_key_frame",
                        )
                    if rec["_channel"] in sample["data"]:
                        raise DataError(f"two key frames of {rec['_channel']} at {rec['timestamp']}", self.root, "is_key_frame")
                    sample["data"][rec["_channel"]] = rec["token"]
                    rec["sample_token"] = sample["token"]
                else:  # a sweep belongs to the nearest keyframe at or after it (nuScenes convention)
                    i = min(int(np.searchsorted(key_ts, rec["timestamp"])), len(key_ts) - 1)
                    rec["sample_token"] = scene.samples[i]["token"]
                by_channel.setdefault(rec["_channel"], []).append(rec)
            for recs in by_channel.values():
                recs.sort(key=lambda r: r["timestamp"])
                for a, b in zip(recs, recs[1:]):
                    a["next"], b["prev"] = b["token"], a["token"]
            self._tables["scene"].append(
                {
                    "token": scene.token,
                    "log_token": scene.log_token,
                    "nbr_samples": len(scene.samples),
                    "first_sample_token": scene.samples[0]["token"],
                    "last_sample_token": scene.samples[-1]["token"],
                    "name": scene.meta.name,
                    "description": scene.meta.description,
                }
            )
            for s in scene.samples:
                s.pop("data")
                self._tables["sample"].append(s)
            for rec in scene.data:
                rec.pop("_channel")
                self._tables["sample_data"].append(rec)
        for inst_tok, anns in self._anns_by_instance.items():
            anns.sort(key=lambda ta: ta[0])
            for (_, a), (_, b) in zip(anns, anns[1:]):
                a["next"], b["prev"] = b["token"], a["token"]
            inst = self._instances[inst_tok]
            inst.update(nbr_annotations=len(anns), first_annotation_token=anns[0][1]["token"], last_annotation_token=anns[-1][1]["token"])
            self._tables["instance"].append(inst)

    # -- internals --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise DataError("writer already closed", self.root)

    def _scene(self, scene_token: str) -> _SceneState:
        self._check_open()
        if scene_token not in self._scenes:
            raise DataError(f"unknown scene token {scene_token!r}; call begin_scene first", self.root, "scene_token")
        return self._scenes[scene_token]

    def _calibration(self, scene: _SceneState, channel: str, modality: str) -> SensorCalibration:
        calib = scene.calib_pose.get(channel)
        if calib is None or calib.modality != modality:
            raise DataError(f"no {modality} calibration for channel {channel!r} in scene {scene.meta.name}", self.root, "channel")
        return calib

    def _write_file(self, relpath: str, data: bytes) -> None:
        path = self._tmp / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # the whole tree is renamed into place at close()

    def _add_data(self, scene, channel, timestamp, is_key, ego_to_global: Pose, data: bytes, ext: str, w: int, h: int) -> str:
        timestamp = int(timestamp)
        ep = scene.ego_poses.get(timestamp)
        if ep is None:
            ep = _token("ego_pose", scene.meta.name, timestamp)
            scene.ego_poses[timestamp] = ep
            self._tables["ego_pose"].append(
                {"token": ep, "timestamp": timestamp, "rotation": ego_to_global.rotation.tolist(), "translation": ego_to_global.translation.tolist()}
            )
        folder = "samples" if is_key else "sweeps"
        filename = f"{folder}/{channel}/{scene.meta.name}__{channel}__{timestamp}.{ext}"
        self._write_file(filename, data)
        token = _token("sample_data", scene.meta.name, channel, timestamp)
        scene.data.append(
            {
                "token": token,
                "sample_token": "",
                "ego_pose_token": ep,
                "calibrated_sensor_token": scene.calib[channel],
                "timestamp": timestamp,
                "fileformat": ext.split(".")[0],
                "is_key_frame": bool(is_key),
                "height": int(h),
                "width": int(w),
                "filename": filename,
                "prev": "",
                "next": "",
                "_channel": channel,
            }
        )
        return token


def find_versions(root: str | Path) -> list[str]:
    """The table versions under a root (folders ``v1.0-*`` holding ``scene.json``)."""
    root = Path(root)
    return sorted(p.name for p in root.glob("v1.0-*") if (p / "scene.json").is_file())


class NuScenesReader:
    """Read a nuScenes-format root (real nuScenes or genesis-drive's own) through nuscenes-devkit.

    Structural problems (missing root, version, tables, fields, what the devkit's load needs:
    :func:`~.validate.check_tables`) raise :class:`DataError` naming the file and field before the
    devkit is asked to load anything. Absent optional parts do not stop the load: a root without
    the map expansion (nuScenes v1.0-mini as first downloaded) loads with one warning naming the
    missing ``maps/expansion/<location>.json`` files; :meth:`map_layers` then gives empty layers
    (with a warning), or raises naming the file when called with ``required=True``.
    """

    def __init__(self, root: str | Path, version: str | None = None):
        from .validate import check_tables, missing_map_expansions

        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("dataset root not found (expected a folder holding v1.0-*/ tables)", self.root)
        versions = find_versions(self.root)
        if version is None:
            if not versions:
                raise DataError("no table folder v1.0-*/ with scene.json found", self.root, "version")
            if len(versions) > 1:
                raise DataError(f"several versions {versions}; pass one with --version", self.root, "version")
            version = versions[0]
        elif version not in versions:
            raise DataError(f"version {version!r} not found; available: {versions or 'none'}", self.root, "version")
        self.version = version
        problems = check_tables(self.root, version)
        if problems:
            raise DataError("invalid tables:\n  " + "\n  ".join(str(p) for p in problems[:20]), self.root / version)
        from nuscenes.nuscenes import NuScenes

        with contextlib.redirect_stdout(io.StringIO()):
            self.nusc = NuScenes(version=version, dataroot=str(self.root), verbose=False)
        missing = missing_map_expansions(self.root, (r["location"] for r in self.nusc.log))
        if missing:
            names = ", ".join(Path(p.path).name for p in missing)
            warnings.warn(
                f"{self.root / 'maps' / 'expansion'}: vector map(s) {names} not found (the nuScenes map expansion is a separate "
                "download); the root loads, map conditions will be empty, code that needs the map stops",
                stacklevel=2,
            )
        self._poses_by_ann = {r["sample_annotation_token"]: r for r in self.extra_table("human_pose")}
        self._maps: dict[str, MapLayers] = {}
        self._channel_cache: dict[tuple[str, str], list[str]] = {}

    # -- scenes and indices ------------------------------------------------------------------
    def scene_tokens(self) -> list[str]:
        return [s["token"] for s in self.nusc.scene]

    def scene_name(self, scene_token: str) -> str:
        return self.nusc.get("scene", scene_token)["name"]

    def scene_location(self, scene_token: str) -> str:
        return self.nusc.get("log", self.nusc.get("scene", scene_token)["log_token"])["location"]

    def sample_tokens(self, scene_token: str) -> list[str]:
        out, tok = [], self.nusc.get("scene", scene_token)["first_sample_token"]
        while tok:
            out.append(tok)
            tok = self.nusc.get("sample", tok)["next"]
        return out

    def channels(self, scene_token: str) -> list[str]:
        first = self.nusc.get("sample", self.nusc.get("scene", scene_token)["first_sample_token"])
        return list(first["data"].keys())

    def channel_tokens(self, scene_token: str, channel: str) -> list[str]:
        """Every sample_data token of ``channel`` in the scene (key frames and sweeps), time order."""
        key = (scene_token, channel)
        if key not in self._channel_cache:
            first = self.nusc.get("sample", self.nusc.get("scene", scene_token)["first_sample_token"])
            if channel not in first["data"]:
                raise DataError(f"scene {self.scene_name(scene_token)} has no channel {channel!r}", self.root, "sample.data")
            tok = first["data"][channel]
            while self.nusc.get("sample_data", tok)["prev"]:  # sweeps recorded before the first keyframe
                tok = self.nusc.get("sample_data", tok)["prev"]
            out = []
            while tok:
                out.append(tok)
                tok = self.nusc.get("sample_data", tok)["next"]
            self._channel_cache[key] = out
        return self._channel_cache[key]

    def sample_data(self, sd_token: str) -> dict:
        return self.nusc.get("sample_data", sd_token)

    # -- sensor data -------------------------------------------------------------------------
    def _poses(self, sd: dict) -> tuple[Pose, Pose, dict]:
        cs = self.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        ep = self.nusc.get("ego_pose", sd["ego_pose_token"])
        return Pose(cs["rotation"], cs["translation"]), Pose(ep["rotation"], ep["translation"]), cs

    def camera_frame(self, sd_token: str, load_image: bool = True) -> CameraFrame:
        sd = self.nusc.get("sample_data", sd_token)
        if sd["sensor_modality"] != "camera":
            raise DataError(f"sample_data {sd_token} is {sd['sensor_modality']}, not camera", self.root, "sample_data.sensor_modality")
        s2e, e2g, cs = self._poses(sd)
        path = self.root / sd["filename"]
        if load_image:
            image = read_image(path)
        else:
            image = np.zeros((max(sd["height"], 1), max(sd["width"], 1), 3), dtype=np.uint8)
        return CameraFrame(sd["channel"], image, np.array(cs["camera_intrinsic"]), s2e, e2g, sd["timestamp"], sd["is_key_frame"], sd_token)

    def lidar_sweep(self, sd_token: str) -> LidarSweep:
        sd = self.nusc.get("sample_data", sd_token)
        if sd["sensor_modality"] != "lidar":
            raise DataError(f"sample_data {sd_token} is {sd['sensor_modality']}, not lidar", self.root, "sample_data.sensor_modality")
        s2e, e2g, _ = self._poses(sd)
        return LidarSweep(read_lidar_points(self.root / sd["filename"]), s2e, e2g, sd["timestamp"], sd["is_key_frame"], sd_token, sd["channel"])

    def ego_pose(self, sd_token: str) -> Pose:
        return self._poses(self.nusc.get("sample_data", sd_token))[1]

    # -- annotations -------------------------------------------------------------------------
    def boxes(self, sample_token: str) -> list[Box3D]:
        """Annotated boxes of a keyframe in the global frame (velocity from the devkit, 0 if unknown)."""
        out = []
        for ann_tok in self.nusc.get("sample", sample_token)["anns"]:
            a = self.nusc.get("sample_annotation", ann_tok)
            vel = self.nusc.box_velocity(ann_tok)
            out.append(
                Box3D(
                    center=a["translation"],
                    size=a["size"],
                    rotation=a["rotation"],
                    category=a["category_name"],
                    instance_token=a["instance_token"],
                    token=ann_tok,
                    attributes=tuple(self.nusc.get("attribute", t)["name"] for t in a["attribute_tokens"]),
                    velocity=np.nan_to_num(vel, nan=0.0),
                    visibility=int(a["visibility_token"]) if a["visibility_token"] else 4,
                    num_lidar_pts=a["num_lidar_pts"],
                    num_radar_pts=a["num_radar_pts"],
                )
            )
        return out

    def human_poses(self, sample_token: str) -> list[HumanPose]:
        out = []
        for ann_tok in self.nusc.get("sample", sample_token)["anns"]:
            rec = self._poses_by_ann.get(ann_tok)
            if rec is not None:
                inst = self.nusc.get("sample_annotation", ann_tok)["instance_token"]
                out.append(HumanPose(np.array(rec["keypoints"]), inst, np.array(rec["visible"], dtype=bool)))
        return out

    # -- maps and extras ---------------------------------------------------------------------
    def map_path(self, location: str) -> Path:
        """Where the vector map of ``location`` lives: ``ROOT/maps/expansion/<location>.json``."""
        return self.root / "maps" / "expansion" / f"{location}.json"

    def has_map(self, location: str) -> bool:
        """Whether the root holds the vector map of ``location``."""
        return self.map_path(location).is_file()

    def map_layers(self, location: str, required: bool = False) -> MapLayers:
        """Vector map of ``location`` (global frame).

        When the root lacks it: ``required=False`` gives empty layers with a warning (map
        conditions are then empty); ``required=True`` (code that cannot work without the map)
        raises :class:`DataError` naming the missing file.
        """
        path = self.map_path(location)
        if required and not path.is_file():
            raise DataError(
                "vector map not found; this needs the map: install the nuScenes map expansion (v1.3) so that "
                "maps/expansion/<location>.json exists under the root",
                path,
                "log.location",
            )
        if location not in self._maps:
            if path.is_file():
                self._maps[location] = read_map_expansion(path)
            else:
                warnings.warn(f"{path} not found: map conditions will be empty", stacklevel=2)
                self._maps[location] = MapLayers()
        return self._maps[location]

    def extra_table(self, name: str) -> list[dict]:
        path = self.root / self.version / f"{name}.json"
        if not path.is_file():
            return []
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e})", path) from None
        if not isinstance(rows, list):
            raise DataError("expected a JSON list of records", path)
        return rows


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image (H, W, 3); a clear error for a missing or unreadable file."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError("camera image file not found", path, "sample_data.filename") from None
    except OSError as e:
        raise DataError(f"unreadable image ({e})", path, "sample_data.filename") from None


def read_lidar_points(path: Path) -> np.ndarray:
    """LiDAR points (N, 5) float32 from a ``.pcd.bin`` file (float32 x 5 per point)."""
    try:
        raw = np.fromfile(path, dtype=np.float32)
    except FileNotFoundError:
        raise DataError("LiDAR file not found", path, "sample_data.filename") from None
    if raw.size % 5:
        raise DataError(f"size {raw.size * 4} bytes is not a multiple of 20 (float32 x 5 per point)", path, "sample_data.filename")
    return raw.reshape(-1, 5)


__all__ += ["read_image", "read_lidar_points", "expansion_json_to_map"]
