"""Grammar tables for masked decoding and string replay, as plain integer arrays.

Stack convention shared by the decoder and the replay: position 0 of every stack holds the
padding symbol (``Nothing``) and the pointer indexes the top entry, so an empty derivation
stack is "pointer 0". The padding rule pops ``Nothing`` and pushes it back, so the pointer
never goes below 0 and every step pops exactly one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grammar_ae.errors import GrammarError
from grammar_ae.grammar.cfg import Grammar


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
        live = live_rules(grammar)
        per_symbol = [np.flatnonzero(grammar.masks[s] & live) for s in range(len(grammar.lhs_symbols))]
        width = max(len(rules) for rules in per_symbol)
        symbol_rules = np.full((len(per_symbol), width), grammar.padding_rule, dtype=np.int64)
        live_slots = np.zeros(symbol_rules.shape, dtype=bool)
        for symbol, rules in enumerate(per_symbol):
            if len(rules):  # a symbol without live rules is never on a stack
                symbol_rules[symbol] = rules[0]
                symbol_rules[symbol, : len(rules)] = rules
                live_slots[symbol, : len(rules)] = True

        padding_symbol = int(grammar.rule_lhs[grammar.padding_rule])
        pushed = [tuple(reversed(rhs)) for rhs in grammar.rhs_nonterminals]
        pushed[grammar.padding_rule] = (padding_symbol,)
        push = np.full((grammar.num_rules, max(len(p) for p in pushed)), padding_symbol, dtype=np.int64)
        for rule, symbols in enumerate(pushed):
            push[rule, : len(symbols)] = symbols
        return cls(
            start_symbol=grammar.symbol_index[grammar.start],
            padding_symbol=padding_symbol,
            padding_rule=grammar.padding_rule,
            symbol_rules=symbol_rules,
            live_slots=live_slots,
            push=push,
            push_delta=np.array([len(p) - 1 for p in pushed], dtype=np.int64),
        )


def live_rules(grammar: Grammar) -> np.ndarray:
    """(R,) True for rules that can finish: every right-hand non-terminal derives a string.

    A rule naming a symbol without productions (index -1), or only symbols that can never
    finish, would leave a derivation open forever; the decoder never picks it.
    """
    productive = np.zeros(len(grammar.lhs_symbols), dtype=bool)
    while True:
        live = np.array(
            [all(s >= 0 and productive[s] for s in rhs) for rhs in grammar.rhs_nonterminals]
        )
        grown = productive.copy()
        grown[grammar.rule_lhs[live]] = True
        if (grown == productive).all():
            break
        productive = grown
    if not productive[grammar.symbol_index[grammar.start]]:
        raise GrammarError(f"grammar {grammar.name}: the start symbol {grammar.start!r} derives no string")
    return live
