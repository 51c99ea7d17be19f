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
import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "LOGVAR_RANGE",
    "LatentCodec",
    "LatentStats",
    "check_codec_config",
    "draw_posterior",
    "kl_divergence",
    "latent_statistics",
    "weights_version",
]

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



def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(logvar)) || N(0, 1))`` averaged over all elements (nats per latent element)."""
    mean, logvar = mean.float(), logvar.float()
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()


def draw_posterior(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A draw ``mean + exp(logvar / 2) * eps`` of a diagonal Gaussian posterior, ``eps`` from
    ``generator`` (same shape, device and dtype as ``mean``)."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def weights_version(name: str, cfg: object, module: nn.Module) -> str:
    """``name:`` + a 16-hex SHA-256 prefix of the dataclass config ``cfg`` (JSON, sorted keys) and
    every state-dict entry's name and bytes (sorted by name): a codec's :attr:`LatentCodec.version`."""
    h = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode())
    for key, t in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{name}:{h.hexdigest()[:16]}"

@dataclass(frozen=True)
class LatentStats:
    """Mean and standard deviation of raw posterior-mean latents over ``count`` elements."""

    mean: float
    std: float
    count: int

    @property
    def scaling_factor(self) -> float:
        """``1 / std``: makes normalised latents unit-variance."""
        return 1.0 / self.std


@torch.no_grad()
def latent_statistics(codec: LatentCodec, inputs: Iterable[torch.Tensor]) -> LatentStats:
    """Mean and std of ``codec.encode_raw`` (posterior means) over all elements of all ``inputs``
    (batches in the codec's data layout: ``n 3 t h w`` in [-1, 1] for a video codec, ``n z h w``
    occupancy for the LiDAR AE); accumulated in float64. Set ``shift_factor = mean`` and
    ``scaling_factor = 1 / std`` in the codec's config after training
    (:mod:`genesis_drive.train.calibration`)."""
    s = s2 = 0.0
    n = 0
    for x in inputs:
        z = codec.encode_raw(x).double()
        s += float(z.sum())
        s2 += float(z.square().sum())
        n += z.numel()
    if n == 0:
        raise ValueError("latent_statistics: no inputs given")
    mean = s / n
    return LatentStats(mean=mean, std=math.sqrt(max(s2 / n - mean * mean, 1e-12)), count=n)
