"""Unit-chain folding: one decision per production that does more than rename a symbol.

A unit production ``A -> B`` (a single non-terminal, no terminals) carries no choice but
which symbol comes next. In a leftmost derivation the ``B`` it pushes is expanded at the
very next step, so a run of unit productions followed by one other production can be taken
as one step. A *folded production* (a token) is such a run: ``A -> B -> ... -> rhs``. Its
left-hand side is ``A`` and it pushes the right-hand non-terminals of its last production.

Folding is exact: a leftmost derivation splits into folded tokens in exactly one way (cut
after every production that is not a unit production), and the tokens expand back to the
same rules. On the SMILES grammar it halves the number of decisions per molecule (an atom
like ``C`` is one token from ``chain`` instead of four rules). Rule sequences stay the
interchange format; tokens are what an autoregressive decoder predicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from grammar_ae.errors import GrammarError, SequenceError
from grammar_ae.grammar.cfg import Grammar, live_rules


@dataclass(frozen=True)
class FoldedGrammar:
    """The folded productions of a grammar.

    ``paths[t]`` is the rule run of token ``t`` (unit rules first, one other rule last);
    the padding rule is a token of its own, the last one.
    """

    grammar: Grammar
    paths: tuple[tuple[int, ...], ...]

    @classmethod
    def from_grammar(cls, grammar: Grammar) -> FoldedGrammar:
        live = live_rules(grammar)
        unit = unit_rules(grammar)
        by_symbol: dict[int, list[int]] = {}
        for rule in range(grammar.num_rules):
            if live[rule] and rule != grammar.padding_rule:
                by_symbol.setdefault(int(grammar.rule_lhs[rule]), []).append(rule)

        paths: list[tuple[int, ...]] = []

        def walk(symbol: int, prefix: tuple[int, ...], seen: frozenset[int]) -> None:
            for rule in by_symbol.get(symbol, []):
                if unit[rule]:
                    (target,) = grammar.rhs_nonterminals[rule]
                    if target in seen:
                        raise GrammarError(f"grammar {grammar.name}: a cycle of unit productions through {grammar.rules[rule]}")
                    walk(target, prefix + (rule,), seen | {target})
                else:
                    paths.append(prefix + (rule,))

        for symbol in range(len(grammar.lhs_symbols)):
            walk(symbol, (), frozenset({symbol}))
        paths.append((grammar.padding_rule,))
        return cls(grammar, tuple(paths))

    # -- tables -------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return len(self.paths)

    @property
    def padding_token(self) -> int:
        return self.num_tokens - 1

    @cached_property
    def token_lhs(self) -> np.ndarray:
        """(M,) the left-hand symbol of each token (its first rule's)."""
        return np.array([self.grammar.rule_lhs[path[0]] for path in self.paths], dtype=np.int64)

    @cached_property
    def rhs_nonterminals(self) -> tuple[tuple[int, ...], ...]:
        """Per token, the non-terminals its last rule pushes, left to right."""
        return tuple(self.grammar.rhs_nonterminals[path[-1]] for path in self.paths)

    @cached_property
    def max_path(self) -> int:
        return max(len(path) for path in self.paths)

    @cached_property
    def _path_table(self) -> np.ndarray:
        """(M, max_path) rules of each token, padded with -1."""
        table = np.full((self.num_tokens, self.max_path), -1, dtype=np.int64)
        for token, path in enumerate(self.paths):
            table[token, : len(path)] = path
        return table

    @cached_property
    def _path_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted codes of the token paths (base R+1 numbers) and the token of each."""
        codes = np.array([_path_code(path, self.grammar.num_rules) for path in self.paths], dtype=np.int64)
        order = np.argsort(codes)
        return codes[order], order

    # -- conversions --------------------------------------------------------------------
    def fold(self, rules: np.ndarray, offsets: np.ndarray, chunk: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
        """Ragged rule sequences (flat, offsets) to ragged token sequences (flat int16, offsets).

        Padding rules inside the sequences are dropped. Raises SequenceError for a sequence
        that ends inside a unit chain or uses a run no token covers. Works on ``chunk``
        sequences at a time, so memory stays small for ZINC-250k.
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        parts, lengths = [], []
        for first in range(0, len(offsets) - 1, chunk):
            last = min(first + chunk, len(offsets) - 1)
            local = offsets[first : last + 1] - offsets[first]
            tokens, token_offsets = self._fold_chunk(np.asarray(rules[offsets[first] : offsets[last]]), local)
            parts.append(tokens)
            lengths.append(np.diff(token_offsets))
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        token_offsets = np.zeros(len(offsets), dtype=np.int64)
        if lengths:
            np.cumsum(np.concatenate(lengths), out=token_offsets[1:])
        return flat, token_offsets

    def _fold_chunk(self, rules: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rules = rules.astype(np.int64)
        keep = rules != self.grammar.padding_rule
        sequence_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))[keep]
        rules = rules[keep]
        if len(rules) == 0:
            return np.zeros(0, np.int16), np.zeros(len(offsets), np.int64)
        is_end = ~unit_rules(self.grammar)[rules]
        last_of_sequence = np.r_[sequence_of[1:] != sequence_of[:-1], True]
        if (last_of_sequence & ~is_end).any():
            raise SequenceError("a rule sequence ends inside a chain of unit productions")
        segment = np.r_[0, np.cumsum(is_end)[:-1]]  # the token index of every rule
        count = int(segment[-1]) + 1
        position = np.arange(len(rules)) - np.r_[0, np.flatnonzero(np.diff(segment)) + 1][segment]
        if position.max() >= self.max_path:
            raise SequenceError(f"a chain of {position.max() + 1} rules is longer than any folded production")
        base = self.grammar.num_rules + 1  # codes below 2**53 stay exact as float weights
        codes = np.bincount(segment, weights=(rules + 1) * base**position, minlength=count).astype(np.int64)
        known, tokens_of_known = self._path_codes
        found = np.searchsorted(known, codes).clip(max=len(known) - 1)
        if (known[found] != codes).any():
            raise SequenceError("a rule sequence uses a chain of unit productions no folded production covers")
        tokens = tokens_of_known[found].astype(np.int16)
        token_sequence = sequence_of[np.flatnonzero(is_end)]
        token_offsets = np.zeros(len(offsets), dtype=np.int64)
        np.cumsum(np.bincount(token_sequence, minlength=len(offsets) - 1), out=token_offsets[1:])
        return tokens, token_offsets

    def unfold(self, tokens: np.ndarray) -> np.ndarray:
        """(B, T) token indices (padding token after the end) to (B, max_length) rules,
        padded with the padding rule; a derivation longer than ``max_length`` rules is cut."""
        tokens = np.asarray(tokens, dtype=np.int64)
        batch = len(tokens)
        rules = np.where(tokens[..., None] == self.padding_token, -1, self._path_table[tokens]).reshape(batch, -1)
        real = rules >= 0
        length = self.grammar.max_length
        out = np.full((batch, length), self.grammar.padding_rule, dtype=np.int64)
        position = np.cumsum(real, axis=1) - 1
        fits = real & (position < length)
        rows = np.broadcast_to(np.arange(batch)[:, None], rules.shape)
        out[rows[fits], position[fits]] = rules[fits]
        return out

    def rule_counts(self, tokens: np.ndarray) -> np.ndarray:
        """(B,) rules that each row of (B, T) tokens expands to (padding tokens count 0)."""
        lengths = np.array([len(p) for p in self.paths[:-1]] + [0], dtype=np.int64)
        return lengths[np.asarray(tokens, dtype=np.int64)].sum(axis=1)


def unit_rules(grammar: Grammar) -> np.ndarray:
    """(R,) True for ``A -> B`` rules: one non-terminal on the right, nothing else."""
    return np.array(
        [
            rule.index != grammar.padding_rule and len(rule.rhs) == 1 and not rule.is_terminal[0]
            for rule in grammar.rules
        ],
        dtype=bool,
    )


def _path_code(path: tuple[int, ...], num_rules: int) -> int:
    base = num_rules + 1
    return sum((rule + 1) * base**position for position, rule in enumerate(path))
