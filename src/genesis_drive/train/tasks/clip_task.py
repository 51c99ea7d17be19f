"""The base of every task trained on clips of a nuScenes-format root.

* :class:`ClipCut`: the clip-cutting part of a run config (frames per clip, strides, rate, LiDAR
  and an optional DataCrafter manifest); :meth:`ClipCut.spec` builds the :class:`ClipSpec` from it
  and the model's views and image size.
* :class:`ClipTask`: a :class:`~genesis_drive.train.task.Task` whose training set is
  :class:`~genesis_drive.data.clips.ClipDataset` over the root and whose batches are
  :func:`~genesis_drive.data.clips.collate_clips`. A subclass says which clips
  (:meth:`ClipTask.clip_spec`) and how a clip becomes a sample (:meth:`ClipTask.make_transform`).

**Manifest.** With ``clips.manifest`` (a Parquet manifest written by ``genesis-drive curate``, see
docs/curation.md) only the manifest's kept clips are used (:class:`ClipIndex` filters them and
checks that the clip cutting matches the curation's), and every sample also carries

* ``caption``: the clip's structured caption as text (the manifest's ``caption_text``: the global
  paragraph, then one paragraph per camera), a ``str`` (a list of str in a batch);
* ``caption_embedding``: the embedding of the caption's ``"global"`` segment, float32 ``(d,)``
  (``(b, d)`` in a batch; d = 384 for the bundled all-MiniLM-L6-v2), read from the embedding store
  named in the manifest's ``embedding_store`` column (a file beside the manifest).

A manifest written without embeddings (``curate --no-embed``) is refused with a DataError naming
the manifest and the column: captions are encoded in one place, the curation pipeline, with the
encoder it records, so every consumer of a manifest sees the same vectors. Without a manifest,
``caption`` is None (ClipDataset's default) and there is no ``caption_embedding``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.clips import ClipDataset, ClipIndex, ClipSpec, collate_clips
from ...data.nuscenes import NuScenesReader
from ...data.schema import Clip
from ...errors import ConfigError, DataError
from ..task import Task

__all__ = ["CaptionedClipDataset", "ClipCut", "ClipTask", "manifest_captions", "scene_split", "spread"]



def scene_split(reader: NuScenesReader, val_scenes: int) -> tuple[list[str], list[str]]:
    """(training, validation) scene tokens: the last ``val_scenes`` scenes by name are validation."""
    tokens = sorted(reader.scene_tokens(), key=reader.scene_name)
    if val_scenes >= len(tokens):
        raise DataError(f"val_scenes={val_scenes} leaves no training scene (the root has {len(tokens)})",
                        reader.root, "val_scenes")
    cut = len(tokens) - val_scenes
    return tokens[:cut], tokens[cut:]


def spread(n: int, k: int) -> list[int]:
    """At most ``k`` indices of ``range(n)``, evenly spread, first and last included."""
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(k, n))}) if n else []


@dataclass(frozen=True)
class ClipCut:
    """How a task cuts the root's scenes into training clips (see :class:`ClipSpec`).

    num_frames: frames per clip (T). frame_stride: reference-camera frames between clip frames.
    window_stride: reference-camera frames between the starts of consecutive clips.
    rate: "camera" (every frame, 12 Hz on SynthTown / nuScenes) or "keyframe" (2 Hz, exact boxes).
    lidar: sweeps loaded with each clip: "none", "keyframe" or "all" (see ClipSpec).
    manifest: optional DataCrafter Parquet manifest; only its kept clips are trained on, with
    captions and caption embeddings (it must have been cut with the same num_frames,
    frame_stride, window_stride, rate and views).
    """

    num_frames: int = 1
    frame_stride: int = 1
    window_stride: int = 1
    rate: str = "keyframe"
    lidar: str = "none"
    manifest: Path | None = None

    def __post_init__(self) -> None:
        if min(self.num_frames, self.frame_stride, self.window_stride) < 1:
            raise ConfigError(f"clips.num_frames, frame_stride and window_stride must be >= 1, got "
                              f"{self.num_frames}, {self.frame_stride}, {self.window_stride}")  # fmt: skip
        if self.rate not in ("keyframe", "camera"):
            raise ConfigError(f"clips.rate must be 'keyframe' or 'camera', got {self.rate!r}")
        if self.lidar not in ("none", "keyframe", "all"):
            raise ConfigError(f"clips.lidar must be 'none', 'keyframe' or 'all', got {self.lidar!r}")

    def spec(
        self,
        views: tuple[str, ...],
        image_size: tuple[int, int] | None,
        *,
        rate: str | None = None,
        lidar: str | None = None,
        map_radius: float = 60.0,
    ) -> ClipSpec:
        """The :class:`ClipSpec` of these clips for ``views`` at ``image_size`` (width, height) pixels;
        ``rate`` / ``lidar`` override :attr:`rate` / :attr:`lidar` (e.g. keyframes for evaluation),
        ``map_radius`` is metres of map around the frame-0 ego."""
        return ClipSpec(num_frames=self.num_frames, frame_stride=self.frame_stride, window_stride=self.window_stride,
                        rate=rate or self.rate, views=tuple(views), image_size=image_size, lidar=lidar or self.lidar,
                        map_radius=map_radius)  # fmt: skip


def manifest_captions(path: str | Path) -> dict[str, tuple[str, np.ndarray]]:
    """clip_id -> (caption text, global caption embedding float32 ``(d,)``) of every kept clip of a
    DataCrafter manifest. DataError (naming the manifest or store and the column) when a kept clip
    has no caption text or no embeddings, or the embedding store is missing."""
    from ...curation.encoder import EmbeddingStore  # pyarrow and safetensors: only when a manifest is used
    from ...curation.manifest import read_manifest

    path = Path(path)
    stores: dict[Path, EmbeddingStore] = {}
    out = {}
    for row in read_manifest(path):
        if not row["kept"]:
            continue
        cid = row["clip_id"]
        if not row["caption_text"]:
            raise DataError(f"kept clip {cid} has no caption text", path, "caption_text")
        if not row["embedding_store"] or not row["embedding_keys"]:
            raise DataError(f"kept clip {cid} has no caption embeddings (manifest written with `curate --no-embed`?); "
                            "curate again with embeddings (`genesis-drive curate ROOT --out M --overwrite`)", path, "embedding_store")  # fmt: skip
        segments = list(row["embedding_segments"])
        if "global" not in segments or len(segments) != len(row["embedding_keys"]):
            raise DataError(f"kept clip {cid}: embedding_segments {segments} must name 'global' and align with embedding_keys",
                            path, "embedding_segments")  # fmt: skip
        store_path = path.parent / row["embedding_store"]
        if store_path not in stores:
            if not store_path.is_file():
                raise DataError(f"the embedding store named by manifest {path.name} is missing", store_path, "embedding_store")
            stores[store_path] = EmbeddingStore(store_path)
        vec = stores[store_path].get([row["embedding_keys"][segments.index("global")]])[0]
        out[cid] = (row["caption_text"], np.ascontiguousarray(vec, dtype=np.float32))
    return out


class CaptionedClipDataset(ClipDataset):
    """A :class:`ClipDataset` of curated clips: each sample also carries ``caption`` (str) and
    ``caption_embedding`` (float32 ``(d,)``) from ``captions`` (:func:`manifest_captions`)."""

    def __init__(self, index: ClipIndex, transform: Callable[[Clip], dict], captions: Mapping[str, tuple[str, np.ndarray]]):
        super().__init__(index, transform)
        missing = [r.clip_id for r in index.refs if r.clip_id not in captions]
        if missing:
            raise DataError(f"clips without a caption: {missing[:3]}", None, "caption_text")
        self.captions = dict(captions)

    def __getitem__(self, i: int) -> dict:
        item = super().__getitem__(i)
        text, vec = self.captions[item["clip_id"]]
        item["caption"] = text
        item["caption_embedding"] = torch.from_numpy(vec.copy())
        return item


class ClipTask(Task):
    """A task trained on :class:`ClipDataset` samples of a nuScenes-format root.

    Subclasses set :attr:`name` and :attr:`root_needs` (for the missing-root error), implement
    :meth:`clip_spec` and :meth:`make_transform` (and :meth:`build_model`, :meth:`loss`). The run
    config ``cfg`` must have a ``clips: ClipCut`` field.
    """

    #: task name, for error messages
    name: str = "clip"
    #: what the data root must be, for the error when none is given
    root_needs: str = "a nuScenes-format SynthTown root"

    def __init__(self, cfg: Any, data_root: Path | None):
        if data_root is None:
            raise ConfigError(f"the {self.name} task needs a data root ({self.root_needs})")
        if not isinstance(getattr(cfg, "clips", None), ClipCut):
            raise ConfigError(f"the {self.name} run config needs a `clips` section of type ClipCut")
        self.cfg, self.data_root = cfg, Path(data_root)

    @property
    def clips(self) -> ClipCut:
        """The run config's clip cutting."""
        return self.cfg.clips

    @abc.abstractmethod
    def clip_spec(self) -> ClipSpec:
        """The training clips' :class:`ClipSpec` (usually ``self.clips.spec(views, image_size)``)."""

    @abc.abstractmethod
    def make_transform(self, reader: NuScenesReader) -> Callable[[Clip], dict]:
        """Clip -> training sample (a dict of tensors); ``reader`` is the root's, for per-root lookups.
        The transform is pickled into data-loader workers."""

    def clip_index(self) -> ClipIndex:
        """The training clips (only the manifest's kept clips when ``clips.manifest`` is set)."""
        index = ClipIndex(NuScenesReader(self.data_root), self.clip_spec(), manifest=self.clips.manifest)
        if len(index) == 0:
            c = self.clips
            kept = f", kept by manifest {c.manifest}" if c.manifest is not None else ""
            raise DataError(f"no clips of {c.num_frames} frame(s) (frame stride {c.frame_stride}, {c.rate} rate{kept}) "
                            "to train on in the root", self.data_root)  # fmt: skip
        return index

    def train_dataset(self) -> ClipDataset:
        """The training clips through :meth:`make_transform`; with a manifest, captioned."""
        index = self.clip_index()
        transform = self.make_transform(index.reader)
        if self.clips.manifest is None:
            return ClipDataset(index, transform)
        return CaptionedClipDataset(index, transform, manifest_captions(self.clips.manifest))

    def collate(self, samples: list[dict]) -> dict:
        return collate_clips(samples)
