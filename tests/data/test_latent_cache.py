"""Latent cache: round trip, refusal of another codec version / spec, atomic writes, resumable fill."""

from __future__ import annotations

import pytest
import torch

import genesis_drive.data.latent_cache as lc
from genesis_drive.data.clips import ClipSpec
from genesis_drive.data.latent_cache import CachedLatentDataset, LatentCache, fill_latent_cache, fingerprint
from genesis_drive.errors import DataError


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "latents": torch.randn(6, 3, 4, 9, 16, generator=g),
        "layout_latents": torch.randn(6, 3, 4, 9, 16, generator=g).to(torch.bfloat16),
        "box_mask": torch.rand(9, 8, generator=g) > 0.5,
        "box_class": torch.randint(-1, 10, (9, 8), generator=g),
    }


def test_round_trip_exact(tmp_path):
    cache = LatentCache(tmp_path, "VideoVAE:abc", fingerprint(ClipSpec(num_frames=9)))
    t = _tensors(0)
    cache.write("scene-0001:0000", t, {"caption": {"weather": "sunny"}})
    assert cache.has("scene-0001:0000") and not cache.has("scene-0001:0008")
    got, extra = cache.read("scene-0001:0000")
    assert set(got) == set(t)
    for k in t:
        assert got[k].dtype == t[k].dtype and torch.equal(got[k], t[k])
    assert extra == {"caption": {"weather": "sunny"}}


def test_ids_do_not_collide(tmp_path):
    cache = LatentCache(tmp_path, "v", "s")
    assert cache.path("a:b") != cache.path("a_b")
    cache.write("a:b", {"x": torch.zeros(1)})
    cache.write("a_b", {"x": torch.ones(1)})
    assert cache.read("a:b")[0]["x"].item() == 0 and cache.read("a_b")[0]["x"].item() == 1


def test_fingerprint_tracks_config():
    assert fingerprint(ClipSpec(num_frames=9)) == fingerprint(ClipSpec(num_frames=9))
    assert fingerprint(ClipSpec(num_frames=9)) != fingerprint(ClipSpec(num_frames=17))


@pytest.mark.parametrize("field", ["codec_version", "spec"])
def test_other_version_or_spec_refused(tmp_path, field):
    LatentCache(tmp_path, "vae-1", "spec-1").write("c", _tensors(1))
    other = LatentCache(tmp_path, "vae-2", "spec-1") if field == "codec_version" else LatentCache(tmp_path, "vae-1", "spec-2")
    with pytest.raises(DataError, match=field):
        other.has("c")
    with pytest.raises(DataError, match=field):
        other.read("c")
    with pytest.raises(DataError, match=field):
        CachedLatentDataset(other, ["c"])


def test_missing_clip_clear_error(tmp_path):
    with pytest.raises(DataError, match="not in the latent cache"):
        LatentCache(tmp_path, "v", "s").read("nope")


def test_no_partial_file_after_exception(tmp_path, monkeypatch):
    cache = LatentCache(tmp_path, "v", "s")
    cache.write("c", {"x": torch.zeros(3)})

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(lc, "save_file", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        cache.write("c", {"x": torch.ones(3)})
    with pytest.raises(RuntimeError):
        cache.write("d", {"x": torch.ones(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.path("c").name]  # no temp file, no "d"
    assert torch.equal(cache.read("c")[0]["x"], torch.zeros(3))  # the old file is whole


def test_fill_is_resumable_and_dataset_reads_cache(tmp_path):
    cache = LatentCache(tmp_path, "v", "s")
    ids = [f"scene:{i:04d}" for i in range(4)]
    calls = []

    def compute(i):
        calls.append(i)
        if i == 2 and len(calls) <= 3:
            raise RuntimeError("interrupted")
        return {"latents": torch.full((2,), float(i))}, {"n": i}

    with pytest.raises(RuntimeError):
        fill_latent_cache(cache, ids, compute, progress=False)
    assert [cache.has(c) for c in ids] == [True, True, False, False]
    stats = fill_latent_cache(cache, ids, compute, progress=False)
    assert stats["computed"] == 2 and stats["skipped"] == 2
    assert calls == [0, 1, 2, 2, 3]
    ds = CachedLatentDataset(cache, ids)
    item = ds[3]
    assert item["clip_id"] == "scene:0003" and item["n"] == 3 and torch.equal(item["latents"], torch.full((2,), 3.0))


class _MeanCodec(torch.nn.Module):
    """Latent = the 8x8 spatial mean of each frame group (frame 0 alone, then groups of 4), times 2."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1), requires_grad=False)

    def encode(self, x):
        first, rest = x[:, :, :1], x[:, :, 1:]
        n, c, t, h, w = rest.shape
        rest = rest.reshape(n, c, t // 4, 4, h, w).mean(3)
        z = torch.cat([first, rest], 2)
        return 2 * torch.nn.functional.avg_pool3d(z, (1, 8, 8))


def test_encode_clip_item_and_fill(tmp_path):
    v, t, h, w = 2, 5, 16, 24
    images = torch.zeros(v, t, 3, h, w, dtype=torch.uint8)
    images[1, 1:] = 255  # view 1: black first frame, then white
    item = {"images": images, "layout": torch.full((v, t, 3, h, w), 255, dtype=torch.uint8),
            "box_mask": torch.ones(5, 3, dtype=torch.bool), "caption": {"text": "rain"}, "clip_id": "s:0000"}
    tensors, extra = lc.encode_clip_item(_MeanCodec(), item)
    assert set(tensors) == {"latents", "layout_latents", "box_mask"} and extra == {"caption": {"text": "rain"}}
    lat = tensors["latents"]
    assert lat.shape == (v, 2, 3, 2, 3)
    assert torch.allclose(lat[0], torch.full_like(lat[0], -2.0)) and torch.allclose(lat[1, 0], torch.full_like(lat[1, 0], -2.0))
    assert torch.allclose(lat[1, 1], torch.full_like(lat[1, 1], 2.0))
    cache = LatentCache(tmp_path, "mean", "s")
    fill_latent_cache(cache, ["s:0000"], lambda i: lc.encode_clip_item(_MeanCodec(), item), progress=False)
    got = CachedLatentDataset(cache, ["s:0000"])[0]
    assert torch.equal(got["latents"], lat) and got["caption"] == {"text": "rain"} and "images" not in got
    with pytest.raises(DataError, match="lacks the videos"):
        lc.encode_clip_item(_MeanCodec(), {"images": images})
