"""The camera branch's causal 3D video VAE, a :class:`~genesis_drive.models.codec.LatentCodec`.

Shapes (views folded into ``n`` by the caller: ``b v`` -> ``n``):

* input ``x``: ``n 3 t h w`` in [-1, 1], ``t = tf k + 1`` frames (tf = 4 in the presets: 1, 5, 9,
  ... frames; an image is a 1-frame video), ``h, w`` divisible by the spatial factor (8);
* latent ``z``: ``n z (k + 1) h/8 w/8``; latent frame 0 encodes frame 0 alone, latent frame
  ``j >= 1`` encodes frames ``4j - 3 .. 4j``.

Architecture (after the CogVideoX VAE's causal design; see docs/camera.md "Video VAE"):

* **Causal in time.** Every convolution pads time on the left only, replicating frame 0 (so frame
  0 sees nothing but itself), and GroupNorm normalises each frame on its own; a time
  downsampling folds frame pairs ``(0, 0), (1, 2), (3, 4), ...`` into channels (frame 0 paired
  with a copy of itself), the matching upsampling unfolds them and drops the copy. Latent frame
  ``j`` therefore depends exactly on frames ``<= 4j`` only, and the first frame of a video is
  encoded as the video's first frame alone.
* **Patchify**: a ``p x p`` pixel (un)shuffle at the input and output (as in LTX-Video), then
  levels of residual blocks with causal ``kt x 3 x 3`` convolutions; between levels a 2x spatial
  (and optionally 2x temporal) space-to-channel fold with a 1x1x1 projection (decoder: the
  inverse). Spatial factor ``p * 2**(levels - 1)``, temporal factor ``2**sum(time_down)``.
* **KL latent**: the encoder outputs a diagonal Gaussian (mean, log-variance clamped to
  [-30, 20]); :meth:`VideoVAE.encode_raw` returns its mean, or a seeded draw with ``sample=True``.
* **Chunked encoding and decoding** (long videos): the video is processed chunk by chunk in time
  with a :class:`CausalCache` carrying every causal convolution's last input frames across
  chunks, so the result equals the whole-video pass up to float rounding while peak memory
  follows the chunk length (``chunk=`` latent frames per chunk).

Normalised latents (what the DiT sees) are ``(z - shift_factor) * scaling_factor``; both factors
are config fields, measured after training (:func:`genesis_drive.models.codec.latent_statistics`,
:mod:`genesis_drive.train.calibration`; docs/camera.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...errors import ConfigError
from ..codec import LOGVAR_RANGE, LatentCodec, check_codec_config, draw_posterior, weights_version

__all__ = [
    "VideoVAEConfig",
    "VideoVAE",
    "VAEOutput",
    "CausalCache",
    "tiny",
    "paper",
    "PRESETS",
]



@dataclass(frozen=True)
class VideoVAEConfig:
    """Sizes of a :class:`VideoVAE`.

    widths: encoder channels per level; each level after the first halves height and width.
    decoder_widths: decoder channels per level (same order, level 0 = full resolution); None = widths.
    time_down: per level transition (``len(widths) - 1`` entries), whether it also halves time.
    blocks_per_level / decoder_blocks_per_level: residual blocks per level in the encoder / decoder.
    mid_blocks: residual blocks at the lowest resolution (encoder and decoder each).
    patch_size: pixel (un)shuffle factor at the input / output.
    time_kernels: temporal kernel (frames) of the causal convolutions per level (1 = per-frame 2D).
    groups: GroupNorm groups (must divide every width).
    latent_channels: channels of the latent (z).
    shortcuts: DC-AE's non-parametric residual shortcuts around every change of channel count
    (input / output convolutions, space/time <-> channel folds, latent): channel-group means or
    repeats, so each pair of counts must be whole multiples one way or the other. The learned
    branch beside each shortcut (and each residual block's last convolution) starts at zero, so
    the untrained VAE is the pure pooling / repeating path.
    init_logvar: initial bias of the encoder's log-variance outputs (a small posterior std at the
    start, so the encoder need not inflate its means to outshout unit noise while the KL weight
    warms up).
    scaling_factor, shift_factor: latent normalisation ``(z - shift) * scale`` (measured after
    training, :mod:`genesis_drive.train.calibration`; 1 and 0 before).
    """

    widths: tuple[int, ...] = (24, 48, 96)
    decoder_widths: tuple[int, ...] | None = None
    time_down: tuple[bool, ...] = (True, True)
    blocks_per_level: int = 1
    decoder_blocks_per_level: int = 1
    mid_blocks: int = 1
    patch_size: int = 2
    time_kernels: tuple[int, ...] = (3, 3, 3)
    groups: int = 8
    latent_channels: int = 16
    in_channels: int = 3
    shortcuts: bool = True
    init_logvar: float = -6.0
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    def __post_init__(self) -> None:
        dec = self.dec_widths
        if not self.widths or min(self.widths) < 1 or min(dec) < 1:
            raise ConfigError(f"model.widths must be positive channel counts, got {self.widths}")
        if len(dec) != len(self.widths):
            raise ConfigError(f"model.decoder_widths {self.decoder_widths} must have one entry per level "
                              f"(len(model.widths) = {len(self.widths)})")
        if len(self.time_down) != len(self.widths) - 1:
            raise ConfigError(f"model.time_down must have len(model.widths) - 1 = {len(self.widths) - 1} entries, "
                              f"got {self.time_down}")
        bad = [c for c in (*self.widths, *dec) if c % self.groups]
        if self.groups < 1 or bad:
            raise ConfigError(f"model.groups={self.groups} must divide every width, not {bad}")
        if len(self.time_kernels) != len(self.widths) or min(self.time_kernels) < 1:
            raise ConfigError(f"model.time_kernels must hold one kernel size >= 1 per level ({len(self.widths)}), "
                              f"got {self.time_kernels}")
        for name in ("blocks_per_level", "decoder_blocks_per_level", "patch_size", "latent_channels", "in_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.mid_blocks < 0:
            raise ConfigError(f"model.mid_blocks must be >= 0, got {self.mid_blocks}")
        if self.shortcuts:
            pixels = self.in_channels * self.patch_size**2
            pairs = [(pixels, self.widths[0]), (self.widths[-1], self.latent_channels),
                     (self.latent_channels, dec[-1]), (dec[0], pixels)]
            for i in range(len(self.widths) - 1):
                k = 4 * (2 if self.time_down[i] else 1)
                pairs += [(self.widths[i] * k, self.widths[i + 1]), (dec[i + 1], dec[i] * k)]
            bad = [(a, b) for a, b in pairs if a % b and b % a]
            if bad:
                raise ConfigError(f"model.shortcuts needs each channel change (c_in, c_out) to be a whole multiple one "
                                  f"way or the other, not {bad} (widths {self.widths}, decoder {dec}, latent "
                                  f"{self.latent_channels}, {pixels} pixel channels); set model.shortcuts=false otherwise")
        check_codec_config(self.init_logvar, self.scaling_factor, self.shift_factor)

    @property
    def dec_widths(self) -> tuple[int, ...]:
        return self.widths if self.decoder_widths is None else self.decoder_widths

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell along height and width."""
        return self.patch_size * 2 ** (len(self.widths) - 1)

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame (after the first, which encodes frame 0 alone)."""
        return 2 ** sum(self.time_down)


# ----------------------------------------------------------------------------- causal building blocks


class CausalCache:
    """State of one chunk-by-chunk pass through an encoder or decoder (create one per pass).

    ``tails`` holds, per causal convolution, the last ``kt - 1`` frames of its padded input from
    the previous chunk; ``first`` is True while the chunk being processed starts the video.
    """

    def __init__(self) -> None:
        self.first = True
        self.tails: dict[nn.Module, torch.Tensor] = {}


class CausalConv3d(nn.Module):
    """``n c t h w -> n c' t h w``: a ``kt x k x k`` convolution padded causally in time.

    Time is padded on the left with ``kt - 1`` copies of frame 0 (or, inside a chunked pass, the
    previous chunk's last input frames); height and width with zeros.
    """

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int]):
        super().__init__()
        kt, kh, kw = kernel
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(c_in, c_out, kernel, padding=(0, kh // 2, kw // 2))

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        p = self.time_pad
        if p:
            prev = cache.tails.get(self) if cache is not None else None
            pad = x[:, :, :1].expand(-1, -1, p, -1, -1) if prev is None else prev.to(x.dtype)
            x = torch.cat([pad, x], dim=2)
            if cache is not None:
                cache.tails[self] = x[:, :, -p:].detach()
        return self.conv(x)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over ``(c / groups, h, w)`` of each frame separately (no statistics across time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # n c t h w
        n = x.shape[0]
        y = super().forward(rearrange(x, "n c t h w -> (n t) c h w"))
        return rearrange(y, "(n t) c h w -> n c t h w", n=n)


class ResBlock(nn.Module):
    """Per-frame GroupNorm - SiLU - causal conv, twice, plus a (1x1x1-projected) skip path.

    ``grad_checkpointing`` recomputes the block in backward (whole-video passes only).
    """

    def __init__(self, c_in: int, c_out: int, time_kernel: int, groups: int):
        super().__init__()
        self.norm1 = FrameGroupNorm(groups, c_in)
        self.conv1 = CausalConv3d(c_in, c_out, (time_kernel, 3, 3))
        self.norm2 = FrameGroupNorm(groups, c_out)
        self.conv2 = CausalConv3d(c_out, c_out, (time_kernel, 3, 3))
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.conv.weight)  # the residual branch starts at zero: identity blocks at init
        nn.init.zeros_(self.conv2.conv.bias)
        self.grad_checkpointing = False

    def _forward(self, x: torch.Tensor, cache: CausalCache | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return self.skip(x) + h

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        if self.grad_checkpointing and cache is None and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, None, use_reentrant=False)
        return self._forward(x, cache)


def channel_shortcut(x: torch.Tensor, c_out: int) -> torch.Tensor:
    """DC-AE's non-parametric channel shortcut ``n c t h w -> n c_out t h w``: the mean of groups of
    consecutive channels (``c`` a multiple of ``c_out``) or each channel repeated (the reverse)."""
    c_in = x.shape[1]
    if c_in == c_out:
        return x
    if c_in % c_out == 0:
        return x.unflatten(1, (c_out, c_in // c_out)).mean(dim=2)
    return x.repeat_interleave(c_out // c_in, dim=1)


def _zero_(conv: nn.Conv3d, channels: slice = slice(None)) -> None:
    """Zero the weights and biases of output ``channels`` of ``conv`` (a branch beside a shortcut)."""
    with torch.no_grad():
        conv.weight[channels] = 0.0
        conv.bias[channels] = 0.0


def _first_chunk(cache: CausalCache | None) -> bool:
    return cache is None or cache.first


class Down(nn.Module):
    """``n c t h w -> n c' t' h/2 w/2``: fold 2x2 pixels (and, with ``time``, frame pairs) into
    channels, then a 1x1x1 projection, plus (``shortcut``) the folded input averaged over
    channel groups down to ``c'`` (the non-parametric space-to-channel shortcut of DC-AE). Time
    pairs are ``(0, 0), (1, 2), (3, 4), ...`` at the video start (``t`` odd: ``t' = (t + 1) / 2``),
    ``(0, 1), (2, 3), ...`` inside a later chunk (``t`` even)."""

    def __init__(self, c_in: int, c_out: int, time: bool, shortcut: bool):
        super().__init__()
        self.time = time
        folded = c_in * 4 * (2 if time else 1)
        self.proj = nn.Conv3d(folded, c_out, 1)
        self.shortcut = shortcut
        if shortcut:
            _zero_(self.proj)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        if self.time:
            first = _first_chunk(cache)
            if x.shape[2] % 2 != (1 if first else 0):
                raise ValueError(f"Down: {'a video start' if first else 'a later chunk'} needs an "
                                 f"{'odd' if first else 'even'} frame count, got {x.shape[2]}")
            if first:
                x = torch.cat([x[:, :, :1], x], dim=2)
            x = rearrange(x, "n c (t r) (h p) (w q) -> n (c r p q) t h w", r=2, p=2, q=2)
        else:
            x = rearrange(x, "n c t (h p) (w q) -> n (c p q) t h w", p=2, q=2)
        out = self.proj(x)
        return out + channel_shortcut(x, out.shape[1]) if self.shortcut else out


class Up(nn.Module):
    """``n c t h w -> n c' t' 2h 2w``: a 1x1x1 projection (plus, with ``shortcut``, the input with
    each channel repeated, DC-AE's channel-to-space shortcut), then unfold channels into 2x2
    pixels (and, with ``time``, frame pairs; at the video start the copy of frame 0 is dropped:
    ``t' = 2t - 1``, else ``t' = 2t``). The inverse layout of :class:`Down`."""

    def __init__(self, c_in: int, c_out: int, time: bool, shortcut: bool):
        super().__init__()
        self.time = time
        unfolded = c_out * 4 * (2 if time else 1)
        self.proj = nn.Conv3d(c_in, unfolded, 1)
        self.shortcut = shortcut
        if shortcut:
            _zero_(self.proj)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        h = self.proj(x)
        if self.shortcut:
            h = h + channel_shortcut(x, h.shape[1])
        if not self.time:
            return rearrange(h, "n (c p q) t h w -> n c t (h p) (w q)", p=2, q=2)
        h = rearrange(h, "n (c r p q) t h w -> n c (t r) (h p) (w q)", r=2, p=2, q=2)
        return h[:, :, 1:] if _first_chunk(cache) else h


class Encoder(nn.Module):
    """Patchified video ``n (3 p p) t h w`` -> Gaussian moments ``n 2z t' h' w'``."""

    def __init__(self, cfg: VideoVAEConfig):
        super().__init__()
        w, kt, g = cfg.widths, cfg.time_kernels, cfg.groups
        self.conv_in = CausalConv3d(cfg.in_channels * cfg.patch_size**2, w[0], (kt[0], 3, 3))
        self.layers = nn.ModuleList()
        for i, c in enumerate(w):
            self.layers.extend(ResBlock(c, c, kt[i], g) for _ in range(cfg.blocks_per_level))
            if i < len(w) - 1:
                self.layers.append(Down(c, w[i + 1], cfg.time_down[i], cfg.shortcuts))
        self.layers.extend(ResBlock(w[-1], w[-1], kt[-1], g) for _ in range(cfg.mid_blocks))
        self.norm_out = FrameGroupNorm(g, w[-1])
        self.conv_out = CausalConv3d(w[-1], 2 * cfg.latent_channels, (kt[-1], 3, 3))
        with torch.no_grad():
            self.conv_out.conv.bias[cfg.latent_channels :] = cfg.init_logvar
        self.shortcuts = cfg.shortcuts
        self.latent_channels = cfg.latent_channels
        if cfg.shortcuts:
            _zero_(self.conv_in.conv)
            _zero_(self.conv_out.conv, slice(0, cfg.latent_channels))  # the mean; log-variances keep their init

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        h = self.conv_in(x, cache)
        if self.shortcuts:
            h = h + channel_shortcut(x, h.shape[1])
        for layer in self.layers:
            h = layer(h, cache)
        out = self.conv_out(F.silu(self.norm_out(h)), cache)
        if not self.shortcuts:
            return out
        mean, logvar = out.chunk(2, dim=1)
        return torch.cat([mean + channel_shortcut(h, self.latent_channels), logvar], dim=1)


class Decoder(nn.Module):
    """Latent ``n z t' h' w'`` -> patchified video ``n (3 p p) t h w``."""

    def __init__(self, cfg: VideoVAEConfig):
        super().__init__()
        w, kt, g = cfg.dec_widths, cfg.time_kernels, cfg.groups
        self.conv_in = CausalConv3d(cfg.latent_channels, w[-1], (kt[-1], 3, 3))
        self.layers = nn.ModuleList(ResBlock(w[-1], w[-1], kt[-1], g) for _ in range(cfg.mid_blocks))
        for i in reversed(range(len(w))):
            self.layers.extend(ResBlock(w[i], w[i], kt[i], g) for _ in range(cfg.decoder_blocks_per_level))
            if i > 0:
                self.layers.append(Up(w[i], w[i - 1], cfg.time_down[i - 1], cfg.shortcuts))
        self.norm_out = FrameGroupNorm(g, w[0])
        self.conv_out = CausalConv3d(w[0], cfg.in_channels * cfg.patch_size**2, (kt[0], 3, 3))
        self.shortcuts = cfg.shortcuts
        if cfg.shortcuts:
            _zero_(self.conv_in.conv)
            _zero_(self.conv_out.conv)

    def forward(self, z: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        h = self.conv_in(z, cache)
        if self.shortcuts:
            h = h + channel_shortcut(z, h.shape[1])
        for layer in self.layers:
            h = layer(h, cache)
        out = self.conv_out(F.silu(self.norm_out(h)), cache)
        return out + channel_shortcut(h, out.shape[1]) if self.shortcuts else out


# ----------------------------------------------------------------------------- the codec


class VAEOutput(NamedTuple):
    """One training pass: ``recon`` (n 3 t h w, [-1, 1] scale, not clamped), the posterior
    ``mean`` and ``logvar`` (n z t' h' w'), and the latent ``z`` fed to the decoder."""

    recon: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class VideoVAE(LatentCodec):
    """Causal 3D video VAE: ``n 3 (tf k + 1) h w`` in [-1, 1] <-> latents ``n z (k + 1) h/sf w/sf``."""

    def __init__(self, cfg: VideoVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.latent_channels = cfg.latent_channels
        self.scaling_factor = float(cfg.scaling_factor)
        self.shift_factor = float(cfg.shift_factor)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @property
    def spatial_factor(self) -> int:
        return self.cfg.spatial_factor

    @property
    def temporal_factor(self) -> int:
        return self.cfg.temporal_factor

    # -- shapes -----------------------------------------------------------------------------
    def latent_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(c, t, h, w)`` -> ``(z, (t - 1) / tf + 1, h / sf, w / sf)``; ValueError when ``c`` is not
        the input channel count, ``t`` is not ``tf k + 1`` or ``h, w`` are not multiples of ``sf``."""
        if len(input_shape) != 4:
            raise ValueError(f"VideoVAE input is (c, t, h, w) per video, got {tuple(input_shape)}")
        c, t, h, w = (int(s) for s in input_shape)
        tf, sf = self.temporal_factor, self.spatial_factor
        if c != self.cfg.in_channels:
            raise ValueError(f"VideoVAE expects {self.cfg.in_channels} input channels, got {c} (shape {tuple(input_shape)})")
        if t < 1 or (t - 1) % tf:
            raise ValueError(f"VideoVAE needs {tf}k+1 frames (1, {tf + 1}, {2 * tf + 1}, ...), got t={t}")
        if h < sf or w < sf or h % sf or w % sf:
            raise ValueError(f"VideoVAE needs height and width divisible by {sf}, got {h}x{w}")
        return (self.latent_channels, (t - 1) // tf + 1, h // sf, w // sf)

    def _check_latent(self, z: torch.Tensor) -> None:
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise ValueError(f"VideoVAE latents are (n, {self.latent_channels}, t, h, w), got {tuple(z.shape)}")

    @staticmethod
    def _check_chunk(chunk: int | None) -> None:
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be a positive number of latent frames or None, got {chunk}")

    # -- encoder ----------------------------------------------------------------------------
    def moments(self, x: torch.Tensor, *, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, logvar)`` (n z t' h' w') of videos ``x`` (n 3 t h w in [-1, 1]).

        ``chunk``: encode ``chunk`` latent frames at a time (frames ``[0, tf (chunk-1) + 1)``,
        then ``tf * chunk`` frames per chunk) with causal state carried over; None = all at once.
        """
        if x.ndim != 5:
            raise ValueError(f"VideoVAE input is (n, c, t, h, w), got {tuple(x.shape)}")
        self.latent_shape(tuple(x.shape[1:]))
        self._check_chunk(chunk)
        p = self.cfg.patch_size
        x = rearrange(x, "n c t (h p) (w q) -> n (c p q) t h w", p=p, q=p)
        t, tf = x.shape[2], self.temporal_factor
        if chunk is None or t <= tf * (chunk - 1) + 1:
            out = self.encoder(x)
        else:
            cache, parts, start, stop = CausalCache(), [], 0, tf * (chunk - 1) + 1
            while start < t:
                parts.append(self.encoder(x[:, :, start:stop], cache))
                cache.first = False
                start, stop = stop, min(t, stop + tf * chunk)
            out = torch.cat(parts, dim=2)
        mean, logvar = out.chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode_raw(self, x: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None,
                   chunk: int | None = None) -> torch.Tensor:
        """Videos ``n 3 t h w`` in [-1, 1] -> un-normalised latents ``n z t' h' w'``: the posterior
        mean, or ``mean + std * eps`` with ``eps`` drawn from ``generator`` when ``sample``."""
        mean, logvar = self.moments(x, chunk=chunk)
        return draw_posterior(mean, logvar, generator) if sample else mean

    # -- decoder ----------------------------------------------------------------------------
    def decode_raw(self, z: torch.Tensor, *, chunk: int | None = None) -> torch.Tensor:
        """Un-normalised latents ``n z t' h' w'`` -> videos ``n 3 (tf (t'-1) + 1) h w`` ([-1, 1]
        scale, not clamped). ``chunk``: decode ``chunk`` latent frames at a time with causal state
        carried over (equal to the whole decode up to float rounding); None = all at once."""
        self._check_latent(z)
        self._check_chunk(chunk)
        if chunk is None or z.shape[2] <= chunk:
            y = self.decoder(z)
        else:
            cache, parts = CausalCache(), []
            for s in range(0, z.shape[2], chunk):
                parts.append(self.decoder(z[:, :, s : s + chunk], cache))
                cache.first = False
            y = torch.cat(parts, dim=2)
        p = self.cfg.patch_size
        return rearrange(y, "n (c p q) t h w -> n c t (h p) (w q)", p=p, q=p)

    # -- training pass ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, *, sample: bool = True, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, draw a latent (``sample``) or take the mean, decode: see :class:`VAEOutput`."""
        mean, logvar = self.moments(x)
        z = draw_posterior(mean, logvar, generator) if sample else mean
        return VAEOutput(self.decode_raw(z), mean, logvar, z)

    @property
    def version(self) -> str:
        """``VideoVAE:`` + a SHA-256 prefix of the config and every weight's bytes."""
        return weights_version("VideoVAE", self.cfg, self)


# ----------------------------------------------------------------------------- presets


def tiny() -> VideoVAEConfig:
    """CPU size (2.5 M weights): patch 2, widths 24-48-96, 16 latent channels; 128x72 clips of 9
    frames -> 16 x 9 x 3 latents."""
    return VideoVAEConfig(widths=(24, 48, 96), time_down=(True, True), blocks_per_level=1,
                          decoder_blocks_per_level=1, mid_blocks=1, patch_size=2, latent_channels=16)


def paper() -> VideoVAEConfig:
    """GPU size (~86 M weights): patch 2, widths 96-192-384, 2 (encoder) / 3 (decoder) residual
    blocks per level plus 2 at the latent resolution, 16 latent channels; 256x144 clips of 17 frames
    -> 32 x 18 x 5 latents."""
    return VideoVAEConfig(widths=(96, 192, 384), time_down=(True, True), time_kernels=(3, 3, 3), blocks_per_level=2,
                          decoder_blocks_per_level=3, mid_blocks=2, patch_size=2, groups=32, latent_channels=16)


#: Named model presets (plain functions).
PRESETS = {"tiny": tiny, "paper": paper}
