"""Caption embeddings for the generated chunks, from a DataCrafter manifest of the source root.

The camera DiT is trained with the ``"global"`` caption embedding of each curated clip
(``caption_global``; :mod:`train.tasks.clip_task`). A rollout chunk is its own window of frames,
generally not one of the manifest's clips, so :class:`ManifestCaptions` gives each chunk the global
embedding of the manifest's kept clip of the same scene whose time span overlaps the chunk's the
most (ties: the nearer centre, then the earlier clip). Captions are encoded in one place, the
curation pipeline (``genesis-drive curate ROOT --out M``), so generation sees the vectors training saw.

A scene of the generated set with no kept, captioned clip in the manifest is a DataError naming the
scene and the manifest (no chunk is silently left uncaptioned).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.nuscenes import NuScenesReader
from ..data.schema import Clip
from ..errors import DataError

__all__ = ["ManifestCaptions"]


class ManifestCaptions:
    """``captions(clip) -> {"global": (d,) float32}`` for the chunks of ``scenes`` (tokens) of ``reader``'s root.

    manifest: a DataCrafter Parquet manifest of that root written with embeddings. Spans are the
    reference-camera timestamps (microseconds) of each manifest clip's ``frame_tokens``.
    """

    def __init__(self, manifest: str | Path, reader: NuScenesReader, scenes: Sequence[str]):
        from ..curation.manifest import read_manifest
        from ..train.tasks.clip_task import manifest_captions

        self.manifest = Path(manifest)
        if not self.manifest.is_file():
            raise DataError("caption manifest not found (a `genesis-drive curate` Parquet manifest)", self.manifest, "--captions")
        vectors = manifest_captions(self.manifest)  # kept clips: id -> (text, global vector); DataError when unusable
        self.spans: dict[str, list[tuple[int, int, str, np.ndarray]]] = {s: [] for s in scenes}
        for row in read_manifest(self.manifest):
            cid, scene = row["clip_id"], row["scene_token"]
            if cid not in vectors or scene not in self.spans:
                continue
            tokens = row["frame_tokens"] or []
            try:
                times = [int(reader.sample_data(t)["timestamp"]) for t in tokens]
            except (KeyError, DataError):
                raise DataError(f"clip {cid} names frame tokens the root {reader.root} does not have (a manifest of another root?)",
                                self.manifest, "frame_tokens") from None  # fmt: skip
            if not times:
                raise DataError(f"kept clip {cid} has no frame tokens", self.manifest, "frame_tokens")
            self.spans[scene].append((min(times), max(times), cid, vectors[cid][1]))
        for scene, spans in self.spans.items():
            if not spans:
                raise DataError(f"no kept, captioned clip of scene {reader.scene_name(scene)} (curate the root you generate from)",
                                self.manifest, "clip_id")  # fmt: skip
            spans.sort(key=lambda s: (s[0], s[2]))

    def clip_id_for(self, clip: Clip) -> str:
        """The manifest clip whose caption ``clip`` gets (see the module doc)."""
        if clip.scene_token not in self.spans:
            raise DataError(f"clip {clip.clip_id}: its scene was not named when the captions were read", self.manifest, "scene_token")
        t0, t1 = int(clip.timestamps.min()), int(clip.timestamps.max())

        def rank(span: tuple[int, int, str, np.ndarray]) -> tuple[int, float]:
            a, b = span[0], span[1]
            return (-max(0, min(b, t1) - max(a, t0)), abs((a + b) / 2 - (t0 + t1) / 2))

        return min(self.spans[clip.scene_token], key=rank)[2]  # min is stable: the earlier clip on ties

    def __call__(self, clip: Clip) -> dict[str, np.ndarray]:
        cid = self.clip_id_for(clip)
        vec = next(s[3] for s in self.spans[clip.scene_token] if s[2] == cid)
        return {"global": vec}
