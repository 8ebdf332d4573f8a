"""Rule sequences to strings for a whole batch at once, without a loop over steps.

A rule ``lhs -> s0 N1 s1 N2 ... Nn sn`` (``s`` = runs of terminals, possibly empty) emits
``s0`` when it is applied, and ``s_i`` (i >= 1) once ``N_i``'s subtree is complete: at the
next step whose stack pointer (before the pop) is at or below ``N_{i+1}``'s position, or
for ``sn`` the position under the rule's own symbol. In a derivation the pointer path only
depends on the rules (each changes it by its push count minus one), so it is one cumulative
sum, and "the next step at or below q" is found for every run at once by binary lifting
over range minima. Sorting the runs by (sequence, emission step, later attachment first,
``s0`` last) then gives every string with one join per sequence.

The work is in numpy: single-threaded array operations, which on a busy machine beat
torch's parallel kernels at these sizes. Sequences are expected to come from the masked
decoder (leftmost derivations); sequences marked valid whose pointer path is not one of a
finished derivation raise SequenceError.
"""

from __future__ import annotations

import numpy as np
import torch

from grammar_ae.decoding.tables import DecodingTables
from grammar_ae.errors import SequenceError
from grammar_ae.grammar.cfg import Grammar

_CHUNK = 128  # sequences replayed together: the range-minimum tables stay in cache


class StringReplay:
    """Replays decoded rule sequences of one grammar into their strings."""

    def __init__(self, grammar: Grammar, tables: DecodingTables):
        self.grammar = grammar
        self.tables = tables
        texts: dict[str, int] = {}
        starts, slots, text_ids, nonterminals = [0], [], [], []
        for rule in grammar.rules:
            runs = [] if rule.index == grammar.padding_rule else _terminal_runs(rule)
            for slot, run in enumerate(runs):
                if run:
                    slots.append(slot)
                    text_ids.append(texts.setdefault(run, len(texts)))
            starts.append(len(slots))
            nonterminals.append(max(len(runs) - 1, 0))
        # the rules' non-empty runs, rule by rule (CSR): slot i of s_i and text id
        self._run_start = np.array(starts[:-1], dtype=np.int64)
        self._run_count = np.diff(starts)
        self._run_slot = np.array(slots, dtype=np.int64)
        self._run_text = np.array(text_ids, dtype=np.int64)
        self._nonterminals = np.array(nonterminals, dtype=np.int64)  # n per rule
        self._push_delta = tables.push_delta.astype(np.int32)
        self._texts = np.array(list(texts), dtype=object)

    def strings(self, rules: torch.Tensor, valid: torch.Tensor) -> list[str | None]:
        """The string of each sequence where ``valid``, else None."""
        g = self.grammar
        if rules.dim() != 2 or tuple(valid.shape) != tuple(rules.shape[:1]):
            raise SequenceError(
                f"decoded rules {tuple(rules.shape)} and valid {tuple(valid.shape)}: "
                "expected (batch, steps) and (batch,)"
            )
        rules = rules.detach().to("cpu", torch.long).numpy()
        chosen = np.flatnonzero(valid.detach().to("cpu", torch.bool).numpy())
        if rules.size and (rules.min() < 0 or rules.max() >= g.num_rules):
            raise SequenceError(f"decoded rules: indices outside 0..{g.num_rules - 1}")
        out: list[str | None] = [None] * len(rules)
        for first in range(0, len(chosen), _CHUNK):
            indices = chosen[first : first + _CHUNK]
            for index, text in zip(indices.tolist(), self._replay(rules[indices])):
                out[index] = text
        return out

    def _replay(self, rules: np.ndarray) -> list[str]:
        count, steps = rules.shape
        flat_rules = rules.reshape(-1)
        # the pointer before each step: the position of the popped entry (0: derivation over)
        after = 1 + np.cumsum(self._push_delta[rules], axis=1, dtype=np.int32)
        before = np.concatenate([np.ones((count, 1), dtype=np.int32), after[:, :-1]], axis=1)
        self._check_pointer_path(rules, before, after)

        entry, run = self._runs(flat_rules)  # entry: sequence * steps + step
        sequence, step = np.divmod(entry, steps)
        emitted = step.copy()  # s0 is emitted when its rule is applied
        rank = np.full_like(step, steps + 1)  # and after the runs that were waiting
        later = np.flatnonzero(self._run_slot[run] > 0)
        if len(later):
            at = entry[later]
            waits_for = before.reshape(-1)[at] - 1 + self._nonterminals[flat_rules[at]] - self._run_slot[run[later]]
            emitted[later] = _next_at_or_below(before, sequence[later], step[later] + 1, waits_for)
            rank[later] = steps - step[later]  # attached later, emitted first
        order = np.argsort((sequence * (steps + 1) + emitted) * (steps + 2) + rank)
        pieces = self._texts[self._run_text[run[order]]].tolist()
        ends = np.cumsum(np.bincount(sequence, minlength=count)).tolist()
        return ["".join(pieces[a:b]) for a, b in zip([0, *ends[:-1]], ends)]

    def _runs(self, flat_rules: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For every non-empty run of every applied rule: its flat step index and run id."""
        per_step = self._run_count[flat_rules]
        found = [np.flatnonzero(per_step > k) for k in range(int(self._run_count.max(initial=0)))]
        entry = np.concatenate([np.zeros(0, dtype=np.int64), *found])
        kth = np.concatenate([np.zeros(0, dtype=np.int64), *(np.full_like(f, k) for k, f in enumerate(found))])
        return entry, self._run_start[flat_rules[entry]] + kth

    def _check_pointer_path(self, rules, before, after) -> None:
        broken = (after[:, -1] != 0) | ((before == 0) != (rules == self.tables.padding_rule)).any(axis=1)
        if broken.any():
            raise SequenceError(
                f"{int(broken.sum())} sequence(s) marked valid are not finished derivations "
                f"of the {self.grammar.name} grammar"
            )


def _next_at_or_below(path: np.ndarray, sequence, start, level) -> np.ndarray:
    """Per query, the first step >= start whose ``path`` value is <= level (else the length).

    Binary lifting over range minima: ``minima[j][b * width + p]`` is the least value in
    ``path[b, p : p + 2**j]``; each row is padded with zeros, so a query stops at the end.
    """
    count, steps = path.shape
    jumps = max(steps.bit_length() - 1, 0)
    padded = np.concatenate([path, np.zeros((count, 1 << jumps), dtype=path.dtype)], axis=1)
    width = padded.shape[1]
    minima = [padded.reshape(-1)]
    for j in range(jumps):
        shorter = minima[-1]
        minima.append(np.minimum(shorter[: -(1 << j)], shorter[1 << j :]))
    row = sequence * width
    position = start.copy()
    for j in range(jumps, -1, -1):
        position += (minima[j][row + position] > level).astype(np.int64) << j
    return position


def _terminal_runs(rule) -> list[str]:
    """The terminal strings before, between and after the non-terminals (n + 1 runs)."""
    runs = [""]
    for item, terminal in zip(rule.rhs, rule.is_terminal):
        if terminal:
            runs[-1] += item
        else:
            runs.append("")
    return runs
