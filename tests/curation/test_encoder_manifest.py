"""Caption encoder (bundled MiniLM), embedding store cache, manifest round trip."""

from __future__ import annotations

import numpy as np
import pytest

from genesis_drive.curation.encoder import (
    EmbeddingStore,
    SentenceEncoder,
    encode_cached,
    text_key,
)
from genesis_drive.curation.manifest import (
    COLUMNS,
    manifest_metadata,
    read_manifest,
    read_table,
    rows_to_table,
    write_table,
)
from genesis_drive.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


def test_minilm_embeddings_are_unit_and_meaningful(encoder):
    texts = ["[CAM_FRONT] A white car 10 m in front.", "A white car is driving ahead of us.", "[CAM_BACK] No road users visible."]
    e = encoder.encode(texts)
    assert e.shape == (3, 384) and e.dtype == np.float32 and encoder.dim == 384
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1
    assert np.allclose(encoder.encode(texts[:1]), e[:1], atol=1e-5)  # deterministic
    assert encoder.encode([]).shape == (0, 384)


def test_missing_encoder_path_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        SentenceEncoder(tmp_path / "nope")


class _CountingEncoder:
    """Stands in for a model to count what the cache asks it to encode."""

    id, dim = "counting", 4

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        return np.stack([np.full(4, float(len(t)), np.float32) for t in texts])


def test_store_round_trip_and_cache(tmp_path):
    path = tmp_path / "m.emb-counting.safetensors"
    enc = _CountingEncoder()
    store = EmbeddingStore(path, enc.id)
    keys = encode_cached(enc, store, ["a", "bb", "a"])
    assert keys == [text_key("a"), text_key("bb"), text_key("a")] and enc.seen == ["a", "bb"]
    store.save()
    again = EmbeddingStore(path, enc.id)
    assert len(again) == 2 and again.dim == 4
    assert np.array_equal(again.get(keys), np.array([[1.0] * 4, [2.0] * 4, [1.0] * 4], np.float32))
    encode_cached(enc, again, ["bb", "ccc"])
    assert enc.seen == ["a", "bb", "ccc"]  # "bb" came from the cache
    with pytest.raises(DataError, match="not in the store"):
        again.get([text_key("zzz")])
    with pytest.raises(DataError, match="made by encoder"):
        EmbeddingStore(path, "another-model")
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable"):
        EmbeddingStore(path)


def _row(i: int, kept: bool) -> dict:
    r = {c: None for c in COLUMNS}
    r.update(clip_id=f"scene-1:{i:04d}", clip_index=i, scene_token="tok", scene_name="scene-1", frame_tokens=["a", "b"], views=["CAM_FRONT"],
             status="ok", kept=kept, rejection_reasons=[] if kept else ["blur"], embedding_segments=[], embedding_keys=[], details_json="{}",
             total=0.9 if kept else 0.2, caption_json='{"text": "hi"}' if kept else None, caption_text="hi" if kept else None)
    r.update({c: 0.5 for c in COLUMNS if c.startswith("score_")})
    return r


def test_manifest_round_trip(tmp_path):
    rows = [_row(0, True), _row(1, False)]
    path = write_table(rows_to_table(rows), tmp_path / "m.parquet", {"config": {"x": 1}})
    back = read_manifest(path)
    assert [r["clip_id"] for r in back] == ["scene-1:0000", "scene-1:0001"]
    for orig, got in zip(rows, back):
        assert {k: got[k] for k in COLUMNS} == orig
    assert back[0]["caption"] == {"text": "hi"} and back[1]["caption"] is None
    assert manifest_metadata(path) == {"config": {"x": 1}}
    assert read_table(path).schema.field("score_blur").type == "double"
    with pytest.raises(ValueError, match="lacks columns"):
        rows_to_table([{"clip_id": "x"}])
    with pytest.raises(DataError, match="cannot read manifest"):
        read_manifest(tmp_path / "absent.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"clip_id": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="missing columns"):
        read_manifest(tmp_path / "bad.parquet")
