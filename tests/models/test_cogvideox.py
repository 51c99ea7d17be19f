"""The CogVideoX codec on a randomly initialised tiny AutoencoderKLCogVideoX saved to and loaded from a tmp dir."""

import json

import pytest
import torch

from genesis_drive.errors import DataError
from genesis_drive.models.cogvideox import CogVideoXCodec, load_cogvideox_codec

diffusers = pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 3,
        up_block_types=("CogVideoXUpBlock3D",) * 3,
        block_out_channels=(8, 8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_height=32,
        sample_width=32,
        shift_factor=0.25,
    )
    path = tmp_path_factory.mktemp("cogvae")
    vae.save_pretrained(path)
    return path, vae


def test_encode_decode_shapes_and_scaling(vae_dir):
    path, ref = vae_dir
    codec = load_cogvideox_codec(path)
    assert isinstance(codec, CogVideoXCodec)
    assert codec.scaling_factor == pytest.approx(1.15258426) and codec.shift_factor == 0.25
    assert codec.latent_shape((3, 9, 16, 16)) == (4, 3, 4, 4)
    assert codec.latent_shape((3, 1, 16, 16)) == (4, 1, 4, 4)
    with pytest.raises(ValueError):
        codec.latent_shape((3, 8, 16, 16))
    x = torch.rand(2, 3, 9, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z = codec.encode(x)
        raw = ref.encode(x).latent_dist.mean
        y = codec.decode(z)
        y_ref = ref.decode(raw).sample
    assert z.shape == (2, 4, 3, 4, 4)
    # loaded weights equal the saved ones, and the normalisation is (z - shift) * scale
    torch.testing.assert_close(z, (raw - 0.25) * 1.15258426, atol=1e-5, rtol=1e-5)
    assert y.shape == x.shape
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    # an image is a 1-frame video
    with torch.no_grad():
        assert codec.encode(x[:, :, :1]).shape == (2, 4, 1, 4, 4)
    # sampling the posterior is seeded
    with torch.no_grad():
        a = codec.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
        b = codec.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, z)
    assert codec.version.startswith("AutoencoderKLCogVideoX:") and codec.version == load_cogvideox_codec(path).version


def test_bad_paths_are_one_clear_data_error(tmp_path, vae_dir):
    with pytest.raises(DataError, match="local diffusers-format"):
        load_cogvideox_codec(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(DataError, match="_class_name"):
        load_cogvideox_codec(tmp_path / "other")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((vae_dir[0] / "config.json").read_text())
    with pytest.raises(DataError, match="could not load"):
        load_cogvideox_codec(broken)
