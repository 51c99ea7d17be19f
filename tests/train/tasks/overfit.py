"""Fit one batch with Adam and return the loss of every step (for "the loss falls" tests)."""

from __future__ import annotations

import torch
from torch import nn

from genesis_drive.train.task import Task


def overfit_losses(task: Task, model: nn.Module, batch: dict, steps: int, lr: float) -> list[float]:
    """The ``loss`` entry of ``task.loss`` at each of ``steps`` Adam steps on ``batch`` (before each step)."""
    opt = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for _ in range(steps):
        out = task.loss(model, batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses
