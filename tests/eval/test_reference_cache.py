"""Reference statistics cache: exact round trip, protocol-keyed names, refusal of foreign files."""

import pytest
import torch

from genesis_drive.errors import DataError
from genesis_drive.eval.frechet import GaussianStats
from genesis_drive.eval.reference_cache import (
    cache_path,
    load_cached,
    load_stats,
    protocol_hash,
    save_stats,
)

KEY = {"metric": "FID_multi", "feature_network": {"weights_sha256": "ab" * 32, "size": 299}, "frames": {"num_frames": 16}}


def stats(seed=0, d=6):
    x = torch.randn(20, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return GaussianStats.from_features(x)


def test_round_trip_is_exact(tmp_path):
    s = stats()
    path = save_stats(cache_path(tmp_path, "FID_multi", KEY), s, KEY)
    assert path.name == f"FID_multi-{protocol_hash(KEY)}.safetensors"
    back = load_stats(path, KEY)
    assert torch.equal(back.mean, s.mean) and torch.equal(back.cov, s.cov) and back.count == 20
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_key_order_does_not_matter_but_values_do(tmp_path):
    reordered = {"frames": {"num_frames": 16}, "feature_network": {"size": 299, "weights_sha256": "ab" * 32}, "metric": "FID_multi"}
    assert protocol_hash(reordered) == protocol_hash(KEY)
    other = {**KEY, "frames": {"num_frames": 8}}
    assert protocol_hash(other) != protocol_hash(KEY)
    save_stats(cache_path(tmp_path, "FID_multi", KEY), stats(), KEY)
    assert load_cached(tmp_path, "FID_multi", reordered) is not None
    assert load_cached(tmp_path, "FID_multi", other) is None


def test_foreign_protocol_is_refused_by_field(tmp_path):
    path = save_stats(tmp_path / "s.safetensors", stats(), KEY)
    with pytest.raises(DataError, match="differing fields: frames"):
        load_stats(path, {**KEY, "frames": {"num_frames": 8}})


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_stats(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="safetensors"):
        load_stats(bad)
