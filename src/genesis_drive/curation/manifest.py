"""The curation manifest: one Parquet row per clip (columns documented in docs/curation.md).

Written with pyarrow under a fixed schema (:data:`MANIFEST_SCHEMA`), atomically. The file's
key-value metadata holds ``genesis_drive`` -> JSON ``{"schema", "config", ...}`` describing the run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.atomic import atomic_write_bytes
from ..errors import DataError
from .scoring import GROUPS, SUBSCORES

__all__ = [
    "COLUMNS",
    "MANIFEST_SCHEMA",
    "MANIFEST_VERSION",
    "load_clip_embeddings",
    "manifest_metadata",
    "read_manifest",
    "read_table",
    "rows_to_table",
    "write_table",
]

MANIFEST_VERSION = "genesis-drive/manifest/v1"
_META_KEY = b"genesis_drive"

_f64 = pa.float64()
_strs = pa.list_(pa.string())
_FIELDS: list[tuple[str, pa.DataType]] = [
    ("clip_id", pa.string()),
    ("clip_index", pa.int64()),
    ("scene_token", pa.string()),
    ("scene_name", pa.string()),
    ("frame_tokens", _strs),
    ("views", _strs),
    ("status", pa.string()),
    ("error", pa.string()),
    *[(f"score_{s}", _f64) for s in SUBSCORES],
    *[(g, _f64) for g in GROUPS],
    ("total", _f64),
    ("kept", pa.bool_()),
    ("rejection_reasons", _strs),
    ("caption_json", pa.string()),
    ("caption_text", pa.string()),
    ("embedding_store", pa.string()),
    ("embedding_segments", _strs),
    ("embedding_keys", _strs),
    ("details_json", pa.string()),
]
MANIFEST_SCHEMA = pa.schema([pa.field(n, t) for n, t in _FIELDS])
COLUMNS: tuple[str, ...] = tuple(n for n, _ in _FIELDS)


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A table under :data:`MANIFEST_SCHEMA` from row dicts (every column must be present)."""
    for i, r in enumerate(rows):
        missing = [c for c in COLUMNS if c not in r]
        if missing:
            raise ValueError(f"manifest row {i} ({r.get('clip_id')}) lacks columns {missing}")
    return pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows], schema=MANIFEST_SCHEMA)


def write_table(table: pa.Table, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``table`` as Parquet, atomically, with ``metadata`` (JSON-able) under ``genesis_drive``."""
    if metadata is not None:
        table = table.replace_schema_metadata({_META_KEY: json.dumps(metadata, sort_keys=True).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return atomic_write_bytes(path, buf.getvalue())


def read_table(path: str | Path) -> pa.Table:
    """The manifest as a pyarrow table; DataError when unreadable or lacking columns."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (FileNotFoundError, OSError, pa.ArrowInvalid) as e:
        raise DataError(f"cannot read manifest ({e})", path) from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"not a {MANIFEST_VERSION} manifest: missing columns {missing}", path)
    return table


def read_manifest(path: str | Path) -> list[dict]:
    """Every row as a dict keyed by the manifest columns, in clip order, plus ``caption``: the
    parsed ``caption_json`` (None when the clip was not captioned)."""
    rows = read_table(path).to_pylist()
    for r in rows:
        r["caption"] = json.loads(r["caption_json"]) if r["caption_json"] else None
    return rows


def manifest_metadata(path: str | Path) -> dict:
    """The run description stored in the file (schema, config, counts)."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(_META_KEY)
    return json.loads(raw) if raw else {}


def load_clip_embeddings(manifest_path: str | Path, row: dict) -> np.ndarray:
    """Caption embeddings ``(s d)`` of one manifest row, one per ``embedding_segments`` entry
    (``"global"`` then each camera), from the store named in ``embedding_store``."""
    from .encoder import EmbeddingStore

    if not row.get("embedding_store") or not row.get("embedding_keys"):
        raise DataError(f"clip {row.get('clip_id')} has no caption embeddings", manifest_path, "embedding_store")
    store = EmbeddingStore(Path(manifest_path).parent / row["embedding_store"])
    return store.get(row["embedding_keys"])
