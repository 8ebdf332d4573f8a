"""Rule sequences to strings for a whole batch at once, without a loop over steps.

A rule ``lhs -> s0 N1 s1 N2 ... Nn sn`` (``s`` = runs of terminals, possibly empty) emits
``s0`` when it is applied, and ``s_i`` (i >= 1) once ``N_i``'s subtree is complete: at the
next step whose stack pointer (before the pop) is at or below ``N_{i+1}``'s position, or
for ``sn`` the position under the rule's own symbol. In a derivation the pointer path only
depends on the rules (each changes it by its push count minus one), so it is one cumulative
sum, and "the next step at or below q" is found for every segment at once by binary
lifting over range minima. Sorting the segments by (sequence, emission step, later
attachment first, ``s0`` last) then gives every string with one join per sequence.

Sequences are expected to come from the masked decoder (leftmost derivations); sequences
marked valid whose pointer path is not one of a finished derivation raise SequenceError.
"""

from __future__ import annotations

import numpy as np
import torch

from grammar_ae.decoding.tables import DecodingTables
from grammar_ae.errors import SequenceError
from grammar_ae.grammar.cfg import Grammar

_CHUNK = 2048  # sequences replayed together (bounds the memory of the range-minimum tables)


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
        self._segment_start = torch.tensor(starts[:-1])  # (R,) CSR over the rules' non-empty runs
        self._segment_count = torch.tensor(starts[1:]) - self._segment_start
        self._max_segments = int(self._segment_count.max())
        self._segment_slot = torch.tensor(slots, dtype=torch.long)  # i of s_i
        self._segment_text = torch.tensor(text_ids, dtype=torch.long)
        self._nonterminals = torch.tensor(nonterminals)  # (R,) n
        self._push_delta = torch.from_numpy(tables.push_delta).to(torch.int32)
        self._texts = np.array(list(texts), dtype=object)

    def strings(self, rules: torch.Tensor, valid: torch.Tensor) -> list[str | None]:
        """The string of each sequence where ``valid``, else None."""
        g = self.grammar
        if rules.dim() != 2 or tuple(valid.shape) != tuple(rules.shape[:1]):
            raise SequenceError(
                f"decoded rules {tuple(rules.shape)} and valid {tuple(valid.shape)}: "
                "expected (batch, steps) and (batch,)"
            )
        rules = rules.detach().to("cpu", torch.long)
        chosen = torch.nonzero(valid.detach().to("cpu", torch.bool)).view(-1)
        if rules.numel() and (rules.min() < 0 or rules.max() >= g.num_rules):
            raise SequenceError(f"decoded rules: indices outside 0..{g.num_rules - 1}")
        out: list[str | None] = [None] * len(rules)
        for first in range(0, len(chosen), _CHUNK):
            indices = chosen[first : first + _CHUNK]
            for index, text in zip(indices.tolist(), self._replay(rules.index_select(0, indices))):
                out[index] = text
        return out

    def _replay(self, rules: torch.Tensor) -> list[str]:
        count, steps = rules.shape
        flat_rules = rules.reshape(-1)
        # pointer before each step (position of the popped entry; 0 = derivation over)
        delta = self._push_delta.index_select(0, flat_rules).view(count, steps)
        after = 1 + delta.cumsum(1, dtype=torch.int32)
        before = torch.cat([torch.ones((count, 1), dtype=torch.int32), after[:, :-1]], dim=1)
        self._check_pointer_path(rules, before, after)

        # every non-empty run of every applied rule: sequence, step, slot i, text
        per_step = self._segment_count.index_select(0, flat_rules)
        found = [torch.nonzero(per_step > k).view(-1) for k in range(self._max_segments)]
        entry = torch.cat(found)
        segment = self._segment_start.index_select(0, flat_rules.index_select(0, entry)) + torch.cat(
            [torch.full_like(f, k) for k, f in enumerate(found)]
        )
        slot = self._segment_slot.index_select(0, segment)
        step = entry % steps
        sequence = entry // steps

        emitted = step.clone()  # s0: now; later runs once their entry is popped
        rank = torch.full_like(step, steps + 1)  # among runs emitted at one step, s0 goes last
        later = torch.nonzero(slot > 0).view(-1)
        if len(later):
            at = entry.index_select(0, later)
            n = self._nonterminals.index_select(0, flat_rules.index_select(0, at))
            waits_for = before.view(-1).index_select(0, at) - 1 + n - slot.index_select(0, later)
            emitted[later] = _next_at_or_below(before, sequence.index_select(0, later), step.index_select(0, later) + 1, waits_for)
            rank[later] = steps - step.index_select(0, later)
        key = (sequence * (steps + 1) + emitted) * (steps + 2) + rank
        order = torch.argsort(key)
        pieces = self._texts[self._segment_text.index_select(0, segment.index_select(0, order)).numpy()].tolist()
        ends = torch.bincount(sequence, minlength=count).cumsum(0).tolist()
        return ["".join(pieces[a:b]) for a, b in zip([0, *ends[:-1]], ends)]

    def _check_pointer_path(self, rules, before, after) -> None:
        padding = rules == self.tables.padding_rule
        broken = (after[:, -1] != 0) | ((before == 0) != padding).any(1)
        if bool(broken.any()):
            raise SequenceError(
                f"{int(broken.sum())} sequence(s) marked valid are not finished derivations "
                f"of the {self.grammar.name} grammar"
            )


def _next_at_or_below(path: torch.Tensor, sequence, start, level) -> torch.Tensor:
    """Per query, the first step >= start whose ``path`` value is <= level (else the length).

    Binary lifting over range minima: ``minima[j][b * width + p]`` is the least value in
    ``path[b, p : p + 2**j]``; each row is padded with zeros, so a query stops at the end.
    """
    count, steps = path.shape
    jumps = max(steps.bit_length() - 1, 0)
    padded = torch.cat([path, path.new_zeros((count, 1 << jumps))], dim=1)
    width = padded.shape[1]
    minima = [padded.view(-1)]
    for j in range(jumps):
        shorter = minima[-1]
        minima.append(torch.minimum(shorter[: -(1 << j)], shorter[1 << j :]))
    row = sequence * width
    position = start.clone()
    level = level.to(path.dtype)
    for j in range(jumps, -1, -1):
        position += (minima[j].index_select(0, row + position) > level).long() << j
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
