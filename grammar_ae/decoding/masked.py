"""Masked grammar decoding, vectorized over the batch: logits (B, T, R) to rule sequences.

Every sequence keeps a stack of left-hand symbols in one (depth, B) tensor with a pointer
per sequence (see ``tables.py`` for the convention). At each step the live rules of each
sequence's top symbol (rules that can finish: one naming a symbol without rules never can)
are gathered from that step's logits (a few per symbol, not all R),
one is picked (argmax, or Gumbel-max when sampling) and its right-hand non-terminals are
pushed in reverse. Only the loop over the steps is in Python. A sequence whose stack is not
empty after the last step is invalid; its rules are kept as decoded (a partial
derivation), never completed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from grammar_ae.decoding.strings import StringReplay
from grammar_ae.decoding.tables import DecodingTables
from grammar_ae.errors import ConfigError, SequenceError
from grammar_ae.grammar.cfg import Grammar

_EXIT_CHECK_EVERY = 16  # steps between checks whether every sequence has finished
# On a CPU, sequences are decoded in chunks whose per-step tensors (chunk x M candidates) stay
# below torch's parallelization grain (32,768 elements): a parallel region around such small
# kernels costs more than it saves (several times more on a busy machine), and a chunk's reads
# of one step stay in cache.
_CPU_CHUNK_ELEMENTS = 24_576


@dataclass(frozen=True)
class DecodedRules:
    """Decoded rule indices (B, T) and whether each derivation finished within T steps (B,).

    After a derivation ends, its steps hold the padding rule; an unfinished one keeps the
    rules as decoded.
    """

    rules: torch.Tensor
    valid: torch.Tensor


@dataclass(frozen=True)
class _DeviceTables:
    symbol_rules: torch.Tensor  # (S, M) live rules per symbol, padded with the symbol's first one
    slot_penalty: torch.Tensor  # (S, M) 0 for a live rule, -inf for padding (used when sampling)
    push: torch.Tensor  # (R, K + 1): the reversed right-hand non-terminals, then the pointer change
    first_positions: torch.Tensor  # (K, 1): 1 .. K, where the first push writes


class MaskedDecoder:
    """Turns decoder logits into grammatical rule sequences and those into strings."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        self.tables = DecodingTables.from_grammar(grammar)
        self._replay = StringReplay(grammar, self.tables)
        self._on_device: dict[torch.device, _DeviceTables] = {}

    def decode(
        self,
        logits: torch.Tensor,
        sample: bool = False,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> DecodedRules:
        """Rules (B, T) picked among the live rules of each step's popped symbol, and validity (B,).

        argmax by default (ties: the lowest rule index); ``sample`` draws each rule from the
        softmax of its logits / ``temperature`` by Gumbel-max, with noise from ``generator``
        (on any device). Logits of any float dtype, on any device; NaN among the logits a
        step chooses from raises SequenceError.
        """
        self._check(logits, sample, generator, temperature)
        logits = logits.detach()
        batch, steps, _ = logits.shape
        tables = self._tables_on(logits.device)
        chunk = max(batch, 1)
        if logits.device.type == "cpu":
            chunk = max(1, _CPU_CHUNK_ELEMENTS // tables.symbol_rules.shape[1])
        rules = torch.empty((batch, steps), dtype=torch.long, device=logits.device)
        finished = torch.empty(batch, dtype=torch.bool, device=logits.device)
        saw_nan = torch.zeros((), dtype=torch.bool, device=logits.device)
        with torch.no_grad():
            for first in range(0, batch, chunk):
                part = slice(first, first + chunk)
                by_step, finished[part], chunk_nan = self._decode_chunk(
                    logits[part], tables, sample, generator, temperature
                )
                rules[part] = by_step.t()
                saw_nan |= chunk_nan
        if bool(saw_nan):
            raise SequenceError(f"logits of shape {tuple(logits.shape)} contain NaN; cannot decode them")
        return DecodedRules(rules=rules, valid=finished)

    def _decode_chunk(self, logits, tables, sample, generator, temperature):
        """For one chunk of sequences: rules (T, B), whether each stack ended empty (B,) and
        whether a NaN was among the candidates of some step (argmax picks a NaN if there is one).
        """
        t = self.tables
        batch, steps, _ = logits.shape
        device = logits.device
        width = t.max_push
        # (depth, B): the sequences' pointers stay close, so each step touches a few rows
        stack = torch.empty((t.stack_depth(steps), batch), dtype=torch.long, device=device)
        stack[0] = t.padding_symbol
        stack[1] = t.start_symbol
        # the K positions a push writes to; the first is the stack pointer (the top entry)
        positions = tables.first_positions.expand(width, batch).contiguous()
        pointer = positions[:1]
        by_step = torch.empty((steps, batch), dtype=torch.long, device=device)
        slot_penalty = tables.slot_penalty.to(logits.dtype)
        step_logits = logits.unbind(1)  # views made once: the loop below runs per step
        step_rules = by_step.view(steps, batch, 1).unbind(0)
        highest_chosen = torch.full((batch, 1), float("-inf"), dtype=logits.dtype, device=device)
        for step in range(steps):
            top = stack.gather(0, pointer).view(batch)
            candidates = tables.symbol_rules.index_select(0, top)
            scores = step_logits[step].gather(1, candidates)
            if sample:
                scores = _gumbel_perturb(scores, slot_penalty.index_select(0, top), generator, temperature)
            choice = scores.argmax(1, keepdim=True)  # not max(dim): it spawns threads for tiny inputs
            rule = torch.gather(candidates, 1, choice, out=step_rules[step])
            torch.maximum(highest_chosen, scores.gather(1, choice), out=highest_chosen)  # NaN sticks
            pushed = tables.push.index_select(0, rule.view(batch)).t()
            stack.scatter_(0, positions, pushed[:width])
            positions += pushed[width:]
            if step % _EXIT_CHECK_EVERY == _EXIT_CHECK_EVERY - 1 and not bool(pointer.count_nonzero()):
                by_step[step + 1 :] = t.padding_rule
                break
        return by_step, pointer.view(batch) == 0, highest_chosen.isnan().any()

    def to_strings(self, decoded: DecodedRules) -> list[str | None]:
        """The string of each valid sequence, None for an invalid one."""
        return self._replay.strings(decoded.rules, decoded.valid)

    def _tables_on(self, device: torch.device) -> _DeviceTables:
        if device not in self._on_device:
            t = self.tables
            penalty = np.where(t.live_slots, 0.0, -np.inf).astype(np.float32)
            push = np.concatenate([t.push, t.push_delta[:, None]], axis=1)
            self._on_device[device] = _DeviceTables(
                symbol_rules=torch.from_numpy(t.symbol_rules).to(device),
                slot_penalty=torch.from_numpy(penalty).to(device),
                push=torch.from_numpy(push).to(device),
                first_positions=torch.arange(1, 1 + t.max_push, device=device).unsqueeze(1),
            )
        return self._on_device[device]

    def _check(self, logits, sample, generator, temperature) -> None:
        g = self.grammar
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or not logits.is_floating_point():
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise SequenceError(f"logits {shape}: expected a float tensor (batch, steps, {g.num_rules})")
        _, steps, rules = logits.shape
        if rules != g.num_rules:
            raise SequenceError(
                f"logits {tuple(logits.shape)}: {rules} rules, the {g.name} grammar has {g.num_rules}"
            )
        if not 1 <= steps <= g.max_length:
            raise SequenceError(
                f"logits {tuple(logits.shape)}: {steps} steps, expected 1..{g.max_length} steps "
                f"(the {g.name} grammar's max length)"
            )
        if sample and not 0 < temperature < float("inf"):
            raise ConfigError(f"temperature {temperature}: must be positive and finite")


def _gumbel_perturb(scores, slot_penalty, generator, temperature) -> torch.Tensor:
    """Scores whose max samples softmax(scores / temperature) over the live slots.

    The noise is drawn on the generator's device (a CPU generator may drive CUDA logits).
    """
    finite = torch.finfo(scores.dtype).max
    scores = (scores / temperature).clamp_(-finite, finite)
    noise_device = generator.device if generator is not None else scores.device
    exponential = torch.empty(scores.shape, dtype=scores.dtype, device=noise_device)
    gumbel = exponential.exponential_(generator=generator).log_().neg_().to(scores.device)
    return scores.add_(gumbel).add_(slot_penalty)
