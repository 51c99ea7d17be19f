"""The condition transform: one :class:`Clip` -> every condition tensor of the generators.

:class:`ConditionTransform` is a picklable callable (a frozen :class:`ConditionConfig` and no other
state), usable as a ``ClipDataset`` transform in DataLoader workers. Its output is a dict of torch
tensors in one axis order: per-view tensors lead with ``v`` (rig order, ``clip.views``), then ``t``
(the clip's frames, at the camera frame rate), then the rest; tensors that do not depend on the
view start with ``t``. ``torch.utils.data.default_collate`` / ``collate_clips`` add ``b`` in front.
Names: ``v`` views, ``t`` frames, ``n`` box slots (``tokens.max_boxes``), ``p`` pedestrian slots
(``max_pedestrians``), ``k`` = 17 COCO keypoints, ``d`` caption embedding size.

Frames. Per-view images and camera geometry are per frame, in the ego frame of that frame (the
cameras are rigid on the ego, so ``cam_to_ego`` holds for every frame). Box corners and 3D
keypoints are in the ego frame of *each frame* (``coords="frame"``, the default, matching the
layout video and ``cam_to_ego``) or all in the ego frame of frame 0 (``coords="first"``, through
``ego_to_global``). The ego trajectory is always relative to frame 0. Ego frame: x forward,
y left, z up, metres.

Keys (shape, dtype):

* ``layout`` (v t 3 h w) uint8: per-camera layout video (:func:`layout.camera.frame_layout`:
  map, boxes, pedestrian skeletons) at ``image_size`` (the clip's image size when None).
* ``bev`` (t c H W) float32: BEV raster of each frame in its own ego frame
  (:func:`layout.bev.frame_bev`; channels :func:`layout.bev.bev_channel_names`).
* ``box_corners`` (t n 8 3) float32 metres (:meth:`Box3D.corners` order), ``box_features``
  (t n d_box) float32 (Fourier features of the corners, :func:`layout.tokens.fourier_features`),
  ``box_class`` (t n) int64 (index into ``tokens.classes``), ``box_track`` (t n) int64 (track
  index within the clip, numbered by first appearance), ``box_mask`` (t n) bool. Slots nearest
  first (distance from frame ``t``'s ego origin); padding: zeros, -1 in class / track.
* ``ped_keypoints`` (t p k 3) float32 metres, ``ped_visible`` (t p k) bool (the pose's own
  visibility), ``ped_track`` (t p) int64 (the pedestrian's box track, the same numbering as
  ``box_track``; -1 when the pose has no box in the clip), ``ped_mask`` (t p) bool. Slots nearest
  first (mean keypoint distance from the ego origin of frame ``t``); padding: zeros / False / -1.
* ``ped_keypoints_2d`` (v t p k 2) float32: the keypoints projected into each view
  (:func:`data.geometry.project_points`), normalised ``(u / w, v / h)`` so the image spans [0, 1];
  ``ped_depth`` (v t p k) float32: camera-frame depth in metres; ``ped_visible_2d`` (v t p k) bool:
  visible, in front of the camera (depth > ``near``) and inside the image; ``ped_view_mask``
  (v t p) bool: the pedestrian has at least one keypoint visible in that view. Where
  ``ped_visible_2d`` is False, ``ped_keypoints_2d`` and ``ped_depth`` hold zeros.
* ``ego`` (t 4) float32: ``x, y`` metres, ``yaw`` radians of each frame's ego in the frame-0 ego
  frame (``clip.ego_trajectory``) and ``speed`` m/s: distance between neighbouring frames'
  positions over their time step (central differences inside, one-sided at the ends; 0 for a
  one-frame clip, which carries no motion).
* ``intrinsics`` (v 3 3) float32 pixels for ``image_size``; ``cam_to_ego`` (v 4 4) float32.
* ``caption_global`` (d) float32 and ``caption_global_mask`` () bool; ``caption_views`` (v d)
  float32 and ``caption_views_mask`` (v) bool: the caption embeddings passed to the call
  (segment ``"global"`` and one segment per camera channel, as the DataCrafter manifest stores
  them); zeros and False where the sample carries none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.geometry import project_points, transform_points
from ..data.schema import Clip, HumanPose
from ..errors import ConfigError, DataError
from .bev import BEV_PRESETS, BevConfig, frame_bev
from .camera import CameraLayoutConfig, frame_layout
from .frames import clip_cameras
from .tokens import TOKEN_PRESETS, TokenConfig, box_tokens, fourier_features

__all__ = ["ConditionConfig", "ConditionTransform", "CONDITION_PRESETS", "NUM_KEYPOINTS", "ego_speed", "clip_track_ids"]

NUM_KEYPOINTS = 17
_COORDS = ("frame", "first")


@dataclass(frozen=True)
class ConditionConfig:
    """What :class:`ConditionTransform` produces.

    image_size: (width, height) pixels of the layout video and of ``intrinsics``; None keeps the
        clip's image size. Set it to the size the camera images are resized to for the VAE.
    tokens: box token slots and Fourier bands. bev: the BEV raster. camera_layout: layout video style.
    max_pedestrians: pedestrian slots per frame (the farthest beyond it are left out).
    coords: "frame" (boxes and 3D keypoints in each frame's ego frame) or "first" (frame 0's).
    caption_dim: size of one caption embedding (384 for the bundled all-MiniLM-L6-v2).
    near: metres in front of a camera for a keypoint to count as projected.
    """

    image_size: tuple[int, int] | None = None
    tokens: TokenConfig = field(default_factory=TokenConfig)
    bev: BevConfig = field(default_factory=BevConfig)
    camera_layout: CameraLayoutConfig = field(default_factory=CameraLayoutConfig)
    max_pedestrians: int = 16
    coords: str = "frame"
    caption_dim: int = 384
    near: float = 0.1

    def __post_init__(self) -> None:
        if self.image_size is not None:
            w, h = self.image_size
            if int(w) != w or int(h) != h or w < 1 or h < 1:
                raise ConfigError(f"ConditionConfig.image_size must be (width, height) positive pixels or None, got {self.image_size}")
            object.__setattr__(self, "image_size", (int(w), int(h)))
        if self.max_pedestrians < 1 or self.caption_dim < 1 or not self.near > 0:
            raise ConfigError(
                f"ConditionConfig: max_pedestrians and caption_dim must be >= 1 and near > 0 m, got "
                f"{self.max_pedestrians}, {self.caption_dim}, {self.near}"
            )
        if self.coords not in _COORDS:
            raise ConfigError(f"ConditionConfig.coords must be one of {_COORDS}, got {self.coords!r}")


def tiny() -> ConditionConfig:
    """128 x 72 layout video (the camera DiT's tiny size), 16 boxes, 8 pedestrians, 64 x 64 BEV."""
    return ConditionConfig(image_size=(128, 72), tokens=TOKEN_PRESETS["tiny"], bev=BEV_PRESETS["tiny"], max_pedestrians=8)


def paper() -> ConditionConfig:
    """800 x 448 layout video, 64 boxes, 32 pedestrians, 200 x 200 BEV at 0.512 m."""
    return ConditionConfig(image_size=(800, 448), tokens=TOKEN_PRESETS["paper"], bev=BEV_PRESETS["paper"], max_pedestrians=32)


#: Named condition configurations (plain functions).
CONDITION_PRESETS = {"tiny": tiny, "paper": paper}


def ego_speed(positions: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Speed (T,) m/s from positions (T, 2) metres and timestamps (T,) microseconds.

    Central differences inside, one-sided at the ends (``numpy.gradient`` over time); zeros for T = 1.
    """
    pos = np.asarray(positions, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.float64) * 1e-6
    if len(pos) < 2:
        return np.zeros(len(pos))
    if np.any(np.diff(ts) <= 0):
        raise ValueError(f"timestamps must increase strictly, got {np.asarray(timestamps).tolist()}")
    vel = np.gradient(pos, ts, axis=0)
    return np.linalg.norm(vel, axis=1)


def clip_track_ids(clip: Clip, classes: tuple[str, ...]) -> dict[str, int]:
    """instance_token -> track index, numbered as :func:`layout.tokens.box_tokens` numbers
    ``box_track`` (boxes of the kept ``classes``, by first appearance: frame, then list order).
    Boxes without an instance token get no entry (box_tokens numbers them per box)."""
    kept = set(classes)
    ids: dict[str, int] = {}
    count = 0
    for f, boxes in enumerate(clip.boxes):
        for j, b in enumerate(boxes):
            if b.detection_class in kept:
                key = b.instance_token or f"untracked:{f}:{j}"
                if key not in ids:
                    ids[key] = count
                    count += 1
    return {k: v for k, v in ids.items() if not k.startswith("untracked:")}


class ConditionTransform:
    """``transform(clip, caption_embedding=None) -> dict`` of condition tensors (module docstring).

    caption_embedding: None, or a mapping segment name -> (d,) float vector with ``"global"``
    and/or camera channel names (the manifest's ``embedding_segments`` zipped with
    ``load_clip_embeddings``); segments of channels the clip lacks raise.
    """

    def __init__(self, config: ConditionConfig = ConditionConfig()):
        self.config = config

    def __repr__(self) -> str:
        return f"ConditionTransform({self.config!r})"

    def __call__(self, clip: Clip, caption_embedding: Mapping[str, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
        cfg = self.config
        out: dict[str, torch.Tensor] = {}
        cams = clip_cameras(clip, cfg.image_size)
        t_frames = clip.num_frames

        layout = np.stack([frame_layout(clip, t, cfg.camera_layout, cfg.image_size) for t in range(t_frames)])  # t v h w c
        out["layout"] = torch.from_numpy(np.ascontiguousarray(layout.transpose(1, 0, 4, 2, 3)))  # v t c h w
        out["bev"] = torch.from_numpy(np.stack([frame_bev(clip, t, cfg.bev) for t in range(t_frames)])).float()

        to_first = self._to_first(clip)
        boxes = box_tokens(clip, cfg.tokens)
        if cfg.coords == "first":
            corners = boxes["box_corners"].double()
            m = torch.from_numpy(to_first)  # t 4 4
            corners = torch.einsum("tij,tnkj->tnki", m[:, :3, :3], corners) + m[:, None, None, :3, 3]
            corners = corners * boxes["box_mask"][..., None, None]
            boxes["box_corners"] = corners.float()
            feats = fourier_features(boxes["box_corners"].flatten(-2), cfg.tokens.num_bands, cfg.tokens.max_range)
            boxes["box_features"] = feats * boxes["box_mask"][..., None]
        out.update(boxes)

        out.update(self._pedestrians(clip, cams, to_first))

        traj = np.asarray(clip.ego_trajectory, dtype=np.float64)
        speed = ego_speed(traj[:, :2], clip.timestamps)
        out["ego"] = torch.from_numpy(np.concatenate([traj, speed[:, None]], axis=1)).float()

        out["intrinsics"] = torch.from_numpy(np.stack([c.intrinsics for c in cams])).float()
        out["cam_to_ego"] = torch.from_numpy(np.stack([c.cam_to_ego for c in cams])).float()
        out.update(self._captions(clip, caption_embedding))
        return out

    def _to_first(self, clip: Clip) -> np.ndarray:
        """(t 4 4) frame-t ego -> frame-0 ego ("first"), or identities ("frame")."""
        if self.config.coords == "frame":
            return np.broadcast_to(np.eye(4), (clip.num_frames, 4, 4)).copy()
        inv0 = np.linalg.inv(clip.ego_to_global[0])
        return np.stack([inv0 @ m for m in clip.ego_to_global])

    def _pedestrians(self, clip: Clip, cams, to_first: np.ndarray) -> dict[str, torch.Tensor]:
        cfg = self.config
        t_frames, p, v = clip.num_frames, cfg.max_pedestrians, len(cams)
        kp = np.zeros((t_frames, p, NUM_KEYPOINTS, 3))
        vis = np.zeros((t_frames, p, NUM_KEYPOINTS), dtype=bool)
        track = np.full((t_frames, p), -1, dtype=np.int64)
        mask = np.zeros((t_frames, p), dtype=bool)
        uv = np.zeros((v, t_frames, p, NUM_KEYPOINTS, 2))
        depth = np.zeros((v, t_frames, p, NUM_KEYPOINTS))
        vis2d = np.zeros((v, t_frames, p, NUM_KEYPOINTS), dtype=bool)
        tracks = clip_track_ids(clip, cfg.tokens.classes)
        for t, poses in enumerate(clip.poses):
            chosen: list[HumanPose] = sorted(poses, key=lambda q: float(np.linalg.norm(q.keypoints.mean(axis=0))))[:p]
            for i, pose in enumerate(chosen):
                kp[t, i] = transform_points(to_first[t], pose.keypoints)
                vis[t, i] = pose.visible
                track[t, i] = tracks.get(pose.instance_token, -1) if pose.instance_token else -1
                mask[t, i] = True
                for j, cam in enumerate(cams):
                    pc = cam.to_camera(pose.keypoints)  # the frame-t ego frame, where the cameras are
                    pix, front = project_points(pc, cam.intrinsics, min_depth=cfg.near)
                    with np.errstate(invalid="ignore"):
                        inside = front & (pix[:, 0] >= 0) & (pix[:, 0] < cam.width) & (pix[:, 1] >= 0) & (pix[:, 1] < cam.height)
                    ok = inside & pose.visible
                    vis2d[j, t, i] = ok
                    uv[j, t, i][ok] = pix[ok] / np.array([cam.width, cam.height])
                    depth[j, t, i][ok] = pc[ok, 2]
        return {
            "ped_keypoints": torch.from_numpy(kp).float(),
            "ped_visible": torch.from_numpy(vis),
            "ped_track": torch.from_numpy(track),
            "ped_mask": torch.from_numpy(mask),
            "ped_keypoints_2d": torch.from_numpy(uv).float(),
            "ped_depth": torch.from_numpy(depth).float(),
            "ped_visible_2d": torch.from_numpy(vis2d),
            "ped_view_mask": torch.from_numpy(vis2d.any(axis=-1)),
        }

    def _captions(self, clip: Clip, caption_embedding: Mapping[str, np.ndarray] | None) -> dict[str, torch.Tensor]:
        d, v = self.config.caption_dim, clip.num_views
        glob = np.zeros(d, dtype=np.float32)
        views = np.zeros((v, d), dtype=np.float32)
        glob_mask = False
        views_mask = np.zeros(v, dtype=bool)
        for name, vec in (caption_embedding or {}).items():
            e = np.asarray(vec, dtype=np.float32)
            if e.shape != (d,) or not np.all(np.isfinite(e)):
                raise DataError(f"caption embedding must be finite with shape ({d},), got {e.shape}", clip.clip_id or None, f"caption_embedding[{name}]")
            if name == "global":
                glob, glob_mask = e, True
            elif name in clip.views:
                j = clip.views.index(name)
                views[j], views_mask[j] = e, True
            else:
                raise DataError(f"caption segment {name!r} is neither 'global' nor one of the clip's views {clip.views}", clip.clip_id or None, "caption_embedding")
        return {
            "caption_global": torch.from_numpy(glob.copy()),
            "caption_global_mask": torch.tensor(glob_mask),
            "caption_views": torch.from_numpy(views),
            "caption_views_mask": torch.from_numpy(views_mask),
        }
