"""Which samples each process sees at each step: seeded, sharded, resumable at any step.

Epoch ``e`` is a permutation of the dataset drawn from ``seed`` and ``e`` alone. Optimizer step
``s`` uses the global batch ``perm[b*G:(b+1)*G]`` (``G`` = global batch size, ``b`` = ``s``
modulo the batches per epoch; the incomplete tail of an epoch is dropped). Inside it, micro-step
``m`` of rank ``r`` takes the slice at ``(m * world_size + r) * micro``. So the union over ranks
and micro-steps is the same set of samples for any world size, and a run resumed at step ``s``
sees exactly the batches a straight run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from ..errors import DataError

__all__ = ["StepBatchSampler"]


class StepBatchSampler(Sampler[list[int]]):
    """Endless micro-batches of dataset indices for one rank, starting at optimizer step ``start_step``."""

    def __init__(
        self,
        dataset_len: int,
        *,
        global_batch: int,
        grad_accum: int,
        world_size: int,
        rank: int,
        seed: int,
        start_step: int = 0,
        shuffle: bool = True,
    ):
        if global_batch % (world_size * grad_accum):
            raise ValueError("global_batch must be divisible by world_size * grad_accum")
        if dataset_len < global_batch:
            raise DataError(
                f"the dataset has {dataset_len} samples, fewer than one global batch "
                f"(train.batch_size={global_batch})"
            )
        self.n = dataset_len
        self.global_batch = global_batch
        self.grad_accum = grad_accum
        self.world_size = world_size
        self.rank = rank
        self.micro = global_batch // (world_size * grad_accum)
        self.seed = seed
        self.start_step = start_step
        self.shuffle = shuffle
        self.batches_per_epoch = dataset_len // global_batch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def global_batch_indices(self, step: int) -> list[int]:
        """All samples of optimizer step ``step`` (every rank, every micro-step)."""
        epoch, b = divmod(step, self.batches_per_epoch)
        order = self.epoch_order(epoch)
        return order[b * self.global_batch : (b + 1) * self.global_batch].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        cached_epoch, order = -1, None
        while True:
            epoch, b = divmod(step, self.batches_per_epoch)
            if epoch != cached_epoch:
                cached_epoch, order = epoch, self.epoch_order(epoch)
            batch = order[b * self.global_batch : (b + 1) * self.global_batch]
            for m in range(self.grad_accum):
                off = (m * self.world_size + self.rank) * self.micro
                yield batch[off : off + self.micro].tolist()
            step += 1
