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


class BucketedBatchSource:
    """Items ``indices`` of ragged token sequences, batched with others of similar length.

    Each batch is padded (with ``padding``) to its own longest item only, so almost no step is
    spent on padding. Shuffled passes draw one permutation, keep the full batches of it, sort
    each pool of ``pool_batches`` batches by length, cut them into batches and shuffle the
    batches' order, all from ``generator``. Unshuffled passes go by length.
    """

    def __init__(self, flat: np.ndarray, offsets: np.ndarray, indices: np.ndarray, padding: int, pool_batches: int = 64):
        self.flat = flat
        self.offsets = offsets
        self.indices = np.asarray(indices, dtype=np.int64)
        self.padding = padding
        self.pool_batches = pool_batches
        self.lengths = (offsets[self.indices + 1] - offsets[self.indices]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def batch_order(self, batch_size: int, shuffle: bool, generator: torch.Generator) -> list[np.ndarray]:
        """Positions in ``indices`` of every batch, in the order they are yielded."""
        if not shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        order = torch.randperm(len(self), generator=generator).numpy()
        order = order[: len(order) // batch_size * batch_size]
        pool = batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool):
            part = order[start : start + pool]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffled]

    def batch(self, positions: np.ndarray) -> Tensor:
        return pad_ragged(self.flat, self.offsets, self.indices[positions], self.padding)

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterator[Tensor]:
        for positions in self.batch_order(batch_size, shuffle, generator):
            yield self.batch(positions)


def pad_ragged(flat: np.ndarray, offsets: np.ndarray, items: np.ndarray, fill: int) -> Tensor:
    """(B, longest) int64 rows of the ragged ``items``, padded with ``fill``."""
    starts = offsets[items]
    lengths = offsets[items + 1] - starts
    steps = np.arange(max(int(lengths.max(initial=0)), 1))
    inside = steps[None, :] < lengths[:, None]
    out = np.full((len(items), len(steps)), fill, dtype=np.int64)
    out[inside] = flat[(starts[:, None] + steps[None, :])[inside]]
    return torch.from_numpy(out)
