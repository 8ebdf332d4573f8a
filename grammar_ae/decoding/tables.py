"""Grammar tables for masked decoding and string replay, as plain integer arrays.

Stack convention shared by the decoder and the replay: position 0 of every stack holds the
padding symbol (``Nothing``) and the pointer indexes the top entry, so an empty derivation
stack is "pointer 0". The padding rule pops ``Nothing`` and pushes it back, so the pointer
never goes below 0 and every step pops exactly one entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grammar_ae.grammar.cfg import Grammar, live_rules


@dataclass(frozen=True)
class DecodingTables:
    """Integer tables of one grammar (numpy; the decoder copies them to its device)."""

    start_symbol: int
    padding_symbol: int
    padding_rule: int
    symbol_rules: np.ndarray  # (S, M) live rules per symbol, ascending, padded with the first
    live_slots: np.ndarray  # (S, M) True where symbol_rules holds a live rule, not padding
    push: np.ndarray  # (R, K) right-hand non-terminals in reverse, padded with the padding symbol
    push_delta: np.ndarray  # (R,) pointer change: symbols pushed minus the one popped

    @property
    def max_push(self) -> int:
        return self.push.shape[1]

    def stack_depth(self, steps: int) -> int:
        """Positions a stack needs over ``steps`` steps (each step grows it by at most K - 1)."""
        return 1 + steps * max(self.max_push - 1, 0) + self.max_push

    @classmethod
    def from_grammar(cls, grammar: Grammar) -> DecodingTables:
        return cls.from_productions(
            lhs=grammar.rule_lhs,
            rhs_nonterminals=grammar.rhs_nonterminals,
            live=live_rules(grammar),
            start_symbol=grammar.symbol_index[grammar.start],
            padding_rule=grammar.padding_rule,
        )

    @classmethod
    def from_productions(
        cls,
        lhs: np.ndarray,
        rhs_nonterminals: Sequence[tuple[int, ...]],
        live: np.ndarray,
        start_symbol: int,
        padding_rule: int,
    ) -> DecodingTables:
        """Tables of any production list: rules, folded rules or a token grammar.

        ``lhs[p]`` is production p's left-hand symbol, ``rhs_nonterminals[p]`` the symbols it
        pushes (left to right), ``live[p]`` whether a decoder may pick it; ``padding_rule``
        pops the padding symbol and pushes it back.
        """
        lhs = np.asarray(lhs, dtype=np.int64)
        count, symbols = len(lhs), int(lhs.max()) + 1
        per_symbol = [np.flatnonzero((lhs == s) & live) for s in range(symbols)]
        width = max(len(rules) for rules in per_symbol)
        symbol_rules = np.full((symbols, width), padding_rule, dtype=np.int64)
        live_slots = np.zeros(symbol_rules.shape, dtype=bool)
        for symbol, rules in enumerate(per_symbol):
            if len(rules):  # a symbol without live rules is never on a stack
                symbol_rules[symbol] = rules[0]
                symbol_rules[symbol, : len(rules)] = rules
                live_slots[symbol, : len(rules)] = True

        padding_symbol = int(lhs[padding_rule])
        pushed = [tuple(reversed(rhs)) for rhs in rhs_nonterminals]
        pushed[padding_rule] = (padding_symbol,)
        push = np.full((count, max(len(p) for p in pushed)), padding_symbol, dtype=np.int64)
        for rule, pushed_symbols in enumerate(pushed):
            push[rule, : len(pushed_symbols)] = pushed_symbols
        return cls(
            start_symbol=start_symbol,
            padding_symbol=padding_symbol,
            padding_rule=padding_rule,
            symbol_rules=symbol_rules,
            live_slots=live_slots,
            push=push,
            push_delta=np.array([len(p) - 1 for p in pushed], dtype=np.int64),
        )
