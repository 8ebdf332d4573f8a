"""Random strings of a grammar: unique leftmost derivations with a bounded number of rules.

At each step the leftmost non-terminal is expanded by a rule drawn uniformly among those
that still let the derivation finish within ``max_rules`` (each symbol's shortest
completion is known), so no draw is wasted on derivations that grow too long.
"""

from __future__ import annotations

import math
import random

from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import PADDING_SYMBOL, Grammar


def shortest_completions(grammar: Grammar) -> dict[str, float]:
    """The fewest rules each non-terminal needs to derive a terminal string (inf if none)."""
    best: dict[str, float] = {}
    changed = True
    while changed:
        changed = False
        for rule in grammar.rules:
            if rule.lhs == PADDING_SYMBOL:
                continue
            cost = 1 + sum(best.get(s, math.inf) for s, t in zip(rule.rhs, rule.is_terminal) if not t)
            if cost < best.get(rule.lhs, math.inf):
                best[rule.lhs] = cost
                changed = True
    return best


def generate_strings(
    grammar: Grammar,
    count: int,
    seed: int = 0,
    min_rules: int = 1,
    max_rules: int | None = None,
    max_draws_per_string: int = 1000,
) -> list[str]:
    """``count`` distinct strings with ``min_rules`` to ``max_rules`` productions each."""
    if count < 1:
        raise ConfigError(f"count {count}: expected at least 1 string")
    max_rules = max_rules or grammar.max_length
    if max_rules > grammar.max_length:
        raise ConfigError(f"max_rules {max_rules} exceeds the grammar's max length {grammar.max_length}")
    shortest = shortest_completions(grammar)
    if shortest.get(grammar.start, math.inf) > max_rules:
        raise ConfigError(f"no string of the {grammar.name} grammar has at most {max_rules} rules")
    rng = random.Random(seed)
    joiner = " " if grammar.ignore_whitespace else ""
    by_lhs: dict[str, list] = {}
    for rule in grammar.rules:
        cost = 1 + sum(shortest.get(s, math.inf) for s, t in zip(rule.rhs, rule.is_terminal) if not t)
        by_lhs.setdefault(rule.lhs, []).append((rule, cost))
    found: dict[str, None] = {}
    draws = 0
    while len(found) < count:
        draws += 1
        if draws > count * max_draws_per_string:
            raise ConfigError(
                f"found only {len(found)} distinct strings of {min_rules}..{max_rules} rules "
                f"after {draws - 1} draws; ask for fewer"
            )
        tokens, used = _draw(grammar.start, by_lhs, shortest, max_rules, rng)
        if used >= min_rules:
            found.setdefault(joiner.join(tokens))
    return list(found)


def _draw(start, by_lhs, shortest, max_rules, rng) -> tuple[list[str], int]:
    stack: list[tuple[str, bool]] = [(start, False)]
    committed = shortest[start]  # rules used so far plus the least the open symbols need
    tokens: list[str] = []
    used = 0
    while stack:
        symbol, is_terminal = stack.pop()
        if is_terminal:
            tokens.append(symbol)
            continue
        choices = [
            rule for rule, cost in by_lhs[symbol] if committed + cost - shortest[symbol] <= max_rules
        ]
        rule = rng.choice(choices)
        committed += next(c for r, c in by_lhs[symbol] if r is rule) - shortest[symbol]
        used += 1
        stack.extend(zip(reversed(rule.rhs), reversed(rule.is_terminal)))
    return tokens, used
