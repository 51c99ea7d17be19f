"""The contract between the generic training loop and one model's recipe (a *task*).

A task builds its model and dataset and says how to compute the loss; the loop does the rest
(devices, DDP/FSDP, bf16 autocast, accumulation, clipping, LR schedule, EMA, checkpoints, logs).
Batches are whatever :meth:`Task.collate` returns: nested dicts/lists/tuples whose tensors the
loop moves to the device (strings such as captions pass through untouched). Clip tasks use
``genesis_drive.data.clips.ClipDataset`` samples, e.g. ``{"images": b v t c h w, ...}``.

Each task module exposes a :class:`TaskDef`: its run-config type (a dataclass with a
``train: TrainConfig`` field), named presets, and a ``build(cfg, data_root) -> Task`` function.
``genesis_drive.train.tasks.TASKS`` maps task names to these, explicitly.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from .distributed import DistEnv

__all__ = ["Task", "TaskDef", "Batch"]

Batch = Any


class Task(abc.ABC):
    """One model's training recipe, driven by :func:`genesis_drive.train.loop.train`."""

    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (the loop seeds torch first, moves it and wraps it)."""

    @abc.abstractmethod
    def train_dataset(self) -> Dataset:
        """Map-style dataset of training samples (the loop shards and shuffles it)."""

    def collate(self, samples: list[Any]) -> Batch:
        """Samples -> one batch (torch's ``default_collate`` unless overridden)."""
        return default_collate(samples)

    @abc.abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Scalar losses for one micro-batch (already on the device, under autocast).

        Must contain ``"loss"`` (what is minimised); other entries are logged. Call the model
        through ``model(...)`` so DDP/FSDP hooks run.
        """

    def preview(self, model: nn.Module, batch: Batch) -> dict[str, np.ndarray]:
        """Images to look at (name -> uint8 ``h w c`` RGB), from a fixed batch. Runs on every rank
        (FSDP forwards are collective); the loop writes rank 0's into RUN_DIR/previews."""
        return {}

    def evaluate(self, model: nn.Module, env: DistEnv) -> dict[str, float]:
        """Validation metrics, identical on every rank (reduce across ranks yourself; see
        ``distributed.shard_indices``). Runs under ``torch.no_grad`` and autocast."""
        return {}

    def fsdp_units(self, model: nn.Module) -> list[nn.Module]:
        """Submodules sharded as separate FSDP units (e.g. transformer blocks), inner first."""
        return []


@dataclass(frozen=True)
class TaskDef:
    """How the CLI finds, configures and builds one task."""

    config_type: type                                   # dataclass with a ``train: TrainConfig`` field
    presets: Mapping[str, Callable[[], Any]]            # preset name -> run config
    build: Callable[[Any, Path | None], Task]           # (run config, data root) -> task
    description: str = ""
