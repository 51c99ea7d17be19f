"""Write generated camera frames as a nuScenes-format root (same tokens and annotations as the source).

:func:`write_generated_root` takes a source root, the scenes to keep and one generated image per
camera ``sample_data`` token, and writes ``OUT``::

    OUT/<version>/*.json                  the source tables, restricted to the chosen scenes
    OUT/samples|sweeps/<CAM>/...jpg       the generated frames (JPEG, at the generated size)
    OUT/samples|sweeps/<LIDAR|RADAR>/...  the source files (hard-linked when possible, else copied)
    OUT/maps/...                          the source maps
    OUT/<version>/generation.json         extra table: one row per camera sample_data,
                                          {"sample_data_token", "generated": bool}
    OUT/generated/videos/<scene>.mp4      a 2x3 view-grid MP4 per scene (12 Hz)
    OUT/generated/clips/<clip>/<CAM>/NNNNNN.png   the generated clips, in the layout `eval video` reads

Tables: ``scene``, ``log``, ``sample``, ``sample_data``, ``ego_pose``, ``calibrated_sensor``,
``sensor``, ``sample_annotation``, ``instance``, ``map`` and ``human_pose`` keep exactly the
records the chosen scenes reference (tokens unchanged); camera channels not generated are
dropped. Camera ``calibrated_sensor`` intrinsics become those of the generated size, by the
resize-to-cover-then-centre-crop of :func:`data.clips.resize_crop` (the transform the clips fed
to the generator went through), so a 3D point projects onto the same image content.

Everything is written into a hidden temporary sibling of ``OUT`` and renamed at the end: after a
failure nothing is left at ``OUT``. The pieces are public for the per-scene parts of
:mod:`generate.shard`: :func:`plan_generated_root` (the tables, from the source only),
:func:`write_root_base` (tables, the source's non-camera files, maps) and :func:`write_scene_files`
(one scene's generated files, independent of the other scenes).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.atomic import atomic_dir
from ..data.clips import resize_crop
from ..data.nuscenes import JPEG_QUALITY, find_versions, read_image
from ..data.schema import clip_scene
from ..errors import DataError
from ..viz.video import view_grid, write_mp4, write_png

__all__ = [
    "write_generated_root", "RootPlan", "plan_generated_root", "read_tables", "write_root_base", "write_scene_files", "generated_intrinsics",
    "clip_folder_name", "out_occupied", "UNCOVERED",
]  # fmt: skip

#: What to do with a camera frame of a kept scene that has no generated image:
#: "error" (refuse), "source" (write the source frame, resized / cropped to the generated size,
#: and mark it ``generated: false`` in ``generation.json``).
UNCOVERED = ("error", "source")


def generated_intrinsics(intrinsics: np.ndarray, source_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """(3, 3) intrinsics of a camera of ``source_size`` (w, h) after :func:`resize_crop` to ``size`` (w, h)."""
    w, h = source_size
    return resize_crop(np.zeros((h, w, 3), dtype=np.uint8), np.asarray(intrinsics, dtype=np.float64), size)[1]


def out_occupied(out: Path) -> bool:
    """Whether writing ``out`` would replace something: it exists and is a file or a non-empty folder
    (an empty folder is simply replaced by the generated root)."""
    out = Path(out)
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


def clip_folder_name(clip_id: str) -> str:
    """Folder name of a clip under ``generated/clips`` (``:`` is not portable in file names)."""
    return clip_id.replace(":", "_")


def read_tables(root: str | Path) -> tuple[str, dict[str, list[dict]]]:
    """``(version, tables)`` of a nuScenes-format root (its one ``v1.0-*/`` folder; name -> rows)."""
    root = Path(root)
    versions = find_versions(root)
    if len(versions) != 1:
        raise DataError(f"expected one table folder v1.0-*/ with scene.json, found {versions or 'none'}", root, "version")
    return versions[0], _load_tables(root, versions[0])


def _load_tables(root: Path, version: str) -> dict[str, list[dict]]:
    tables = {}
    for path in sorted((root / version).glob("*.json")):
        try:
            tables[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e})", path) from None
    return tables


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy holds the same bytes
        shutil.copy2(src, dst)


@dataclass(frozen=True)
class RootPlan:
    """A generated root worked out from the source tables, before any image exists: the output
    ``tables`` (name -> rows, written as ``<version>/<name>.json``), the generated camera
    ``sample_data`` rows per chosen scene name (``camera_sds``, at the generated ``size`` = (w, h)),
    every other kept ``sample_data`` row (``other_sds``: LiDAR, RADAR; their files are the source's),
    and for the uncovered-frame fallback the source intrinsics per camera ``calibrated_sensor`` token."""

    source: Path
    version: str
    views: tuple[str, ...]
    size: tuple[int, int]
    tables: dict[str, list[dict]]
    camera_sds: dict[str, list[dict]]
    other_sds: tuple[dict, ...]
    source_intrinsics: dict[str, np.ndarray]

    @property
    def num_files(self) -> int:
        """Sensor files of the root (camera + others)."""
        return len(self.other_sds) + sum(len(v) for v in self.camera_sds.values())


def plan_generated_root(
    source: str | Path,
    scenes: Sequence[str],
    views: Sequence[str],
    size: tuple[int, int],
    generated: Callable[[str], bool] | None = None,
    source_tables: tuple[str, Mapping[str, list[dict]]] | None = None,
) -> RootPlan:
    """The :class:`RootPlan` of the root generated from ``source`` for ``scenes`` (names) and the
    generated camera channels ``views`` at ``size`` (w, h) (module docstring). ``generated``: camera
    ``sample_data`` token -> whether a generated image is given (its ``generation.json`` flag;
    default: every one). ``source_tables``: ``(version, tables)`` of ``source`` as :func:`read_tables`
    returns them, when already read (many plans of one root). DataError (one line) for an unknown
    scene or a scene lacking a view."""
    source = Path(source)
    version, t = source_tables if source_tables is not None else read_tables(source)
    w, h = size

    by_name = {s["name"]: s for s in t["scene"]}
    unknown = [n for n in scenes if n not in by_name]
    if unknown:
        raise DataError(f"unknown scenes {unknown}; the root has {sorted(by_name)}", source / version / "scene.json", "name")
    if not scenes:
        raise DataError("no scene chosen", source, "scenes")
    scene_tokens = {by_name[n]["token"] for n in scenes}
    name_of_scene = {by_name[n]["token"]: n for n in scenes}
    samples = [s for s in t["sample"] if s["scene_token"] in scene_tokens]
    sample_tokens = {s["token"] for s in samples}
    calib = {c["token"]: c for c in t["calibrated_sensor"]}
    sensor = {s["token"]: s for s in t["sensor"]}

    def channel(sd: dict) -> tuple[str, str]:
        s = sensor[calib[sd["calibrated_sensor_token"]]["sensor_token"]]
        return s["channel"], s["modality"]

    sds, cams_of_scene = [], {tok: set() for tok in scene_tokens}
    scene_of_sample = {s["token"]: s["scene_token"] for s in samples}
    for sd in t["sample_data"]:
        if sd["sample_token"] not in sample_tokens:
            continue
        ch, modality = channel(sd)
        if modality == "camera":
            cams_of_scene[scene_of_sample[sd["sample_token"]]].add(ch)
            if ch not in views:
                continue
        sds.append(sd)
    for tok, cams in cams_of_scene.items():
        missing = [v for v in views if v not in cams]
        if missing:
            name = next(s["name"] for s in t["scene"] if s["token"] == tok)
            raise DataError(f"scene {name} lacks the camera channels {missing} needed for generation", source, "sample_data")
    cam_sds = [sd for sd in sds if channel(sd)[1] == "camera"]

    # camera intrinsics at the generated size (one source size per calibrated sensor)
    new_calib = {}
    for sd in cam_sds:
        c = calib[sd["calibrated_sensor_token"]]
        src_size = (sd["width"], sd["height"])
        prev = new_calib.get(c["token"])
        if prev is not None and prev[0] != src_size:
            raise DataError(f"calibrated_sensor {c['token']} is used by images of sizes {prev[0]} and {src_size}", source, "sample_data.width")
        if prev is None:
            new_calib[c["token"]] = (src_size, generated_intrinsics(np.array(c["camera_intrinsic"]), src_size, size))

    sd_tokens = {sd["token"] for sd in sds}
    kept_calib = {sd["calibrated_sensor_token"] for sd in sds}
    kept_ego = {sd["ego_pose_token"] for sd in sds}
    anns = [a for a in t.get("sample_annotation", []) if a["sample_token"] in sample_tokens]
    ann_tokens = {a["token"] for a in anns}
    kept_inst = {a["instance_token"] for a in anns}
    kept_logs = {by_name[n]["log_token"] for n in scenes}
    out_tables: dict[str, list[dict]] = dict(t)
    out_tables["scene"] = [s for s in t["scene"] if s["token"] in scene_tokens]
    out_tables["log"] = [r for r in t["log"] if r["token"] in kept_logs]
    out_tables["sample"] = samples
    out_tables["sample_annotation"] = anns
    out_tables["instance"] = [r for r in t.get("instance", []) if r["token"] in kept_inst]
    out_tables["ego_pose"] = [r for r in t["ego_pose"] if r["token"] in kept_ego]
    out_tables["calibrated_sensor"] = []
    for c in t["calibrated_sensor"]:
        if c["token"] in kept_calib:
            c = dict(c)
            if c["token"] in new_calib:
                c["camera_intrinsic"] = new_calib[c["token"]][1].tolist()
            out_tables["calibrated_sensor"].append(c)
    kept_sensors = {c["sensor_token"] for c in out_tables["calibrated_sensor"]}
    out_tables["sensor"] = [s for s in t["sensor"] if s["token"] in kept_sensors]
    out_tables["map"] = [dict(m, log_tokens=[x for x in m["log_tokens"] if x in kept_logs]) for m in t.get("map", [])]
    out_tables["map"] = [m for m in out_tables["map"] if m["log_tokens"]]
    if "human_pose" in t:
        out_tables["human_pose"] = [r for r in t["human_pose"] if r["sample_annotation_token"] in ann_tokens]
    out_sds, camera_sds, other_sds = [], {n: [] for n in scenes}, []
    for sd in sds:
        sd = dict(sd)
        for link in ("prev", "next"):  # a dropped neighbour (other scene) cannot be referenced
            if sd[link] and sd[link] not in sd_tokens:
                sd[link] = ""
        if sd["calibrated_sensor_token"] in new_calib:
            sd["width"], sd["height"] = w, h
            camera_sds[name_of_scene[scene_of_sample[sd["sample_token"]]]].append(sd)
        else:
            other_sds.append(sd)
        out_sds.append(sd)
    out_tables["sample_data"] = out_sds
    is_generated = generated or (lambda tok: True)
    out_tables["generation"] = [{"sample_data_token": sd["token"], "generated": bool(is_generated(sd["token"]))} for sd in cam_sds]
    intrinsics = {tok: np.array(calib[tok]["camera_intrinsic"]) for tok in new_calib}
    return RootPlan(source, version, tuple(views), (w, h), out_tables, camera_sds, tuple(other_sds), intrinsics)


def write_root_base(plan: RootPlan, root: Path, *, maps: bool = True, bar: tqdm | None = None) -> None:
    """Write the plan's tables and its non-camera sensor files (the source's, hard-linked when
    possible, else copied) into ``root`` (a folder being filled), with the source maps (``maps``)."""
    source = plan.source
    for name, rows in plan.tables.items():
        path = root / plan.version / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows))
    for sd in plan.other_sds:
        src = source / sd["filename"]
        if not src.is_file():
            raise DataError("sensor file not found", src, "sample_data.filename")
        _link_or_copy(src, root / sd["filename"])
        if bar is not None:
            bar.update(1)
    if maps and (source / "maps").is_dir():
        for src in (source / "maps").rglob("*"):
            if src.is_file():
                _link_or_copy(src, root / "maps" / src.relative_to(source / "maps"))


def write_scene_files(
    plan: RootPlan,
    root: Path,
    scene: str,
    frames: Mapping[str, np.ndarray],
    clips: Mapping[str, np.ndarray] | None = None,
    *,
    uncovered: str = "error",
    fps: float = 12.0,
    progress: bool = True,
    bar: tqdm | None = None,
) -> list[str]:
    """Write the generated files of one chosen ``scene`` (name) into ``root``: its camera JPEGs
    (``frames``: camera ``sample_data`` token -> (h, w, 3) uint8 at the plan's size; a missing one
    is the resized source frame when ``uncovered == "source"``), its view-grid MP4 and its ``clips``
    (clip id -> (v t h w 3) uint8 in the plan's views order). Returns the written paths, relative to
    ``root``. A scene's files do not depend on the other scenes of the plan."""
    w, h = plan.size
    written = []
    for sd in plan.camera_sds[scene]:
        img = frames.get(sd["token"])
        if img is None:
            if uncovered != "source":
                raise DataError(f"camera frame {sd['token']} of scene {scene} has no generated image", plan.source, "frames")
            src = read_image(plan.source / sd["filename"])
            img = resize_crop(src, plan.source_intrinsics[sd["calibrated_sensor_token"]], plan.size)[0]
        dst = root / sd["filename"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(_jpeg(np.asarray(img)))
        written.append(sd["filename"])
        if bar is not None:
            bar.update(1)
    written.append(_write_video(root, plan, scene, frames, fps, progress))
    for clip_id, video in (clips or {}).items():
        video = np.asarray(video)
        if video.ndim != 5 or video.shape[0] != len(plan.views) or video.shape[2:] != (h, w, 3):
            raise DataError(f"clip {clip_id} must be (v={len(plan.views)}, t, {h}, {w}, 3) uint8, got {video.shape}", root, "clips")
        for view, frames_v in zip(plan.views, video):
            for i, img in enumerate(frames_v):
                rel = f"generated/clips/{clip_folder_name(clip_id)}/{view}/{i:06d}.png"
                write_png(root / rel, img)
                written.append(rel)
    return written


def write_generated_root(
    source: str | Path,
    out: str | Path,
    scenes: Sequence[str],
    views: Sequence[str],
    frames: Mapping[str, np.ndarray],
    size: tuple[int, int],
    clips: Mapping[str, np.ndarray] | None = None,
    uncovered: str = "error",
    overwrite: bool = False,
    fps: float = 12.0,
    progress: bool = True,
) -> Path:
    """Write ``out`` from the ``source`` root (see the module doc). Returns ``out``.

    scenes: scene names to keep. views: the generated camera channels (every kept scene must
        have them). frames: camera ``sample_data`` token -> generated image (h, w, 3) uint8 at
        ``size`` = (w, h). clips: clip id -> generated clip (v, t, h, w, 3) uint8 in ``views``
        order, written under ``generated/clips``. uncovered: see :data:`UNCOVERED`.
    """
    source, out = Path(source), Path(out)
    if uncovered not in UNCOVERED:
        raise DataError(f"uncovered must be one of {UNCOVERED}, got {uncovered!r}", out, "uncovered")
    if out_occupied(out) and not overwrite:
        raise DataError("already exists and is not empty (pass --overwrite to replace it)", out, "--out")
    plan = plan_generated_root(source, scenes, views, size, generated=lambda tok: tok in frames)
    w, h = size
    cam_tokens = [sd["token"] for sds in plan.camera_sds.values() for sd in sds]
    not_generated = [tok for tok in cam_tokens if tok not in frames]
    if not_generated and uncovered == "error":
        raise DataError(f"{len(not_generated)} camera frames have no generated image (first: {not_generated[0]})", source, "frames")
    for tok, img in frames.items():
        if np.asarray(img).shape != (h, w, 3) or np.asarray(img).dtype != np.uint8:
            raise DataError(f"generated frame {tok} must be ({h}, {w}, 3) uint8, got {np.asarray(img).shape}", out, "frames")
    scene_of_clip = {}
    for clip_id in clips or {}:
        name = clip_scene(clip_id)
        if name not in plan.camera_sds:
            raise DataError(f"clip {clip_id} is of no chosen scene ({sorted(plan.camera_sds)})", out, "clips")
        scene_of_clip[clip_id] = name

    with atomic_dir(out) as tmp:
        with tqdm(total=plan.num_files, desc="write root", unit="file", disable=not progress) as bar:
            write_root_base(plan, tmp, bar=bar)
            for name in scenes:
                scene_clips = {c: v for c, v in (clips or {}).items() if scene_of_clip[c] == name}
                write_scene_files(plan, tmp, name, frames, scene_clips, uncovered=uncovered, fps=fps, progress=progress, bar=bar)
    return out


def _write_video(root: Path, plan: RootPlan, scene: str, frames: Mapping[str, np.ndarray], fps: float, progress: bool) -> str:
    """The scene's view-grid MP4 ``generated/videos/<scene>.mp4`` (12 Hz): for each frame of the
    reference view (``views[0]``), every view's frame nearest in time (black where a frame was not
    generated). Returns its path relative to ``root``."""
    w, h = plan.size
    views = plan.views
    chans: dict[str, list[tuple[int, str]]] = {}
    channel_of = {c["token"]: s["channel"] for c in plan.tables["calibrated_sensor"] for s in plan.tables["sensor"]
                  if s["token"] == c["sensor_token"]}  # fmt: skip
    for sd in plan.camera_sds[scene]:
        chans.setdefault(channel_of[sd["calibrated_sensor_token"]], []).append((sd["timestamp"], sd["token"]))
    chans = {ch: sorted(v) for ch, v in chans.items()}
    times = {ch: np.array([x[0] for x in v]) for ch, v in chans.items()}
    black = np.zeros((h, w, 3), dtype=np.uint8)
    video = []
    for t_ref, _ in chans[views[0]]:
        row = []
        for ch in views:
            tok = chans[ch][int(np.argmin(np.abs(times[ch] - t_ref)))][1]
            row.append(np.asarray(frames.get(tok, black)))
        video.append(view_grid(np.stack(row), list(views)))
    rel = f"generated/videos/{scene}.mp4"
    write_mp4(root / rel, np.stack(video), fps=fps, progress=progress)
    return rel
