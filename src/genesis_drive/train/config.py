"""Settings of the generic training loop (every task's run config has a ``train: TrainConfig``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from ..errors import ConfigError

__all__ = ["TrainConfig", "RESUME_MAY_CHANGE", "lr_at"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, precision, parallelism and bookkeeping of one training run.

    ``batch_size`` is the *global* number of samples per optimizer step, summed over all
    processes and accumulation micro-steps; each process runs micro-batches of
    ``batch_size // (world_size * grad_accum)`` samples, so results do not depend on how many
    processes share the work.
    """

    steps: int = 1000                      # optimizer steps in total
    batch_size: int = 8                    # global samples per optimizer step
    grad_accum: int = 1                    # micro-steps per optimizer step (per process)
    lr: float = 2e-4                       # peak learning rate
    min_lr: float = 0.0                    # end of the cosine/linear decay
    warmup_steps: int = 0                  # linear warmup from 0 to lr
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0              # AdamW, applied to weights with ndim >= 2 only
    grad_clip: Optional[float] = 1.0       # max global L2 gradient norm; None = no clipping
    precision: Literal["fp32", "bf16"] = "bf16"   # bf16 = autocast (weights stay fp32)
    grad_checkpointing: bool = False       # recompute activations in backward (less memory)
    ema_decay: Optional[float] = 0.999     # None = no EMA weights
    seed: int = 0
    deterministic: bool = False            # torch.use_deterministic_algorithms
    parallel: Literal["ddp", "fsdp"] = "ddp"     # used when world_size > 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = 0                   # DataLoader worker processes per rank
    log_every: int = 10                    # steps between metrics.jsonl / TensorBoard rows
    ckpt_every: int = 500                  # steps between checkpoints (and one at the end)
    keep_last: int = 3                     # checkpoints kept on disk
    preview_every: int = 500               # steps between preview images; 0 = only at the end
    preview_samples: int = 4               # samples in the fixed preview batch
    eval_every: int = 0                    # steps between task.evaluate calls; 0 = never

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "log_every", "ckpt_every", "keep_last")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "num_workers", "preview_every", "preview_samples", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train.lr must be a positive finite number, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"train.min_lr must lie in [0, lr={self.lr}], got {self.min_lr}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must lie in (0, 1) or be none, got {self.ema_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train.grad_clip must be > 0 or none, got {self.grad_clip}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas must lie in [0, 1), got {self.betas}")

    def micro_batch(self, world_size: int) -> int:
        """Samples per forward pass on one process; ConfigError if the split is not exact."""
        per_step = world_size * self.grad_accum
        if self.batch_size % per_step:
            raise ConfigError(
                f"train.batch_size={self.batch_size} is not divisible by world_size ({world_size}) "
                f"x train.grad_accum ({self.grad_accum})"
            )
        return self.batch_size // per_step


#: Keys that may differ between a checkpoint's config and the config of a ``--resume`` run.
RESUME_MAY_CHANGE: frozenset[str] = frozenset(
    {
        "train.steps",
        "train.device",
        "train.num_workers",
        "train.log_every",
        "train.ckpt_every",
        "train.keep_last",
        "train.preview_every",
        "train.preview_samples",
        "train.eval_every",
    }
)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then the schedule.

    Warmup: ``lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``. Afterwards the decay
    runs from ``lr`` at ``warmup_steps`` to ``min_lr`` at ``steps`` ("cosine": half a cosine,
    "linear": a straight line, "constant": stays at ``lr``).
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "cosine":
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))
    return cfg.lr + (cfg.min_lr - cfg.lr) * frac
