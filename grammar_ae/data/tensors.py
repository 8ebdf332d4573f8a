"""Batches of rows of in-memory tensors (the batch source of image sets and small tests)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from grammar_ae.errors import DataError

Batch = Tensor | tuple[Tensor, ...]


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
