"""Planning clips of a dataset root and processing them (load, measure, score, caption) into rows.

:func:`plan_clips` runs once, in the driver; :class:`ClipWorker` runs in every worker process (local
pool or Ray actor) and turns planned clips into manifest rows. Rows depend only on the root, the
config and the planned clip, so any executor gives the same manifest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..data.clips import ClipIndex, ClipRef, ClipSpec
from ..data.geometry import scale_intrinsics
from ..data.nuscenes import NuScenesReader
from ..data.schema import Clip
from ..errors import ConfigError, DataError, GenesisError
from .box_masks import box_mask
from .caption_schema import validate_caption
from .captioner import CaptionConfig, CaptionContext, Captioner, OfflineCaptioner
from .encoder import text_key
from .image_quality import downscale, luminance
from .manifest import COLUMNS
from .measures import MeasureConfig, measure_clip
from .occlusion import OcclusionMeasures, occlusion_measures
from .scoring import ScoreConfig, score_clip

__all__ = ["CAPTIONER_BACKENDS", "ClipLoader", "ClipWorker", "CurationConfig", "PlannedClip", "caption_segments", "make_captioner", "plan_clips"]

#: Caption backends the CLI offers (``--captioner``); :func:`make_captioner` maps them.
CAPTIONER_BACKENDS = ("offline", "vlm")


@dataclass(frozen=True)
class CurationConfig:
    """Everything that determines a manifest's rows.

    clip_spec: how scenes are cut (:class:`~genesis_drive.data.clips.ClipSpec`); LiDAR is not
    needed for curation, so the default loads none. captioner: one of :data:`CAPTIONER_BACKENDS`;
    vlm_path: the VLM folder for ``"vlm"``. embed: encode captions (encoder_path: a local
    sentence-transformers folder, None = bundled all-MiniLM-L6-v2). batch_size: most clips per
    shard (shards never span scenes).
    """

    clip_spec: ClipSpec = ClipSpec(lidar="none")
    measure: MeasureConfig = MeasureConfig()
    score: ScoreConfig = ScoreConfig()
    caption: CaptionConfig = CaptionConfig()
    captioner: str = "offline"
    vlm_path: str | None = None
    embed: bool = True
    encoder_path: str | None = None
    version: str | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.captioner not in CAPTIONER_BACKENDS:
            raise ConfigError(f"captioner must be one of {CAPTIONER_BACKENDS}, got {self.captioner!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class PlannedClip:
    """One manifest row to produce. ``problem`` non-empty: no clip can be loaded (the row records
    it); ``views`` are the requested views the scene actually has."""

    clip_index: int
    clip_id: str
    scene_token: str
    scene_name: str
    frame_tokens: tuple[str, ...] = ()
    views: tuple[str, ...] = ()
    problem: str = ""
    problem_kind: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> PlannedClip:
        return PlannedClip(**{**d, "frame_tokens": tuple(d["frame_tokens"]), "views": tuple(d["views"])})


#: What bad data raises (recorded in the clip's row); anything else is a bug and stops the run.
_DATA_ERRORS = (GenesisError, OSError, ValueError)


def _scene_index(reader: NuScenesReader, scene: str, spec: ClipSpec) -> ClipIndex:
    """An index of one scene (with the views that scene has), so one bad scene cannot stop a run."""
    return ClipIndex(reader, spec, scenes=[scene])


def plan_clips(reader: NuScenesReader, spec: ClipSpec, limit: int | None = None) -> list[PlannedClip]:
    """Every clip of every scene (``clip_id`` as :class:`ClipIndex` makes it), plus one row per
    scene that yields no clip: ``"<scene>:none"`` with the reason."""
    out: list[PlannedClip] = []
    ref = spec.views[0]
    span = (spec.num_frames - 1) * spec.frame_stride + 1
    for scene in reader.scene_tokens():
        name = reader.scene_name(scene)
        available = reader.channels(scene)
        views = tuple(v for v in spec.views if v in available)
        if ref not in available:
            out.append(PlannedClip(len(out), f"{name}:none", scene, name, (), views, f"scene has no reference camera {ref}", "missing_reference_view"))
            continue
        refs = _scene_index(reader, scene, replace(spec, views=views)).refs
        if not refs:
            n = len(reader.channel_tokens(scene, ref))
            out.append(PlannedClip(len(out), f"{name}:none", scene, name, (), views, f"scene has {n} {ref} frames at rate {spec.rate!r}, a clip needs {span}", "empty_scene"))
            continue
        for r in refs:
            out.append(PlannedClip(len(out), r.clip_id, scene, name, r.frame_tokens, views))
    return out[:limit] if limit is not None else out


def make_captioner(cfg: CurationConfig) -> Captioner:
    """The caption backend named by ``cfg.captioner`` (the one place names map to backends)."""
    offline = OfflineCaptioner(cfg.caption)
    if cfg.captioner == "offline":
        return offline
    if cfg.captioner == "vlm":
        from .vlm import VLMCaptioner

        return VLMCaptioner(cfg.vlm_path, offline)
    raise ConfigError(f"captioner must be one of {CAPTIONER_BACKENDS}, got {cfg.captioner!r}")


def caption_segments(caption: dict) -> tuple[list[str], list[str]]:
    """Names and texts of a caption's embedded segments: ``"global"`` then each camera channel."""
    names = ["global"] + list(caption["cameras"])
    texts = [caption["global"]["text"]] + [caption["cameras"][c]["text"] for c in caption["cameras"]]
    return names, texts


