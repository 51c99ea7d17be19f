"""Exponential moving average (EMA) of a model's trainable parameters.

After every optimizer step ``e <- decay * e + (1 - decay) * p`` for each parameter, starting
from ``e = p`` at construction; after ``k`` updates towards a constant ``p`` the gap is
``(e0 - p) * decay**k``. Buffers (e.g. norm statistics) are not averaged: the live ones are used.
Under FSDP2 the averages are sharded exactly like the parameters (DTensors), so each rank keeps
only its shard.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..errors import DataError
from .distributed import full_tensor, is_dtensor, reshard

__all__ = ["EMA"]


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if is_dtensor(t) else t


class EMA:
    """Averaged copies of ``model``'s parameters that require grad, keyed by parameter name."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    def _pairs(self, model: nn.Module) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        reshard(model)  # FSDP2: make sure the registered parameters are the shards the averages mirror
        params = dict(model.named_parameters())
        missing = [n for n in self.shadow if n not in params]
        if missing:
            raise ValueError(f"EMA: model has no parameter(s) {missing[:5]}")
        return [(n, e, params[n]) for n, e in self.shadow.items()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current parameters."""
        pairs = self._pairs(model)
        ema_t = [_local(e) for _, e, _ in pairs]
        par_t = [_local(p.detach()) for _, _, p in pairs]
        if ema_t:
            torch._foreach_lerp_(ema_t, par_t, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Whole (unsharded) CPU tensors by name; a collective call under FSDP."""
        return {n: full_tensor(e).detach().cpu() for n, e in self.shadow.items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor], source: str = "EMA state") -> None:
        """Copy whole tensors (as from :meth:`state_dict`) into the averages; names and shapes must match."""
        missing = sorted(set(self.shadow) - set(state))
        extra = sorted(set(state) - set(self.shadow))
        if missing or extra:
            raise DataError(
                f"EMA tensors do not match the model (missing {missing[:5]}, unexpected {extra[:5]})", source
            )
        for name, e in self.shadow.items():
            src = state[name]
            if tuple(src.shape) != tuple(e.shape):
                raise DataError(
                    f"EMA tensor '{name}' has shape {tuple(src.shape)}, the model needs {tuple(e.shape)}", source
                )
            if is_dtensor(e):
                from torch.distributed.tensor import distribute_tensor

                src = distribute_tensor(src.to(e.device, e.dtype), e.device_mesh, e.placements)
                e.to_local().copy_(src.to_local())
            else:
                e.copy_(src.to(e.device, e.dtype))

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily put the averaged weights into ``model`` (e.g. for previews/eval)."""
        pairs = self._pairs(model)
        backup = [_local(p.detach()).clone() for _, _, p in pairs]
        with torch.no_grad():
            for _, e, p in pairs:
                _local(p.detach()).copy_(_local(e))
        try:
            yield model
        finally:
            reshard(model)
            with torch.no_grad():
                for (_, _, p), b in zip(pairs, backup, strict=True):
                    _local(p.detach()).copy_(b)
