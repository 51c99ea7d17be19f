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
        """Images or videos to look at, from a fixed batch: name -> uint8 ``h w c`` RGB (or ``h w``
        grey) written as PNG, or uint8 ``t h w 3`` RGB written as MP4 at :attr:`preview_fps`. Runs
        on every rank (FSDP forwards are collective); the loop writes rank 0's into RUN_DIR/previews."""
        return {}

    #: Frame rate (Hz) of video previews.
    preview_fps: float = 12.0

    def on_step(self, step: int) -> None:
        """Called before every optimizer step with the number of steps already done (0 first; on
        resume, the checkpoint's step), e.g. to warm up KL or adversarial loss weights. Keep any
        state it sets a pure function of ``step`` so resumed runs match uninterrupted ones."""

    def frozen_modules(self) -> dict[str, nn.Module]:
        """Helper networks the task holds as attributes (e.g. a frozen VAE inside a DiT task).

        Called once after :meth:`build_model`; the loop moves each to the device, puts it in eval
        mode with ``requires_grad_(False)``, and never saves it in or checks it against the run's
        checkpoints (load its weights yourself, e.g. in ``__init__``). It must not share
        parameters with the trained model.
        """
        return {}

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]] | None:
        """Optimizer parameter groups, or None for the default (weight decay on tensors with
        ndim >= 2, none on biases and norms). Each group: ``{"params": [...], "lr_scale": float
        (multiplies the scheduled LR, default 1), "weight_decay": float (default train.weight_decay)}``.
        Together the groups must hold every trainable parameter except :meth:`aux_param_groups`'."""
        return None

    def aux_param_groups(self, model: nn.Module) -> list[dict[str, Any]] | None:
        """Parameter groups of a second AdamW optimizer (e.g. a VAE discriminator living inside the
        model), same keys as :meth:`param_groups`, or None for none. Its parameters are left out of
        the main optimizer and trained on :meth:`aux_loss`: each step, after the main optimizer
        step, the loop runs ``aux_loss`` on the same micro-batches, clips and steps this optimizer.
        Gradients of the main loss on these parameters (and of the aux loss on the others) are
        discarded. Its state is checkpointed and resumed like the main optimizer's. Single
        process only (DDP would need ``find_unused_parameters``)."""
        return None

    def aux_loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Scalar losses for the second optimizer (needs :meth:`aux_param_groups`); must contain
        ``"loss"``; entries are logged as ``aux/<name>``."""
        raise TypeError(f"{type(self).__name__} declares aux_param_groups but does not override aux_loss")

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