def _empty_row(p: PlannedClip) -> dict:
    row = {c: None for c in COLUMNS}
    row.update(
        clip_id=p.clip_id,
        clip_index=p.clip_index,
        scene_token=p.scene_token,
        scene_name=p.scene_name,
        frame_tokens=list(p.frame_tokens),
        views=list(p.views),
        kept=False,
        rejection_reasons=[],
        embedding_segments=[],
        embedding_keys=[],
        details_json="{}",
    )
    return row


def _error_row(p: PlannedClip, status: str, kind: str, message: str) -> dict:
    row = _empty_row(p)
    row.update(status=status, error=message, rejection_reasons=[kind])
    return row


class ClipLoader:
    """Loads planned clips through per-scene :class:`ClipIndex` objects (built on first use)."""

    def __init__(self, reader: NuScenesReader, spec: ClipSpec):
        self.reader = reader
        self.spec = spec
        self._indexes: dict[tuple[str, tuple[str, ...]], ClipIndex] = {}

    def clear(self) -> None:
        self._indexes.clear()

    def load(self, p: PlannedClip) -> Clip:
        key = (p.scene_token, p.views)
        if key not in self._indexes:
            self._indexes[key] = _scene_index(self.reader, p.scene_token, replace(self.spec, views=p.views))
        return self._indexes[key].load(ClipRef(p.clip_id, p.scene_token, p.scene_name, p.frame_tokens))


