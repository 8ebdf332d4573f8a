"""The data contract of the trainer: sources that yield compact batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch

from grammar_ae.data.tensors import Batch


@runtime_checkable
class BatchSource(Protocol):
    """A data set that yields batches (a Tensor or a tuple of Tensors, kept compact).

    ``batches`` must draw all its randomness from ``generator`` so that runs are
    reproducible and resumable; the model's ``inputs()`` turns a batch into network input.
    """

    def __len__(self) -> int:
        """Number of items."""

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterator[Any]:
        """Yield the items in batches of ``batch_size`` (the last one may be smaller)."""


def batch_length(batch: Batch) -> int:
    """Number of items in a batch."""
    return len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move a Tensor or a tuple/list of Tensors to ``device``."""
    if isinstance(batch, (tuple, list)):
        return tuple(to_device(part, device) for part in batch)
    return batch.to(device, non_blocking=True)
