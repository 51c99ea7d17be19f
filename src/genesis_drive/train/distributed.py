"""Process group setup and model wrapping for torchrun (DDP or FSDP2; gloo on CPU, nccl on GPU).

A single process (plain ``genesis-drive train``) needs none of this: :func:`init_distributed`
returns a one-process :class:`DistEnv` and :func:`wrap_model` returns the model unchanged.
Under ``torchrun`` the launcher sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
they are read here, never written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

__all__ = [
    "DistEnv",
    "init_distributed",
    "shutdown_distributed",
    "wrap_model",
    "unwrap",
    "grad_sync",
    "all_reduce_sum",
    "broadcast_object",
    "gather_objects",
    "barrier",
    "shard_indices",
    "is_dtensor",
    "full_tensor",
    "reshard",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank among world_size processes, and its torch device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def _pick_device(preference: str, local_rank: int) -> torch.device:
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is visible to torch")
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                "pass --nproc_per_node <= the number of GPUs"
            )
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the torchrun process group if there is one; pick this process's device.

    ``device`` is "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu" or "cuda".
    The backend is nccl on GPU and gloo on CPU.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = _pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            dist.init_process_group("nccl", device_id=dev)
        else:
            dist.init_process_group("gloo")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def shutdown_distributed(synchronize: bool = True) -> None:
    """Leave the process group (no-op when there is none).

    With ``synchronize`` every rank first meets at a barrier, so that no rank tears its connections
    down while a peer still has a collective in flight (gloo then aborts the slower rank with
    "terminate called without an active exception"). Pass False on an error path, where a peer
    may never reach the barrier.
    """
    if dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, env: DistEnv, parallel: str, fsdp_units: Sequence[nn.Module] = ()) -> nn.Module:
    """Wrap ``model`` (already on ``env.device``) for data parallel training.

    "ddp": DistributedDataParallel (replicated weights, all-reduced gradients).
    "fsdp": FSDP2 ``fully_shard`` on each of ``fsdp_units`` and then on the root, which shards
    weights, gradients and optimizer state over the ranks. One process: the model unchanged.
    """
    if not env.distributed:
        return model
    if parallel == "ddp":
        ids = [env.device.index] if env.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for unit in fsdp_units:
            fully_shard(unit)
        fully_shard(model)
        return model
    raise ConfigError(f"train.parallel: expected 'ddp' or 'fsdp', got {parallel!r}")


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a DDP wrapper (FSDP2 shards in place, so it is the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@contextlib.contextmanager
def grad_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce inside this block when ``enabled`` is False (accumulation)."""
    if enabled:
        yield
        return
    if isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
        return
    setter = getattr(model, "set_requires_gradient_sync", None)  # FSDP2 module
    if setter is None:
        yield
        return
    setter(False)
    try:
        yield
    finally:
        setter(True)


def is_dtensor(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly sharded) DTensor; a collective call on every rank."""
    return t.full_tensor() if is_dtensor(t) else t


def reshard(model: nn.Module) -> None:
    """Return FSDP2 parameters to their sharded form (a forward under no_grad leaves the root's
    parameters gathered); a no-op for other models."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def all_reduce_sum(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum a tensor over ranks (in place, returned); unchanged on one process."""
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects only; control data, not weights)."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def shard_indices(n: int, env: DistEnv) -> tuple[list[int], list[float]]:
    """Split ``range(n)`` over ranks with equal counts per rank (for FSDP, whose forward is collective).

    Returns this rank's indices and weights; padding entries repeat index 0 with weight 0.
    """
    per_rank = -(-n // env.world_size) if n else 0
    idx, w = [], []
    for j in range(per_rank):
        i = j * env.world_size + env.rank
        idx.append(i if i < n else 0)
        w.append(1.0 if i < n else 0.0)
    return idx, w