@dataclass
class ClipWorker:
    """Turns planned clips into manifest rows; holds its own reader, clip loader and captioner."""

    root: str
    cfg: CurationConfig
    reader: NuScenesReader = field(init=False)
    captioner: Captioner = field(init=False)

    def __post_init__(self) -> None:
        self.reader = NuScenesReader(self.root, self.cfg.version)
        self.loader = ClipLoader(self.reader, self.cfg.clip_spec)
        self.captioner = make_captioner(self.cfg)
        self._times: dict[tuple[str, str], tuple[np.ndarray, float]] = {}
        self._occlusion: dict[tuple[str, str], OcclusionMeasures] = {}
        self._annotations: dict[str, ClipIndex] = {}
        self._scene = ""

    def _channel_times(self, scene: str, channel: str) -> tuple[np.ndarray, float]:
        """Timestamps (us) of every frame of a channel in a scene and its median period (us)."""
        key = (scene, channel)
        if key not in self._times:
            ts = np.array([self.reader.sample_data(t)["timestamp"] for t in self.reader.channel_tokens(scene, channel)], np.int64)
            period = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
            self._times[key] = (ts, period)
        return self._times[key]

    def frame_timing(self, p: PlannedClip, clip: Clip) -> tuple[np.ndarray, float]:
        """``(t v)`` offsets of each view's nearest frame from the reference timestamps, in periods
        of that view; and the reference period between clip frames (us)."""
        off = np.zeros((clip.num_frames, clip.num_views))
        for vi, ch in enumerate(clip.views):
            ts, period = self._channel_times(p.scene_token, ch)
            if period <= 0 or len(ts) == 0:
                continue
            near = np.abs(ts[None, :] - clip.timestamps[:, None]).min(axis=1)
            off[:, vi] = near / period
        spec = self.cfg.clip_spec
        _, ref_period = self._channel_times(p.scene_token, clip.views[0])
        if spec.rate == "keyframe":
            records = (self.reader.sample_data(t) for t in self.reader.channel_tokens(p.scene_token, clip.views[0]))
            keys = np.array([r["timestamp"] for r in records if r["is_key_frame"]], np.int64)
            ref_period = float(np.median(np.diff(keys))) if len(keys) > 1 else 0.0
        return off, ref_period * spec.frame_stride

    def _annotation_index(self, scene: str, channel: str) -> ClipIndex:
        """A one-view index of the scene: its (cached) keyframe annotations, interpolated in time."""
        if scene not in self._annotations:
            self._annotations[scene] = _scene_index(self.reader, scene, replace(self.cfg.clip_spec, views=(channel,)))
        return self._annotations[scene]

    def scene_occlusion(self, scene: str, channel: str) -> OcclusionMeasures:
        """Occlusion measurements of ``channel`` on ``occlusion_frames`` frames spread over the
        scene, with the annotated objects masked out (unreadable frames are skipped; zeros when
        none can be read)."""
        key = (scene, channel)
        if key not in self._occlusion:
            mc = self.cfg.measure
            toks = self.reader.channel_tokens(scene, channel)
            idx = sorted(set(np.linspace(0, len(toks) - 1, min(mc.occlusion_frames, len(toks))).round().astype(int).tolist()))
            frames, masks = [], []
            for i in idx:
                try:
                    frame = self.reader.camera_frame(toks[i])
                except DataError:
                    continue
                small = downscale(frame.image, mc.occlusion.width)
                frames.append(luminance(small))
                sh, sw = small.shape[:2]
                k = scale_intrinsics(frame.intrinsics, sw / frame.size[0], sh / frame.size[1])
                cam_from_global = np.linalg.inv((frame.ego_to_global @ frame.sensor_to_ego).matrix())
                boxes, _ = self._annotation_index(scene, channel).annotations_at(scene, frame.timestamp)  # interpolated
                masks.append(box_mask(boxes, cam_from_global, k, (sw, sh)))
            if len({f.shape for f in frames}) == 1:
                self._occlusion[key] = occlusion_measures(np.stack(frames), mc.occlusion, np.stack(masks))
            else:
                self._occlusion[key] = OcclusionMeasures(0.0, 0.0)
        return self._occlusion[key]

    def _enter_scene(self, scene: str) -> None:
        """Drop the per-scene caches of other scenes (plans are scene-ordered; memory stays bounded)."""
        if scene != self._scene:
            self._scene = scene
            self._times.clear()
            self._occlusion.clear()
            self._annotations.clear()
            self.loader.clear()

    def process_one(self, p: PlannedClip) -> dict:
        """The manifest row of one planned clip; failures are recorded in the row, never raised."""
        self._enter_scene(p.scene_token)
        if p.problem:
            return _error_row(p, "empty" if p.problem_kind == "empty_scene" else "error", p.problem_kind, p.problem)
        try:
            clip = self.loader.load(p)
        except _DATA_ERRORS as e:  # unreadable image, broken table entry, ...: record, go on
            return _error_row(p, "error", "load_error", f"{type(e).__name__}: {e}")
        try:
            offsets, period = self.frame_timing(p, clip)
            occ = [self.scene_occlusion(p.scene_token, v) for v in clip.views]
            m = measure_clip(clip, self.cfg.measure, self.cfg.clip_spec.views, offsets, period or None, occ)
            s = score_clip(m, self.cfg.score)
        except _DATA_ERRORS as e:
            return _error_row(p, "error", "measure_error", f"{type(e).__name__}: {e}")
        row = _empty_row(p)
        row.update(status="ok", error=None, total=s.total, kept=s.kept, rejection_reasons=list(s.reasons))
        row.update({f"score_{k}": v for k, v in s.sub.items()})
        row.update(s.groups)
        row["details_json"] = json.dumps(m.details(), sort_keys=True)
        if s.kept:
            try:
                scene = self.reader.nusc.get("scene", p.scene_token)
                ctx = CaptionContext(scene.get("description", ""), self.reader.scene_location(p.scene_token))
                cap = self.captioner.caption(clip, ctx)
                validate_caption(cap)
            except _DATA_ERRORS as e:
                row.update(status="error", error=f"{type(e).__name__}: {e}", kept=False, rejection_reasons=["caption_error"])
                return row
            row["caption_json"] = json.dumps(cap)
            row["caption_text"] = cap["text"]
            if self.cfg.embed:
                names, texts = caption_segments(cap)
                row["embedding_segments"] = names
                row["embedding_keys"] = [text_key(t) for t in texts]
        return row

    def process(self, plan: list[PlannedClip]) -> list[dict]:
        return [self.process_one(p) for p in plan]

