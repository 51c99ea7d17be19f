"""Local weight files for the evaluation networks: where they come from, how they are checked, loaded.

Nothing is downloaded. A :class:`WeightSpec` names the file a user must place locally and where to
get it; :func:`load_state_dict_file` reads a state dict with ``torch.load(weights_only=True)``
(``.pt``/``.pth``) or safetensors (``.safetensors``); :func:`load_into` loads it strictly into a
module and turns a key/shape mismatch into one error that names the expected file.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import GenesisError

__all__ = ["WeightSpec", "WeightsError", "load_into", "load_state_dict_file", "resolve_weights", "sha256_file"]


class WeightsError(GenesisError):
    """A weight file is missing, unreadable or does not fit the architecture."""


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained weight file the project does not ship.

    filename: the canonical file name (looked up in a weights folder when no path is given).
    source: where users get it (URL or instructions).
    sha256_prefix: leading hex digits of the file's SHA-256 when known ("" when not).
    checksum_note: how much that prefix is to be trusted.
    """

    name: str
    filename: str
    source: str
    sha256_prefix: str = ""
    checksum_note: str = "not verified"

    def how_to_get(self) -> str:
        return f"{self.name} weights: place {self.filename} (from {self.source}) in the weights folder or pass its path"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_weights(spec: WeightSpec, path: str | Path | None, weights_dir: str | Path | None) -> Path:
    """The weight file to use: ``path`` if given, else ``weights_dir / spec.filename``; a clear error if absent."""
    if path is None:
        if weights_dir is None:
            raise WeightsError(f"no weight file given. {spec.how_to_get()}")
        path = Path(weights_dir).expanduser() / spec.filename
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: file not found. {spec.how_to_get()}")
    return path


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` state dict from ``.safetensors`` or a torch pickle (``weights_only=True``)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, SafetensorError) as e:
        raise WeightsError(f"{path}: not a readable weight file ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(sd).__name__}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_into(module: nn.Module, path: str | Path, spec: WeightSpec) -> str:
    """Load ``path`` strictly into ``module``; returns the file's SHA-256 (recorded in reports).

    A file carrying the canonical name whose SHA-256 does not start with ``spec.sha256_prefix``
    triggers a warning (the prefix is a naming convention, see ``spec.checksum_note``).
    """
    path = Path(path)
    digest = sha256_file(path)
    if spec.sha256_prefix and path.name == spec.filename and not digest.startswith(spec.sha256_prefix):
        warnings.warn(
            f"{path}: SHA-256 {digest[:16]}... does not start with {spec.sha256_prefix} ({spec.checksum_note})",
            stacklevel=2,
        )
    sd = load_state_dict_file(path)
    own = module.state_dict()
    # BatchNorm's step counter is not part of converted TF weights and is unused in eval mode.
    expected = {k for k in own if not k.endswith("num_batches_tracked")}
    given = {k for k in sd if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    bad_shape = sorted(k for k in expected & given if tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if bad_shape:
            k = bad_shape[0]
            parts.append(f"{len(bad_shape)} shape mismatches (e.g. {k}: file {tuple(sd[k].shape)}, model {tuple(own[k].shape)})")
        raise WeightsError(f"{path}: state dict does not fit {type(module).__name__}: {'; '.join(parts)}. Expected {spec.filename} from {spec.source}")
    sd = {k: v for k, v in sd.items() if k in expected}
    module.load_state_dict(sd, strict=False)
    return digest
