"""Data-parallel training under ``torchrun``: the process group, the device, the batch shards.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with more than one process
the trainer joins the group (NCCL on CUDA, gloo on the CPU), wraps the model in
``DistributedDataParallel`` and gives every process a contiguous slice of each global batch,
so ``batch_size`` stays the global batch and every item is seen once per epoch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from grammar_ae.data.tensors import Batch
from grammar_ae.errors import ConfigError, TrainingError
from grammar_ae.utils import distributed


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the data-parallel group (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: Batch) -> Batch:
        """This process's contiguous slice of a global batch (a Tensor or a tuple of them)."""
        if not self.enabled:
            return batch
        if isinstance(batch, (tuple, list)):
            return tuple(self.shard(part) for part in batch)
        size = len(batch)
        return batch[self.rank * size // self.world_size : (self.rank + 1) * size // self.world_size]

    def any(self, flag: bool) -> bool:
        """True if ``flag`` is true in any process (every process must call it)."""
        if not self.enabled:
            return flag
        return bool(distributed.sum_over_processes(torch.tensor([float(flag)]))[0] > 0)

    def least_positive(self, value: torch.Tensor) -> torch.Tensor:
        """The smallest non-negative entry of ``value`` over the processes (-1 where none is)."""
        large = torch.where(value < 0, torch.full_like(value, float("inf")), value)
        dist.all_reduce(large, op=dist.ReduceOp.MIN)
        return torch.where(torch.isinf(large), torch.full_like(value, -1.0), large)

    @contextmanager
    def failures_as_errors(self) -> Iterator[None]:
        """A collective that fails because another process died or left becomes a one-line
        TrainingError in every surviving process."""
        try:
            yield
        except RuntimeError as error:
            if not self.enabled or not _is_collective_failure(error):
                raise
            detail = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[0]).split(". ")[0][:120]
            raise TrainingError(
                f"process {self.rank} of {self.world_size}: another data-parallel process failed or left ({detail}); "
                "the last checkpoint is kept: resume with --resume"
            ) from None

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def _is_collective_failure(error: RuntimeError) -> bool:
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error)
    return any(word in text for word in ("Gloo", "gloo", "NCCL", "Connection closed", "Connection reset", "c10d"))


def join_process_group(device_type: str) -> ProcessGroup:
    """The group ``torchrun`` describes in the environment, joined; alone without it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessGroup()
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    except (KeyError, ValueError):
        raise ConfigError("WORLD_SIZE is set but RANK is not: start data-parallel training with torchrun") from None
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return ProcessGroup(rank=rank, world_size=world_size, local_rank=local_rank)


def leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
