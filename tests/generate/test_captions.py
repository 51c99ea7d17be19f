"""Chunk captions from a DataCrafter manifest: the best-overlapping kept clip's global embedding,
clear errors for unusable manifests, and captions that change (deterministically) what is generated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genesis_drive.curation.encoder import EmbeddingStore, text_key
from genesis_drive.curation.manifest import COLUMNS, rows_to_table, write_table
from genesis_drive.data.clips import ClipIndex, ClipSpec
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.errors import DataError
from genesis_drive.generate.captions import ManifestCaptions

from ..data.handmade import write_handmade
from .tiny_checkpoints import generate

D = 384  # caption_dim of the `test` camera-dit preset


def write_manifest(root: Path, path: Path, num_frames: int, stride: int, keep) -> dict[str, np.ndarray]:
    """A manifest of ``root``'s clips (``num_frames``, window ``stride``); kept clip i (``keep(i)``) has a
    random unit global embedding; returns clip_id -> that vector."""
    reader = NuScenesReader(root)
    index = ClipIndex(reader, ClipSpec(num_frames=num_frames, window_stride=stride, views=CAMERA_CHANNELS, lidar="none"))
    store = EmbeddingStore(path.with_suffix(".emb.safetensors"), "test")
    rng, rows, vectors = np.random.default_rng(0), [], {}
    for i, ref in enumerate(index.refs):
        row = {c: None for c in COLUMNS}
        row.update(clip_id=ref.clip_id, clip_index=i, scene_token=ref.scene_token, scene_name=ref.scene_name,
                   frame_tokens=list(ref.frame_tokens), views=list(CAMERA_CHANNELS), status="ok", kept=bool(keep(i)),
                   rejection_reasons=[], embedding_segments=[], embedding_keys=[], details_json="{}")  # fmt: skip
        if keep(i):
            text = f"clip {i}: a road."
            vec = rng.normal(size=D).astype(np.float32)
            vec /= np.linalg.norm(vec)
            store.add([text_key(text)], vec[None])
            vectors[ref.clip_id] = vec
            row.update(caption_json='{"global": "x"}', caption_text=text, embedding_store=store.path.name,
                       embedding_segments=["global"], embedding_keys=[text_key(text)])  # fmt: skip
        rows.append(row)
    store.save()
    write_table(rows_to_table(rows), path)
    return vectors


@pytest.fixture(scope="module")
def long_root(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm19") / "root", num_keyframes=4)  # 19 frames


def test_best_overlapping_kept_clip(long_root, tmp_path):
    vectors = write_manifest(long_root, tmp_path / "m.parquet", 5, 4, keep=lambda i: i != 1)  # clips 0, 8, 12 kept (4 not)
    reader = NuScenesReader(long_root)
    scene = reader.scene_tokens()[0]
    caps = ManifestCaptions(tmp_path / "m.parquet", reader, [scene])
    chunks = ClipIndex(reader, ClipSpec(num_frames=9, window_stride=1, views=CAMERA_CHANNELS, lidar="none"))
    expect = {0: "scene-0001:0000", 1: "scene-0001:0000", 3: "scene-0001:0008", 6: "scene-0001:0008", 10: "scene-0001:0012"}
    for start, cid in expect.items():
        clip = chunks.load(start)
        assert caps.clip_id_for(clip) == cid, start
        np.testing.assert_array_equal(caps(clip)["global"], vectors[cid])


def test_unusable_manifests(long_root, tmp_path):
    reader = NuScenesReader(long_root)
    scenes = reader.scene_tokens()
    with pytest.raises(DataError, match="caption manifest not found"):
        ManifestCaptions(tmp_path / "none.parquet", reader, scenes)
    write_manifest(long_root, tmp_path / "m.parquet", 5, 4, keep=lambda i: False)
    with pytest.raises(DataError, match="no kept, captioned clip of scene scene-0001"):
        ManifestCaptions(tmp_path / "m.parquet", reader, scenes)
    write_manifest(long_root, tmp_path / "m2.parquet", 5, 4, keep=lambda i: True)
    assert len(ManifestCaptions(tmp_path / "m2.parquet", reader, scenes).spans[scenes[0]]) == 4


def test_manifest_of_another_root(long_root, source, tmp_path):
    write_manifest(long_root, tmp_path / "m.parquet", 5, 4, keep=lambda i: True)  # clips beyond the 7 frames of `source`
    short = NuScenesReader(source)
    with pytest.raises(DataError, match=r"names frame tokens the root .* does not have \(a manifest of another root\?\)"):
        ManifestCaptions(tmp_path / "m.parquet", short, short.scene_tokens())


def test_captions_change_generation_and_stay_seeded(source, ckpts, tmp_path, capsys):
    vectors = write_manifest(source, tmp_path / "m.parquet", 5, 2, keep=lambda i: True)  # clips at 0, 2
    assert sorted(vectors) == ["scene-0001:0000", "scene-0001:0002"]
    runs = {}
    for name, extra in (("plain", ()), ("cap", ("--captions", str(tmp_path / "m.parquet"))), ("cap2", ("--captions", str(tmp_path / "m.parquet")))):
        assert generate(source, tmp_path / name, ckpts, "--seed", "1", "--no-progress", *extra) == 0
        runs[name] = {p.name: p.read_bytes() for p in (tmp_path / name / "samples").rglob("*.jpg")}
    assert runs["cap"] == runs["cap2"]
    assert sum(runs["cap"][k] != runs["plain"][k] for k in runs["cap"]) > len(runs["cap"]) // 2
    assert generate(source, tmp_path / "bad", ckpts, "--captions", str(tmp_path / "nope.parquet")) == 1
    assert "caption manifest not found" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
