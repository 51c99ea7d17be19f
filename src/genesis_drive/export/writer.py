"""Export scenes of a nuScenes-format root into one folder of files other tools open.

Layout of ``OUT`` (one folder per scene, named after it)::

    export.json                      what was exported: root, version, scenes, formats, file counts
    <scene>/<scene>.mp4              mp4: the 2 x 3 camera grid at the reference camera's rate (H.264)
    <scene>/frames/<CAM_*>/<file>    frames: every camera image of the scene, the root's JPEG bytes
    <scene>/pcd/<file>.pcd.bin       pcd: every LIDAR_TOP sweep, byte copies (nuScenes float32 x 5)
    <scene>/ply/<file>.ply           ply: every sweep as binary PLY (LiDAR sensor frame, metres)
    <scene>/bev/<k>_<timestamp>.png  bev: BEV plot of keyframe k (ego frame of its LiDAR sweep)
    <scene>/lidar_on_image/<k>_<timestamp>.png   lidar-on-image: keyframe k's sweep on the camera grid
    <scene>/<scene>.rrd              rrd: the Rerun recording (:mod:`.rerun_rec`)

The folder is written as a hidden sibling and renamed into place (an older export at ``OUT`` is
replaced whole; a folder that is not an export is never overwritten).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..data.atomic import atomic_write_json, replace_dir
from ..data.nuscenes import NuScenesReader
from ..data.schema import LIDAR_CHANNEL
from ..errors import ConfigError, DataError
from .pictures import scene_cameras, write_bev, write_lidar_on_images, write_scene_video
from .ply import write_ply
from .rerun_rec import write_rrd

__all__ = ["FORMATS", "ExportConfig", "parse_formats", "export_root"]

#: Every export format, in the order they are written.
FORMATS: tuple[str, ...] = ("mp4", "frames", "pcd", "ply", "bev", "lidar-on-image", "rrd")


@dataclass(frozen=True)
class ExportConfig:
    """What to export. ``scenes``: scene names (empty: all); ``formats``: a subset of :data:`FORMATS`;
    ``tile_width``: pixels per camera tile in the MP4 grid; ``version``: table version (None: the only one)."""

    scenes: tuple[str, ...] = ()
    formats: tuple[str, ...] = FORMATS
    tile_width: int = 640
    version: str | None = None


def parse_formats(text: str) -> tuple[str, ...]:
    """``"mp4,ply"`` -> ``("mp4", "ply")`` in :data:`FORMATS` order; ConfigError naming an unknown one."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ConfigError(f"--formats: unknown format(s) {unknown or [text]}; choose from {','.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in names)


def _scenes(reader: NuScenesReader, wanted: tuple[str, ...]) -> list[tuple[str, str]]:
    by_name = {reader.scene_name(t): t for t in reader.scene_tokens()}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise DataError(f"no scene named {', '.join(missing)}; scenes: {', '.join(sorted(by_name))}", reader.root, "--scenes")
    return [(n, by_name[n]) for n in (wanted or tuple(by_name))]


def _work(reader: NuScenesReader, scene: str, token: str, fmt: str, out: Path, tile_width: int) -> list:
    """Callables (each writing one file) of one format of one scene."""
    channels = reader.channels(token)
    lidar = reader.channel_tokens(token, LIDAR_CHANNEL) if LIDAR_CHANNEL in channels else []
    samples = reader.sample_tokens(token)
    if fmt == "mp4":
        return [lambda: write_scene_video(reader, token, out / f"{scene}.mp4", tile_width=tile_width)]
    if fmt == "frames":
        jobs = []
        for ch in scene_cameras(reader, token):
            for sd in reader.channel_tokens(token, ch):
                src = reader.root / reader.sample_data(sd)["filename"]
                jobs.append(lambda src=src, ch=ch: _copy(src, out / "frames" / ch / src.name))
        return jobs
    if fmt == "pcd":
        return [lambda src=reader.root / reader.sample_data(sd)["filename"]: _copy(src, out / "pcd" / src.name) for sd in lidar]
    if fmt == "ply":
        return [lambda sd=sd: write_ply(out / "ply" / _stem(reader, sd), reader.lidar_sweep(sd).points) for sd in lidar]
    if fmt in ("bev", "lidar-on-image"):
        if not lidar:
            return []
        folder, fn = ("bev", write_bev) if fmt == "bev" else ("lidar_on_image", write_lidar_on_images)
        return [
            lambda k=k, s=s: fn(reader, token, s, out / folder / f"{k:03d}_{reader.nusc.get('sample', s)['timestamp']}.png")
            for k, s in enumerate(samples)
        ]
    return [lambda: write_rrd(reader, token, out / f"{scene}.rrd")]


def _stem(reader: NuScenesReader, sd: str) -> str:
    name = Path(reader.sample_data(sd)["filename"]).name
    return (name[: -len(".pcd.bin")] if name.endswith(".pcd.bin") else Path(name).stem) + ".ply"


def _copy(src: Path, dst: Path) -> Path:
    if not src.is_file():
        raise DataError("file named by sample_data not found", src, "sample_data.filename")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)  # inside the hidden export folder: the whole folder is renamed at the end
    return dst


def export_root(root: str | Path, out: str | Path, config: ExportConfig = ExportConfig(), progress: bool = True) -> dict:
    """Export ``config.scenes`` of ``root`` into ``out`` (layout in the module docstring).

    Returns the ``export.json`` content: ``{"root", "version", "formats", "scenes": {name: {format: file count}}}``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "export.json").is_file())):
        raise DataError("exists and is not an export folder (no export.json); choose another --out", out)
    for f in config.formats:
        if f not in FORMATS:
            raise ConfigError(f"ExportConfig.formats: unknown format {f!r}; choose from {', '.join(FORMATS)}")
    reader = NuScenesReader(root, config.version)
    scenes = _scenes(reader, config.scenes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        jobs = [
            (name, fmt, job)
            for name, tok in scenes
            for fmt in config.formats
            for job in _work(reader, name, tok, fmt, tmp / name, config.tile_width)
        ]
        counts = {name: {fmt: 0 for fmt in config.formats} for name, _ in scenes}
        for name, fmt, job in tqdm(jobs, desc=f"export {Path(root).name}", unit="file", disable=not progress):
            job()
            counts[name][fmt] += 1
        summary = {"root": str(Path(root).resolve()), "version": reader.version, "formats": list(config.formats), "scenes": counts}
        atomic_write_json(tmp / "export.json", summary, indent=2)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return json.loads((out / "export.json").read_text())
