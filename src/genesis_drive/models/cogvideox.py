"""A :class:`~genesis_drive.models.codec.LatentCodec` backed by diffusers' ``AutoencoderKLCogVideoX``.

The weights come from a **local** diffusers-format directory (``config.json`` +
``diffusion_pytorch_model.safetensors``, e.g. the ``vae/`` folder of ``THUDM/CogVideoX-2b``); nothing
is downloaded. Input ``n c t h w`` in [-1, 1] with ``t = 4k + 1`` frames (an image is ``t = 1``);
latents are ``n C (k + 1) h/8 w/8`` for the real model (the spatial factor is
``2 ** (len(block_out_channels) - 1)``, the temporal one ``temporal_compression_ratio``). The
scaling (1.15258426 for the real model) and shift come from the model's config.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..errors import DataError
from .codec import LatentCodec

__all__ = ["CogVideoXCodec", "load_cogvideox_codec"]

EXPECTED = (
    "a local diffusers-format AutoencoderKLCogVideoX directory (config.json with "
    "_class_name 'AutoencoderKLCogVideoX' and diffusion_pytorch_model.safetensors), e.g. the vae/ folder of CogVideoX-2b"
)


class CogVideoXCodec(LatentCodec):
    """Wraps an ``AutoencoderKLCogVideoX`` (already built); use :func:`load_cogvideox_codec` for a directory."""

    def __init__(self, vae: torch.nn.Module, *, version: str | None = None):
        super().__init__()
        cfg = vae.config
        self.vae = vae
        self.latent_channels = int(cfg.latent_channels)
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(cfg.shift_factor or 0.0)
        self.spatial_factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.temporal_factor = int(cfg.temporal_compression_ratio)
        self._version = version or f"AutoencoderKLCogVideoX:{_config_digest(dict(cfg))}"

    @property
    def version(self) -> str:
        return self._version

    def latent_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(c, t, h, w)`` -> ``(latent_channels, (t - 1) / 4 + 1, h / 8, w / 8)`` (real model's factors)."""
        if len(input_shape) != 4:
            raise ValueError(f"CogVideoX codec input is (c, t, h, w), got {tuple(input_shape)}")
        _, t, h, w = input_shape
        tf, sf = self.temporal_factor, self.spatial_factor
        if (t - 1) % tf or h % sf or w % sf:
            raise ValueError(f"CogVideoX codec needs {tf}k+1 frames and sizes divisible by {sf}, got t={t}, {h}x{w}")
        return (self.latent_channels, (t - 1) // tf + 1, h // sf, w // sf)

    def encode_raw(self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        self.latent_shape(tuple(x.shape[1:]))
        dist = self.vae.encode(x).latent_dist
        return dist.sample(generator=generator) if sample else dist.mean

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample


def _config_digest(cfg: dict) -> str:
    text = json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _weights_digest(path: Path) -> str:
    """Digest of the config and the weight files (size plus their first and last MiB: cheap for 800 MB files)."""
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        size = f.stat().st_size
        h.update(f.name.encode() + str(size).encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def load_cogvideox_codec(path: str | Path, *, dtype: torch.dtype = torch.float32) -> CogVideoXCodec:
    """Load an ``AutoencoderKLCogVideoX`` from the local directory ``path`` (no download) as a codec in eval mode.

    Raises :class:`DataError` naming ``path`` when it is not a loadable diffusers-format directory.
    """
    path = Path(path)
    config = path / "config.json"
    if not path.is_dir() or not config.is_file():
        raise DataError(f"not a CogVideoX VAE directory; expected {EXPECTED}", path)
    try:
        name = json.loads(config.read_text()).get("_class_name")
    except (OSError, ValueError) as e:
        raise DataError(f"unreadable config.json ({e}); expected {EXPECTED}", config) from e
    if name != "AutoencoderKLCogVideoX":
        raise DataError(f"config is for {name!r}; expected {EXPECTED}", config, "_class_name")
    from diffusers import AutoencoderKLCogVideoX

    try:
        vae = AutoencoderKLCogVideoX.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise DataError(f"could not load the weights ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); expected {EXPECTED}", path) from e
    vae.eval().requires_grad_(False)
    return CogVideoXCodec(vae, version=f"AutoencoderKLCogVideoX:{_weights_digest(path)}")
