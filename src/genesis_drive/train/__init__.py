"""Training engine: a generic loop (``loop.train``) driving task objects (``task.Task``).

Single process, torchrun DDP or FSDP2; bf16 autocast; gradient accumulation, clipping and
checkpointing; LR warmup + schedule; EMA; atomic safetensors checkpoints with exact resume;
metrics.jsonl + TensorBoard; preview images. See docs/training.md.
"""

from __future__ import annotations

from .checkpoint import latest_checkpoint, load_weights, read_checkpoint
from .config import TrainConfig, lr_at
from .distributed import DistEnv, init_distributed
from .ema import EMA
from .loop import TrainResult, train
from .task import Task, TaskDef

__all__ = [
    "TrainConfig",
    "lr_at",
    "Task",
    "TaskDef",
    "train",
    "TrainResult",
    "EMA",
    "DistEnv",
    "init_distributed",
    "latest_checkpoint",
    "load_weights",
    "read_checkpoint",
]
