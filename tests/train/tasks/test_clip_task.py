"""The clip-task base: clip cutting, dataset and collate, and a DataCrafter manifest reaching training
(only kept clips, caption text and embedding per sample; clear errors for unusable manifests)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from genesis_drive.config import apply_overrides, config_from_dict, config_to_dict
from genesis_drive.curation.encoder import EmbeddingStore, text_key
from genesis_drive.curation.manifest import COLUMNS, load_clip_embeddings, read_manifest, rows_to_table, write_table
from genesis_drive.curation.pipeline import RunOptions, curate
from genesis_drive.curation.worker import CurationConfig
from genesis_drive.data.clips import ClipSpec
from genesis_drive.data.schema import CAMERA_CHANNELS, Clip
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.train.tasks.clip_task import ClipCut, ClipTask

from ...curation.dataset import write_test_root

VIEWS = ("CAM_FRONT", "CAM_FRONT_LEFT")


def first_pixels(clip: Clip) -> dict:
    """The sample of the test task: the top-left pixel of every frame and view (t v 3)."""
    return {"pixels": torch.from_numpy(clip.images[:, :, 0, 0].copy())}


@dataclass(frozen=True)
class PixelConfig:
    clips: ClipCut = field(default_factory=lambda: ClipCut(num_frames=2, frame_stride=3, window_stride=4, rate="camera"))


class PixelTask(ClipTask):
    """The smallest clip task: what ClipTask gives every task, with nothing else in the way."""

    name = "pixels"

    def build_model(self) -> nn.Module:
        return nn.Linear(3, 1)

    def loss(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        return {"loss": model(batch["pixels"].float()).mean()}

    def clip_spec(self) -> ClipSpec:
        return self.clips.spec(VIEWS, (32, 18))

    def make_transform(self, reader):
        return first_pixels


def _row(ref, kept: bool, text: str | None, store: str | None, keys: list[str]) -> dict:
    """A manifest row of a clip (only the columns training reads carry meaning)."""
    row = {c: None for c in COLUMNS}
    row.update(clip_id=ref.clip_id, clip_index=0, scene_token=ref.scene_token, scene_name=ref.scene_name,
               frame_tokens=list(ref.frame_tokens), views=list(VIEWS), status="ok", kept=kept,
               rejection_reasons=[] if kept else ["low_total"], caption_json='{"schema": "x"}' if kept else None,
               caption_text=text, embedding_store=store, embedding_segments=["global", "CAM_FRONT"] if keys else [],
               embedding_keys=keys, details_json="{}")  # fmt: skip
    return row


def _manifest(tmp: Path, refs, keep: list[bool], embed: bool = True) -> tuple[Path, dict[str, np.ndarray]]:
    """Hand-written manifest + embedding store: kept clip i has text "clip i ..." and global
    vector [i, 1, 0, 0] / norm; returns (path, clip_id -> global vector)."""
    store = EmbeddingStore(tmp / "m.emb-test.safetensors", "test")
    rows, vectors = [], {}
    for i, (ref, k) in enumerate(zip(refs, keep)):
        if not k:
            rows.append(_row(ref, False, None, None, []))
            continue
        texts = [f"clip {i}: the road ahead.", f"[CAM_FRONT] clip {i}: a car."]
        g = np.array([i, 1.0, 0.0, 0.0], np.float32) / np.hypot(i, 1.0)
        store.add([text_key(t) for t in texts], np.stack([g, np.array([0, 0, 1, 0], np.float32)]))
        vectors[ref.clip_id] = g
        keys = [text_key(t) for t in texts] if embed else []
        rows.append(_row(ref, True, "\n".join(texts), store.path.name if embed else None, keys))
    store.save()
    return write_table(rows_to_table(rows), tmp / "m.parquet"), vectors


def test_dataset_and_collate_without_manifest(root):
    task = PixelTask(PixelConfig(), root)
    assert task.clip_spec() == ClipSpec(num_frames=2, frame_stride=3, window_stride=4, rate="camera", views=VIEWS,
                                        image_size=(32, 18), lidar="none")  # fmt: skip
    ds = task.train_dataset()
    starts = [int(r.clip_id.rsplit(":", 1)[1]) for r in ds.index.refs]
    assert starts == list(range(0, starts[-1] + 1, 4)) and len(ds) >= 3  # every window of 4 frames
    item = ds[0]
    assert item["caption"] is None and "caption_embedding" not in item
    batch = task.collate([ds[0], ds[1]])
    assert batch["pixels"].shape == (2, 2, 2, 3) and batch["clip_id"] == [ds.index.refs[0].clip_id, ds.index.refs[1].clip_id]
    # the images are the clip's own frames (the hand-made images encode channel and frame in colour)
    torch.testing.assert_close(batch["pixels"][1], first_pixels(ds.index.load(1))["pixels"])


def test_manifest_keeps_kept_clips_with_caption_text_and_embedding(root, tmp_path):
    refs = PixelTask(PixelConfig(), root).clip_index().refs
    keep = [i % 2 == 0 for i in range(len(refs))]
    path, vectors = _manifest(tmp_path, refs, keep)
    cfg = apply_overrides(PixelConfig(), [f"clips.manifest={path}"])
    ds = PixelTask(cfg, root).train_dataset()
    assert [r.clip_id for r in ds.index.refs] == [r.clip_id for r, k in zip(refs, keep) if k]
    items = [ds[i] for i in range(len(ds))]
    for it in items:
        i = [r.clip_id for r in refs].index(it["clip_id"])
        assert it["caption"] == f"clip {i}: the road ahead.\n[CAM_FRONT] clip {i}: a car."
        assert it["caption_embedding"].dtype == torch.float32
        np.testing.assert_array_equal(it["caption_embedding"].numpy(), vectors[it["clip_id"]])  # the global segment's vector
    batch = PixelTask(cfg, root).collate(items[:2])
    assert batch["caption_embedding"].shape == (2, 4) and batch["caption"] == [items[0]["caption"], items[1]["caption"]]
    # the manifest path survives the run config's round trip (checkpoints store it)
    assert config_from_dict(PixelConfig, config_to_dict(cfg)) == cfg


def test_unusable_manifests_fail_clearly(root, tmp_path):
    refs = PixelTask(PixelConfig(), root).clip_index().refs
    (tmp_path / "a").mkdir()
    path, _ = _manifest(tmp_path / "a", refs, [True] * len(refs), embed=False)
    task = PixelTask(PixelConfig(replace(PixelConfig().clips, manifest=path)), root)
    with pytest.raises(DataError, match="no caption embeddings") as e:
        task.train_dataset()
    assert e.value.field == "embedding_store" and Path(e.value.path) == path
    (tmp_path / "b").mkdir()
    path, _ = _manifest(tmp_path / "b", refs, [True] * len(refs))
    (tmp_path / "b" / "m.emb-test.safetensors").unlink()
    with pytest.raises(DataError, match="embedding store named by manifest m.parquet is missing"):
        PixelTask(PixelConfig(replace(PixelConfig().clips, manifest=path)), root).train_dataset()
    # a manifest cut with another frame stride covers other frames: refused by name
    other = PixelConfig(ClipCut(num_frames=2, frame_stride=2, window_stride=4, rate="camera", manifest=path))
    with pytest.raises(DataError, match="other frames than the manifest"):
        PixelTask(other, root).train_dataset()
    # nothing kept: no clips to train on
    (tmp_path / "c").mkdir()
    path, _ = _manifest(tmp_path / "c", refs, [False] * len(refs))
    with pytest.raises(DataError, match="kept by manifest"):
        PixelTask(PixelConfig(replace(PixelConfig().clips, manifest=path)), root).train_dataset()


def test_config_and_root_errors(root):
    with pytest.raises(ConfigError, match="pixels task needs a data root"):
        PixelTask(PixelConfig(), None)
    with pytest.raises(ConfigError, match="clips.rate"):
        ClipCut(rate="fast")
    with pytest.raises(ConfigError, match="clips.lidar"):
        ClipCut(lidar="some")
    with pytest.raises(ConfigError, match=">= 1"):
        ClipCut(window_stride=0)
    assert ClipCut(num_frames=3, rate="camera").spec(VIEWS, None, rate="keyframe", lidar="all", map_radius=20.0) == ClipSpec(
        num_frames=3, frame_stride=1, window_stride=1, rate="keyframe", views=VIEWS, image_size=None, lidar="all", map_radius=20.0)


def test_manifest_from_the_curation_pipeline(tmp_path):
    """DataCrafter curates a small root (captions embedded by the bundled encoder); a task cut the
    same way trains on exactly its kept clips, each with the manifest's caption text and global vector."""
    croot = write_test_root(tmp_path / "root")
    views = tuple(c for c in CAMERA_CHANNELS if c != "CAM_BACK")  # every scene of that root has these
    spec = ClipSpec(num_frames=4, window_stride=4, lidar="none", views=views)
    out = tmp_path / "m.parquet"
    curate(croot, out, CurationConfig(clip_spec=spec, batch_size=1, embed=True), RunOptions(workers=1, report=False, progress=False, limit=6))
    rows = read_manifest(out)
    kept = [r for r in rows if r["kept"]]
    assert 0 < len(kept) < len(rows)

    class CuratedTask(PixelTask):
        def clip_spec(self) -> ClipSpec:
            return self.clips.spec(views, (32, 18))

    cfg = PixelConfig(ClipCut(num_frames=4, frame_stride=1, window_stride=4, rate="camera", manifest=out))
    ds = CuratedTask(cfg, croot).train_dataset()
    assert [r.clip_id for r in ds.index.refs] == [r["clip_id"] for r in kept]
    for i, row in enumerate(kept):
        item = ds[i]
        assert item["caption"] == row["caption_text"] and item["caption"].startswith(row["caption"]["global"]["text"])
        np.testing.assert_array_equal(item["caption_embedding"].numpy(), load_clip_embeddings(out, row)[0])
        assert item["caption_embedding"].shape == (384,)
