"""Batches of prepared sequences: padded per batch from the ragged arrays, never one-hot here."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from grammar_ae.data.prepare import PreparedData


class SequenceBatchSource:
    """Items ``indices`` of a prepared data set as (B, length) int64 batches.

    ``representation`` "grammar" yields rule indices padded with the padding rule,
    "character" yields alphabet indices padded with the padding character.
    """

    def __init__(self, data: PreparedData, indices: np.ndarray, representation: str, length: int, padding_rule: int):
        self.data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.representation = representation
        self.length = length
        self.padding_rule = padding_rule

    def __len__(self) -> int:
        return len(self.indices)

    def strings(self) -> list[str]:
        return [self.data.strings[i] for i in self.indices]

    def batch(self, items: np.ndarray) -> Tensor:
        if self.representation == "grammar":
            padded = self.data.padded_sequences(items, self.length, self.padding_rule)
        else:
            padded = self.data.padded_characters(items, self.length)
        return torch.from_numpy(padded)

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterator[Tensor]:
        order = self.indices
        if shuffle:
            order = order[torch.randperm(len(order), generator=generator).numpy()]
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])


def split_indices(n: int, seed: int, validation_fraction: float = 0.1, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of ``range(n)`` (a random subset of ``limit`` if given), split train/validation."""
    order = np.random.default_rng(seed).permutation(n)
    if limit is not None:
        order = order[:limit]
    n_validation = max(1, int(round(len(order) * validation_fraction)))
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])
