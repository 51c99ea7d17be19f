"""Helpers for torchmetrics list states (shared by the metrics of this package)."""

from __future__ import annotations

import torch

__all__ = ["is_empty"]


def is_empty(state: list | torch.Tensor) -> bool:
    """Whether a list state holds nothing: it is a list before a sync and a tensor after one."""
    return len(state) == 0 if isinstance(state, list) else state.numel() == 0
