"""Clips: scenes cut into windows of T frames x V views (+ LiDAR, layout, caption), as a torch Dataset.

A clip's frames follow a *reference camera* (``spec.views[0]``, CAM_FRONT by default): at 12 Hz
(``rate="camera"``, every sample_data of that channel) or at 2 Hz (``rate="keyframe"``). Every
other view contributes its frame nearest in time. Annotations exist on keyframes only; on
other frames boxes and poses are interpolated between the surrounding keyframes (centre and
keypoints linearly, rotation by slerp), as MagicDrive-style 12 Hz pipelines do. Objects present
in only one of the two keyframes are kept when that keyframe is the nearer one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .geometry import Pose, crop_intrinsics, interpolate_pose, scale_intrinsics
from .nuscenes import NuScenesReader
from .schema import CAMERA_CHANNELS, LIDAR_CHANNEL, Box3D, Clip, HumanPose

__all__ = ["ClipSpec", "ClipRef", "ClipIndex", "ClipDataset", "clip_to_tensors", "collate_clips", "resize_crop", "interpolate_boxes"]


@dataclass(frozen=True)
class ClipSpec:
    """How scenes are cut into clips.

    num_frames: frames per clip (T). frame_stride: step between clip frames, in reference frames.
    window_stride: reference frames between the starts of consecutive clips.
    rate: "camera" (every frame of the reference camera, 12 Hz on nuScenes) or "keyframe" (2 Hz).
    views: camera channels (V); the first is the reference camera.
    image_size: (width, height) output size: resize to cover, then centre-crop; None keeps.
    lidar: "keyframe" (keyframe sweeps inside the clip's time span), "all" (every sweep), "none".
    map_radius: metres, square map crop around the frame-0 ego.
    """

    num_frames: int = 8
    frame_stride: int = 1
    window_stride: int = 8
    rate: str = "camera"
    views: tuple[str, ...] = CAMERA_CHANNELS
    image_size: Optional[tuple[int, int]] = None
    lidar: str = "keyframe"
    map_radius: float = 60.0

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.frame_stride < 1 or self.window_stride < 1:
            raise ValueError("ClipSpec.num_frames, frame_stride and window_stride must be >= 1")
        if self.rate not in ("camera", "keyframe"):
            raise ValueError(f"ClipSpec.rate must be 'camera' or 'keyframe', got {self.rate!r}")
        if self.lidar not in ("keyframe", "all", "none"):
            raise ValueError(f"ClipSpec.lidar must be 'keyframe', 'all' or 'none', got {self.lidar!r}")
        if not self.views:
            raise ValueError("ClipSpec.views must name at least one camera")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"ClipSpec.image_size must be (width, height), got {self.image_size!r}")


@dataclass(frozen=True)
class ClipRef:
    """A clip's identity: ``clip_id = f"{scene_name}:{start:04d}"`` (start = reference-frame index)."""

    clip_id: str
    scene_token: str
    scene_name: str
    frame_tokens: tuple[str, ...]


def resize_crop(image: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``image`` (H, W, 3) to cover ``size`` (width, height), centre-crop; update intrinsics.

    A 3D point projected with the returned intrinsics lands on the same image content.
    """
    h, w = image.shape[:2]
    tw, th = size
    s = max(tw / w, th / h)
    rw, rh = max(tw, int(round(w * s))), max(th, int(round(h * s)))
    sx, sy = rw / w, rh / h
    if (rw, rh) != (w, h):
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (rw, rh), interpolation=interp)
    left, top = (rw - tw) // 2, (rh - th) // 2
    k = crop_intrinsics(scale_intrinsics(intrinsics, sx, sy), left, top)
    return np.ascontiguousarray(image[top : top + th, left : left + tw]), k


def _interp_box(a: Box3D, b: Box3D, w: float) -> Box3D:
    p = interpolate_pose(Pose(a.rotation, a.center), Pose(b.rotation, b.center), w)
    return replace(a, center=p.translation, rotation=p.rotation, velocity=(1 - w) * a.velocity + w * b.velocity, token="")


def interpolate_boxes(boxes0: list[Box3D], boxes1: list[Box3D], w: float) -> list[Box3D]:
    """Boxes at fraction ``w`` in [0, 1] between two keyframes' boxes (matched by instance token)."""
    if w <= 0:
        return list(boxes0)
    if w >= 1:
        return list(boxes1)
    by1 = {b.instance_token: b for b in boxes1}
    out = []
    for a in boxes0:
        b = by1.pop(a.instance_token, None)
        if b is not None:
            out.append(_interp_box(a, b, w))
        elif w < 0.5:
            out.append(a)
    if w >= 0.5:
        out.extend(by1.values())
    return out


def _interpolate_poses(p0: list[HumanPose], p1: list[HumanPose], w: float) -> list[HumanPose]:
    if w <= 0:
        return list(p0)
    if w >= 1:
        return list(p1)
    by1 = {p.instance_token: p for p in p1}
    out = []
    for a in p0:
        b = by1.pop(a.instance_token, None)
        if b is not None:
            out.append(HumanPose((1 - w) * a.keypoints + w * b.keypoints, a.instance_token, a.visible & b.visible))
        elif w < 0.5:
            out.append(a)
    if w >= 0.5:
        out.extend(by1.values())
    return out


def _read_manifest(path: Path) -> dict[str, tuple[Optional[tuple[str, ...]], Optional[dict]]]:
    """Kept clips of a DataCrafter manifest: clip_id -> (frame tokens or None, caption or None)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"cannot read manifest ({e})", path) from None
    cols = set(table.column_names)
    for col in ("clip_id", "kept"):
        if col not in cols:
            raise DataError("manifest lacks a required column", path, col)
    rows = table.to_pylist()
    out = {}
    for r in rows:
        if r["kept"]:
            cap = r.get("caption_json")
            frames = r.get("frame_tokens")
            out[r["clip_id"]] = (tuple(frames) if frames else None, json.loads(cap) if cap else None)
    return out


class ClipIndex:
    """Clips of a nuScenes-format root, cut by a :class:`ClipSpec`.

    With ``manifest`` (a DataCrafter Parquet manifest), only kept clips are listed and their
    structured captions are attached to the loaded :class:`Clip`. ``scenes`` restricts the index
    to some scene tokens (default: every scene of the root). ``image_frames``: camera images are
    read for only the first ``image_frames`` frames of each clip (``Clip.images`` is then
    ``(image_frames, V, H, W, 3)``; everything else is per frame as usual), for consumers that use
    only those pictures; None reads every frame's.
    """

    def __init__(
        self,
        reader: NuScenesReader,
        spec: ClipSpec = ClipSpec(),
        manifest: str | Path | None = None,
        scenes: Optional[list[str]] = None,
        image_frames: Optional[int] = None,
    ):
        if image_frames is not None and image_frames < 1:
            raise ValueError(f"ClipIndex.image_frames must be None or >= 1, got {image_frames}")
        self.reader = reader
        self.spec = spec
        self.image_frames = image_frames
        self._manifest: Optional[dict] = _read_manifest(Path(manifest)) if manifest is not None else None
        self.refs: list[ClipRef] = []
        ref_cam = spec.views[0]
        span = (spec.num_frames - 1) * spec.frame_stride + 1
        known = reader.scene_tokens()
        if scenes is not None:
            unknown = [t for t in scenes if t not in known]
            if unknown:
                raise DataError(f"unknown scene tokens {unknown}", reader.root, "scenes")
        for scene in known if scenes is None else scenes:
            name = reader.scene_name(scene)
            available = reader.channels(scene)
            missing = [v for v in spec.views if v not in available]
            if missing:
                raise DataError(f"scene {name} lacks camera channels {missing}", reader.root, "ClipSpec.views")
            tokens = reader.channel_tokens(scene, ref_cam)
            if spec.rate == "keyframe":
                tokens = [t for t in tokens if reader.sample_data(t)["is_key_frame"]]
            for start in range(0, len(tokens) - span + 1, spec.window_stride):
                clip_id = f"{name}:{start:04d}"
                if self._manifest is not None and clip_id not in self._manifest:
                    continue
                frames = tuple(tokens[start : start + span : spec.frame_stride])
                if self._manifest is not None:
                    curated = self._manifest[clip_id][0]
                    if curated is not None and curated != frames:
                        raise DataError(
                            f"clip {clip_id} covers other frames than the manifest's (the manifest was cut with another "
                            "ClipSpec: use the same num_frames, frame_stride, window_stride, rate and views as `curate`)",
                            manifest,
                            "frame_tokens",
                        )
                self.refs.append(ClipRef(clip_id, scene, name, frames))

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> Clip:
        return self.load(i)

    # -- per-scene caches ------------------------------------------------------------------
    @lru_cache(maxsize=64)
    def _channel_times(self, scene: str, channel: str) -> tuple[np.ndarray, tuple[str, ...]]:
        toks = tuple(self.reader.channel_tokens(scene, channel))
        return np.array([self.reader.sample_data(t)["timestamp"] for t in toks], dtype=np.int64), toks

    @lru_cache(maxsize=64)
    def _keyframes(self, scene: str) -> tuple[np.ndarray, tuple[str, ...]]:
        toks = tuple(self.reader.sample_tokens(scene))
        return np.array([self.reader.nusc.get("sample", t)["timestamp"] for t in toks], dtype=np.int64), toks

    @lru_cache(maxsize=256)
    def _annotations(self, sample_token: str) -> tuple[list[Box3D], list[HumanPose]]:
        return self.reader.boxes(sample_token), self.reader.human_poses(sample_token)

    def _nearest(self, scene: str, channel: str, t: int) -> str:
        times, toks = self._channel_times(scene, channel)
        i = int(np.argmin(np.abs(times - t)))
        return toks[i]

    def annotations_at(self, scene: str, t: int) -> tuple[list[Box3D], list[HumanPose]]:
        """Global-frame boxes and poses at time ``t`` (us), interpolated between keyframes."""
        times, toks = self._keyframes(scene)
        i1 = int(np.searchsorted(times, t))
        if i1 < len(times) and times[i1] == t:
            return self._annotations(toks[i1])
        if i1 == 0 or i1 == len(times):  # before the first / after the last keyframe: nearest
            return self._annotations(toks[min(i1, len(times) - 1)])
        w = float(t - times[i1 - 1]) / float(times[i1] - times[i1 - 1])
        (b0, p0), (b1, p1) = self._annotations(toks[i1 - 1]), self._annotations(toks[i1])
        return interpolate_boxes(b0, b1, w), _interpolate_poses(p0, p1, w)

    # -- loading -----------------------------------------------------------------------------
    def load(self, item: int | ClipRef) -> Clip:
        ref = self.refs[item] if isinstance(item, int) else item
        spec, reader = self.spec, self.reader
        scene = ref.scene_token
        images, intrinsics, cam_to_ego = [], None, None
        ego_to_global, timestamps, is_key, boxes, poses = [], [], [], [], []
        n_images = len(ref.frame_tokens) if self.image_frames is None else min(self.image_frames, len(ref.frame_tokens))
        for f, tok in enumerate(ref.frame_tokens):
            sd = reader.sample_data(tok)
            t = sd["timestamp"]
            timestamps.append(t)
            is_key.append(bool(sd["is_key_frame"]))
            if f < n_images:
                row, ks, c2e = [], [], []
                for view in spec.views:
                    frame = reader.camera_frame(tok if view == spec.views[0] else self._nearest(scene, view, t))
                    img, k = frame.image, frame.intrinsics
                    if spec.image_size is not None:
                        img, k = resize_crop(img, k, spec.image_size)
                    row.append(img)
                    ks.append(k)
                    c2e.append(frame.sensor_to_ego.matrix())
                shapes = {im.shape for im in row}
                if len(shapes) != 1:
                    raise DataError(f"views of clip {ref.clip_id} have different image sizes {shapes}; set ClipSpec.image_size", reader.root)
                images.append(np.stack(row))
                intrinsics, cam_to_ego = np.stack(ks), np.stack(c2e)
            e2g = reader.ego_pose(tok)
            ego_to_global.append(e2g.matrix())
            g2e = e2g.inverse()
            b, p = self.annotations_at(scene, t)
            boxes.append([x.transform(g2e) for x in b])
            poses.append([x.transform(g2e) for x in p])
        sample_tokens = [reader.sample_data(t)["sample_token"] for t in ref.frame_tokens]
        key_samples = [s for s, k in zip(sample_tokens, is_key) if k]
        lidar, lidar_e2g, lidar_ts, lidar_to_ego = self._load_lidar(scene, timestamps[0], timestamps[-1], key_samples)
        ref0 = Pose.from_matrix(ego_to_global[0])
        inv0 = np.linalg.inv(ego_to_global[0])
        traj = []
        for m in ego_to_global:
            rel = inv0 @ m
            traj.append([rel[0, 3], rel[1, 3], np.arctan2(rel[1, 0], rel[0, 0])])
        location = reader.scene_location(scene)
        local_map = reader.map_layers(location).crop(ref0.translation[:2], spec.map_radius * 1.5).to_frame(ref0)
        local_map = local_map.crop(np.zeros(2), spec.map_radius)
        return Clip(
            scene_token=scene,
            views=tuple(spec.views),
            images=np.stack(images),
            intrinsics=intrinsics,
            cam_to_ego=cam_to_ego,
            ego_to_global=np.stack(ego_to_global),
            timestamps=np.array(timestamps),
            boxes=boxes,
            poses=poses,
            lidar=lidar,
            lidar_to_ego=lidar_to_ego,
            lidar_ego_to_global=lidar_e2g,
            lidar_timestamps=lidar_ts,
            map=local_map,
            ego_trajectory=np.array(traj),
            is_key_frame=np.array(is_key),
            sample_tokens=sample_tokens,
            caption=None if self._manifest is None else self._manifest.get(ref.clip_id, (None, None))[1],
            clip_id=ref.clip_id,
        )

    def _load_lidar(self, scene: str, t0: int, t1: int, sample_tokens: list[str]):
        """Sweeps of the clip's time span. Camera and LiDAR clocks differ on real nuScenes (a
        keyframe's camera images are up to ~40 ms off its sweep), so "keyframe" takes the sweep
        of every sample whose key frames are in the clip (``sample_tokens``) or whose timestamp
        lies in the span, and "all" widens the span by half a sweep period."""
        if self.spec.lidar == "none" or LIDAR_CHANNEL not in self.reader.channels(scene):
            return [], np.zeros((0, 4, 4)), np.zeros(0, dtype=np.int64), np.eye(4)
        if self.spec.lidar == "keyframe":
            key_times, key_toks = self._keyframes(scene)
            samples = set(sample_tokens) | {tok for tt, tok in zip(key_times, key_toks) if t0 <= tt <= t1}
            samples_in_order = [tok for tok in key_toks if tok in samples]
            sel = [self.reader.nusc.get("sample", s)["data"][LIDAR_CHANNEL] for s in samples_in_order]
        else:
            times, toks = self._channel_times(scene, LIDAR_CHANNEL)
            half = int(np.median(np.diff(times)) // 2) if len(times) > 1 else 0
            sel = [tok for tt, tok in zip(times, toks) if t0 - half <= tt <= t1 + half]
        sweeps = [self.reader.lidar_sweep(tok) for tok in sel]
        l2e = sweeps[0].sensor_to_ego.matrix() if sweeps else np.eye(4)
        return (
            [s.points for s in sweeps],
            np.stack([s.ego_to_global.matrix() for s in sweeps]) if sweeps else np.zeros((0, 4, 4)),
            np.array([s.timestamp for s in sweeps], dtype=np.int64),
            l2e,
        )


def clip_to_tensors(clip: Clip) -> dict[str, torch.Tensor]:
    """The numeric part of a clip as tensors (layout conditions are added by layout transforms).

    images: ``v t c h w`` uint8; intrinsics ``v 3 3``; cam_to_ego ``v 4 4``; ego_to_global
    ``t 4 4``; ego_trajectory ``t 3`` (x, y metres, yaw radians, frame-0 ego frame);
    lidar: ``s n 5`` float32 padded with zeros, lidar_mask ``s n`` bool.
    """
    from einops import rearrange

    n = max((len(p) for p in clip.lidar), default=0)
    lidar = torch.zeros(len(clip.lidar), n, 5)
    mask = torch.zeros(len(clip.lidar), n, dtype=torch.bool)
    for i, p in enumerate(clip.lidar):
        lidar[i, : len(p)] = torch.from_numpy(p)
        mask[i, : len(p)] = True
    return {
        "images": torch.from_numpy(rearrange(clip.images, "t v h w c -> v t c h w").copy()),
        "intrinsics": torch.from_numpy(clip.intrinsics).float(),
        "cam_to_ego": torch.from_numpy(clip.cam_to_ego).float(),
        "ego_to_global": torch.from_numpy(clip.ego_to_global),
        "ego_trajectory": torch.from_numpy(clip.ego_trajectory).float(),
        "timestamps": torch.from_numpy(clip.timestamps),
        "lidar": lidar,
        "lidar_mask": mask,
    }


def collate_clips(items: list[dict]) -> dict:
    """Batch dicts from :class:`ClipDataset`: tensors are stacked (``b ...``); ragged LiDAR
    (``lidar`` ``s n 5``, ``lidar_mask`` ``s n``) is zero-padded along sweeps and points, so
    ``lidar_mask`` marks real points (and a sweep with no true point is padding); other values
    (captions, ids) become lists."""
    out: dict = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if isinstance(vals[0], torch.Tensor):
            if key in ("lidar", "lidar_mask"):
                s, n = max(v.shape[0] for v in vals), max(v.shape[1] for v in vals)
                tail = (0, 0) if key == "lidar" else ()
                vals = [torch.nn.functional.pad(v, (*tail, 0, n - v.shape[1], 0, s - v.shape[0])) for v in vals]
            out[key] = torch.stack(vals)
        else:
            out[key] = vals
    return out


class ClipDataset(Dataset):
    """Torch dataset of clips: ``transform(clip) -> dict`` (default :func:`clip_to_tensors`),
    plus ``clip_id`` and ``caption`` (dict or None). Use ``collate_fn=collate_clips``."""

    def __init__(self, index: ClipIndex, transform: Callable[[Clip], dict] = clip_to_tensors):
        self.index = index
        self.transform = transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        clip = self.index.load(i)
        item = dict(self.transform(clip))
        item["clip_id"] = clip.clip_id
        item["caption"] = clip.caption
        return item
