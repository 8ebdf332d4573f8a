"""The data contract of the trainer: sources that yield compact batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from grammar_ae.errors import DataError

Batch = Tensor | tuple[Tensor, ...]


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


class TensorBatchSource:
    """Batches of rows of one or more tensors with the same first dimension.

    Shuffling draws one permutation per pass and gathers each batch from it, so only a
    batch is ever copied. One tensor yields Tensor batches, several yield tuples.
    """

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise DataError("TensorBatchSource needs at least one tensor")
        sizes = {len(tensor) for tensor in tensors}
        if len(sizes) != 1:
            raise DataError(f"TensorBatchSource: tensors have different numbers of rows {sorted(sizes)}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(len(self), generator=generator) if shuffle else None
        for start in range(0, len(self), batch_size):
            rows = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
            parts = tuple(tensor[rows] for tensor in self.tensors)
            yield parts[0] if len(parts) == 1 else parts


def batch_length(batch: Batch) -> int:
    """Number of items in a batch."""
    return len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move a Tensor or a tuple/list of Tensors to ``device``."""
    if isinstance(batch, (tuple, list)):
        return tuple(to_device(part, device) for part in batch)
    return batch.to(device, non_blocking=True)
