"""A Rerun recording (``.rrd``) of one scene of a nuScenes-format root (real or generated).

Open it with the Rerun viewer (``rerun scene.rrd``; the viewer of the same version as the
``rerun-sdk`` package). Everything is in the global (map) frame, z up, metres; one timeline
``timestamp`` holds the scene's keyframe (sample) times and a sequence timeline ``sample`` their
index, so the recording has one frame per sample. Entities:

* ``world/ego``: Transform3D ego -> global at each sample (from the LIDAR_TOP keyframe's ego pose);
* ``world/ego_path``: LineStrips3D of the ego positions over the whole scene (static);
* ``world/<CAM_*>``: Transform3D camera -> global of each keyframe image (its own ego pose), a
  static Pinhole (intrinsics, resolution, x right / y down / z forward) and the JPEG as EncodedImage;
* ``world/LIDAR_TOP``: Transform3D sensor -> global and Points3D in the sensor frame, coloured by
  height in the ego frame (viridis, -1 .. 4 m, as in the BEV plot);
* ``world/boxes``: Boxes3D of the annotations (global frame), labelled ``<category> #<track>``,
  coloured by :data:`CLASS_COLORS`, class ids 1 + index in :data:`DETECTION_CLASSES` (0: none),
  with AnyValues ``track_id`` (scene-local integers by first appearance) and ``instance_token``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..data.atomic import atomic_output
from ..data.geometry import Pose
from ..data.nuscenes import NuScenesReader
from ..data.schema import DETECTION_CLASSES, LIDAR_CHANNEL
from ..layout.colors import CLASS_COLORS
from ..viz.overlay import depth_colors
from .pictures import scene_cameras

__all__ = ["TIMELINE", "SEQUENCE", "write_rrd"]

TIMELINE = "timestamp"
SEQUENCE = "sample"


def _transform(rr, pose: Pose):
    return rr.Transform3D(translation=pose.translation, quaternion=_xyzw(pose.rotation))


def _xyzw(q_wxyz: np.ndarray) -> np.ndarray:
    """Quaternion(s) (..., 4) w, x, y, z -> x, y, z, w as a plain array.

    (rerun-sdk 0.23's datatype objects such as ``rr.Quaternion`` or ``rr.AnnotationInfo`` convert
    through numpy-2-only ``asarray(copy=...)``; plain arrays work with the project's numpy 1.)"""
    q = np.asarray(q_wxyz, dtype=np.float64)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def _log_scene(rr, rec, reader: NuScenesReader, scene_token: str, lidar_radius: float) -> None:
    samples = reader.sample_tokens(scene_token)
    cams = scene_cameras(reader, scene_token)
    has_lidar = LIDAR_CHANNEL in reader.channels(scene_token)
    tracks: dict[str, int] = {}
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    ego_xyz = []
    for i, tok in enumerate(samples):
        sample = reader.nusc.get("sample", tok)
        rec.set_time(SEQUENCE, sequence=i)
        rec.set_time(TIMELINE, timestamp=np.datetime64(int(sample["timestamp"]), "us"))
        data = sample["data"]
        ego = reader.ego_pose(data[LIDAR_CHANNEL] if has_lidar else data[cams[0]])
        ego_xyz.append(ego.translation)
        rec.log("world/ego", _transform(rr, ego))
        for ch in cams:
            frame = reader.camera_frame(data[ch], load_image=False)
            sd = reader.sample_data(data[ch])
            if i == 0:
                w, h = frame.size
                pinhole = rr.Pinhole(image_from_camera=frame.intrinsics, resolution=[w, h], camera_xyz=rr.ViewCoordinates.RDF)
                rec.log(f"world/{ch}", pinhole, static=True)
            rec.log(f"world/{ch}", _transform(rr, frame.ego_to_global @ frame.sensor_to_ego))
            rec.log(f"world/{ch}", rr.EncodedImage(contents=(reader.root / sd["filename"]).read_bytes(), media_type="image/jpeg"))
        if has_lidar:
            sweep = reader.lidar_sweep(data[LIDAR_CHANNEL])
            z_ego = sweep.sensor_to_ego.apply(sweep.points[:, :3].astype(np.float64))[:, 2]
            rec.log(f"world/{LIDAR_CHANNEL}", _transform(rr, sweep.ego_to_global @ sweep.sensor_to_ego))
            rec.log(
                f"world/{LIDAR_CHANNEL}",
                rr.Points3D(sweep.points[:, :3], colors=depth_colors(z_ego + 1.0, 5.0, "viridis"), radii=lidar_radius),
            )
        boxes = reader.boxes(tok)
        for b in boxes:
            tracks.setdefault(b.instance_token, len(tracks))
        ids = [tracks[b.instance_token] for b in boxes]
        cls = [DETECTION_CLASSES.index(b.detection_class) + 1 if b.detection_class else 0 for b in boxes]
        extra = [rr.AnyValues(track_id=np.asarray(ids, dtype=np.int64), instance_token=[b.instance_token for b in boxes])] if boxes else []
        rec.log(
            "world/boxes",
            rr.Boxes3D(
                centers=[b.center for b in boxes] or np.zeros((0, 3)),
                half_sizes=[(b.size[1] / 2, b.size[0] / 2, b.size[2] / 2) for b in boxes] or np.zeros((0, 3)),
                quaternions=_xyzw(np.array([b.rotation for b in boxes]).reshape(-1, 4)),
                colors=np.array([CLASS_COLORS.get(b.detection_class, (255, 255, 255)) for b in boxes], dtype=np.uint8).reshape(-1, 3),
                labels=[f"{b.category} #{t}" for b, t in zip(boxes, ids)],
                class_ids=np.asarray(cls, dtype=np.int64),
            ),
            *extra,
        )
    rec.log("world/ego_path", rr.LineStrips3D([np.asarray(ego_xyz)], colors=[(255, 64, 64)]), static=True)


def write_rrd(reader: NuScenesReader, scene_token: str, path: str | Path, lidar_radius: float = 0.05) -> Path:
    """Write the recording of one scene (see the module docstring) to ``path``, atomically.

    ``lidar_radius``: point radius in metres in the viewer. Returns ``path``.
    """
    import rerun as rr
    from rerun.error_utils import RerunWarning

    path = Path(path)
    name = reader.scene_name(scene_token)
    # rerun-sdk reports data it cannot convert as a warning and drops it: here that is an error
    with warnings.catch_warnings(), atomic_output(path, suffix=".rrd") as tmp:
        warnings.simplefilter("error", RerunWarning)
        rec = rr.RecordingStream(f"genesis-drive/{name}", recording_id=scene_token)
        rec.save(tmp)
        try:
            _log_scene(rr, rec, reader, scene_token, lidar_radius)
        finally:
            rec.flush(blocking=True)
            rec.disconnect()
    return path
