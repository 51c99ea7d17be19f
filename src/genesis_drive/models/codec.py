"""The latent-codec interface: what a diffusion task needs from an autoencoder.

The video VAE (camera branch), the LiDAR BEV autoencoder and a diffusers ``AutoencoderKLCogVideoX``
loaded from a local path all implement it, so the DiT tasks and samplers never care which codec
they drive (as EDM2's ``training/encoders.py``).

Conventions
-----------
* ``encode`` maps *data* to **normalised latents** ``(z - shift_factor) * scaling_factor`` (unit-ish
  variance, what the diffusion model sees); ``decode`` takes normalised latents back to data.
* Video codecs take ``n c t h w`` in [-1, 1] (views folded into ``n``); an image is a 1-frame video.
  The LiDAR codec takes its own data layout (documented by it). ``latent_shape`` maps one input
  shape (without the batch axis) to the latent shape (without the batch axis).
* ``version`` identifies the weights (for latent caches: a cache written by another codec version is
  refused, not reused).
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["LOGVAR_RANGE", "LatentCodec", "check_codec_config"]

#: Clamp range of a KL codec's posterior log-variance.
LOGVAR_RANGE = (-30.0, 20.0)


class LatentCodec(nn.Module, abc.ABC):
    """Encoder/decoder pair with a fixed latent scaling. Subclasses set the three attributes."""

    latent_channels: int
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    @abc.abstractmethod
    def encode_raw(self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Data -> un-normalised latent (the posterior mean, or a draw from it when ``sample``)."""

    @abc.abstractmethod
    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Un-normalised latent -> data."""

    @abc.abstractmethod
    def latent_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Latent shape (no batch axis) of one input of ``input_shape`` (no batch axis)."""

    @property
    def version(self) -> str:
        """Identity of the codec's architecture and weights (override with a weights hash when known)."""
        return type(self).__name__

    def encode(self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Data -> normalised latent ``(z - shift_factor) * scaling_factor``."""
        return (self.encode_raw(x, sample=sample, generator=generator) - self.shift_factor) * self.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent -> data."""
        return self.decode_raw(z / self.scaling_factor + self.shift_factor)


def check_codec_config(init_logvar: float, scaling_factor: float, shift_factor: float) -> None:
    """ConfigError naming the ``model.`` field when a KL codec config's initial log-variance lies
    outside :data:`LOGVAR_RANGE` or its latent normalisation factors are not usable."""
    if not LOGVAR_RANGE[0] <= init_logvar <= LOGVAR_RANGE[1]:
        raise ConfigError(f"model.init_logvar must lie in {list(LOGVAR_RANGE)}, got {init_logvar}")
    if not (scaling_factor > 0 and math.isfinite(scaling_factor)) or not math.isfinite(shift_factor):
        raise ConfigError(f"model.scaling_factor must be a positive finite number and model.shift_factor finite, "
                          f"got {scaling_factor}, {shift_factor}")
