"""Running means of loss terms, kept on the device and read back only when asked."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from grammar_ae.errors import TrainingError
from grammar_ae.training.distributed import ProcessGroup
from grammar_ae.utils import distributed


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

    def state_dict(self) -> dict:
        """What a mid-epoch checkpoint keeps of the running means."""
        return {
            "names": list(self.names),
            "items": self.items,
            "sums": None if self._sums is None else self._sums.cpu(),
            "first_bad": self._first_bad.cpu(),
            "bad_terms": None if self._bad_terms is None else self._bad_terms.cpu(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.names, self.items = list(state["names"]), int(state["items"])
        self._first_bad = state["first_bad"].to(self.device)
        if state["sums"] is not None:
            self._sums = state["sums"].to(self.device)
            self._bad_terms = state["bad_terms"].to(self.device)

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

    def snapshot(self, group: ProcessGroup | None = None) -> Snapshot:
        """The means so far; with a process group, over the batches of every process (every
        process must call it then)."""
        if self._sums is None:
            return Snapshot({}, None, [])
        sums, items = self._sums, torch.tensor([float(self.items)], dtype=torch.float64, device=self.device)
        first_bad, bad_terms = self._first_bad.double().reshape(1), self._bad_terms.double()
        if group is not None and group.enabled:
            sums, items, bad_terms = (distributed.sum_over_processes(t) for t in (sums, items, bad_terms))
            first_bad = group.least_positive(first_bad)
        packed = torch.cat([sums / items, first_bad, bad_terms])
        values = packed.tolist()
        count = len(self.names)
        first_bad = int(values[count])
        return Snapshot(
            means=dict(zip(self.names, values[:count])),
            first_bad_batch=None if first_bad < 0 else first_bad,
            bad_terms=[name for name, bad in zip(self.names, values[count + 1 :]) if bad],
        )
