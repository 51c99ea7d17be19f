"""The report section of one scene: its camera grid video, a keyframe BEV plot and its LiDAR in 3D.

With ``compare_root`` (e.g. a generated root made from the same scene), the point view holds
both roots' sweeps of that keyframe in the first root's ego frame (toggle each; colour by source),
and the compared root's video follows the first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.nuscenes import NuScenesReader
from ..errors import DataError
from ..export.pictures import keyframe_points_ego, write_bev, write_scene_video
from .html import Cloud, Picture, PointView, Section, Video

__all__ = ["scene_section"]


def _scene_token(reader: NuScenesReader, name: str) -> str:
    by_name = {reader.scene_name(t): t for t in reader.scene_tokens()}
    if name not in by_name:
        raise DataError(f"no scene named {name!r}; scenes: {', '.join(sorted(by_name))}", reader.root, "scene.name")
    return by_name[name]


def scene_section(
    root: str | Path,
    scene: str,
    work_dir: str | Path,
    keyframe: int = 0,
    compare_root: str | Path | None = None,
    labels: tuple[str, str] = ("real", "generated"),
    tile_width: int = 320,
) -> Section:
    """A :class:`Section` for ``scene`` of ``root``; its files (MP4, PNG) are written into ``work_dir``
    (they are embedded into the report, ``work_dir`` may be deleted after :func:`write_report`).

    ``keyframe``: index of the sample shown in the BEV and the point view. ``labels``: names of
    ``root`` and ``compare_root`` in the view. ``tile_width``: pixels per camera in the video."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    roots = [(labels[0], NuScenesReader(root))]
    if compare_root is not None:
        roots.append((labels[1], NuScenesReader(compare_root)))
    items, clouds = [], []
    ref_pose = None
    for i, (label, reader) in enumerate(roots):
        token = _scene_token(reader, scene)
        samples = reader.sample_tokens(token)
        if not 0 <= keyframe < len(samples):
            raise DataError(f"scene {scene} has {len(samples)} keyframes; keyframe {keyframe} is out of range", reader.root, "keyframe")
        video = write_scene_video(reader, token, work / f"{label}_{scene}.mp4", tile_width=tile_width)
        items.append(Video(f"{label}: {scene}, six cameras", video))
        points, ego = keyframe_points_ego(reader, samples[keyframe])
        if i == 0:
            ref_pose = ego
            bev = write_bev(reader, token, samples[keyframe], work / f"{label}_{scene}_bev.png")
            items.append(Picture(f"{label}: BEV at keyframe {keyframe} (LiDAR, boxes, map; ego frame)", bev))
        xyz = ref_pose.inverse().apply(ego.apply(points[:, :3]))  # into the first root's ego frame
        clouds.append(Cloud(f"{label} LIDAR_TOP", np.asarray(xyz)))
    items.append(PointView(f"LiDAR at keyframe {keyframe} (ego frame of {labels[0]})", tuple(clouds)))
    return Section(f"Scene {scene}", tuple(items))
