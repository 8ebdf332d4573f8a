"""Running means of loss terms, kept on the device and read back only when asked."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from grammar_ae.errors import TrainingError


@dataclass
class Snapshot:
    """What one read-back of a ``TermMeans`` gives."""

    means: dict[str, float]
    first_bad_batch: int | None
    bad_terms: list[str]


class TermMeans:
    """Item-weighted means of the loss terms of many batches.

    ``add`` only queues device operations (no host synchronisation); it also remembers the
    first batch with a non-finite term and which terms those were. ``snapshot`` reads
    everything back in one transfer.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.names: list[str] = []
        self.items = 0
        self._sums: Tensor | None = None
        self._first_bad = torch.tensor(-1, device=device)
        self._bad_terms: Tensor | None = None

    def add(self, terms: dict[str, Tensor], items: int, batch_index: int) -> None:
        if self._sums is None:
            if "loss" not in terms:
                raise TrainingError(f"the model's loss() returned terms {sorted(terms)} without a 'loss' term")
            self.names = list(terms)
            self._sums = torch.zeros(len(self.names), dtype=torch.float64, device=self.device)
            self._bad_terms = torch.zeros(len(self.names), dtype=torch.bool, device=self.device)
        values = torch.stack([terms[name].detach().reshape(()).double() for name in self.names])
        self._sums += values * items
        self.items += items
        non_finite = ~torch.isfinite(values)
        first = non_finite.any() & (self._first_bad < 0)
        self._first_bad = torch.where(first, batch_index, self._first_bad)
        self._bad_terms = torch.where(first, non_finite, self._bad_terms)

    def snapshot(self) -> Snapshot:
        if self._sums is None:
            return Snapshot({}, None, [])
        packed = torch.cat([self._sums / self.items, self._first_bad.double().reshape(1), self._bad_terms.double()])
        values = packed.tolist()
        count = len(self.names)
        first_bad = int(values[count])
        return Snapshot(
            means=dict(zip(self.names, values[:count])),
            first_bad_batch=None if first_bad < 0 else first_bad,
            bad_terms=[name for name, bad in zip(self.names, values[count + 1 :]) if bad],
        )
