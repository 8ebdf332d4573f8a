"""Strings to production sequences (leftmost derivations) and back.

The parser is a memoised top-down parser over rule tables compiled from the grammar,
with one-token lookahead to skip alternatives that cannot start at a position and
direct left recursion (``chain -> chain branched_atom``) parsed by growing a seed.
Where the grammar is ambiguous it prefers the longest match and then the earlier rule,
so every string gets the same derivation every time. If that preference fails on a
string that the grammar does derive, NLTK's chart parser is used for that string, for at most
``CHART_SECONDS``. A string with more tokens than the grammar's max length can derive is refused
before parsing, so every string gets a verdict in bounded time.
"""

from __future__ import annotations

import nltk
import numpy as np

from grammar_ae.errors import ParseError, SequenceError
from grammar_ae.grammar.cfg import PADDING_SYMBOL, Grammar
from grammar_ae.grammar.tokenize import Tokenizer

_END = -1  # lookahead id past the last token
CHART_SECONDS = 2.0
"""Time limit of the chart-parser fallback for one string."""

# A parse-tree node is a tuple (rule index, child node, child node, ...) holding only the
# non-terminal children; its pre-order walk is the leftmost derivation.
Node = tuple


class Parser:
    """Parses strings of one grammar into rule-index sequences, and replays them back."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        self.tokenizer = Tokenizer(grammar)
        self._terminal_id = {t: i for i, t in enumerate(grammar.terminals)}
        self._symbols = {s: i for i, s in enumerate(_all_nonterminals(grammar))}
        self._compile()

    # -- compilation ------------------------------------------------------------------------
    def _compile(self) -> None:
        g = self.grammar
        n_symbols = len(self._symbols)
        base: list[list[tuple]] = [[] for _ in range(n_symbols)]
        recursive: list[list[tuple]] = [[] for _ in range(n_symbols)]
        for rule in g.rules:
            if rule.lhs == PADDING_SYMBOL:
                continue
            lhs = self._symbols[rule.lhs]
            items = tuple(
                (True, self._terminal_id[s]) if t else (False, self._symbols[s])
                for s, t in zip(rule.rhs, rule.is_terminal)
            )
            if items and items[0] == (False, lhs):
                recursive[lhs].append((rule.index, items[1:]))
            else:
                base[lhs].append((rule.index, items))
        first, nullable = _first_sets(base, recursive, n_symbols)
        lookahead = list(range(len(self._terminal_id))) + [_END]

        def starts(items: tuple[tuple[bool, int], ...]) -> set[int]:
            out: set[int] = set()
            for is_terminal, value in items:
                if is_terminal:
                    out.add(value)
                    return out
                out |= first[value]
                if value not in nullable:
                    return out
            return set(lookahead)  # the whole sequence may be empty: any next token

        def encode(items: tuple[tuple[bool, int], ...]) -> tuple[int, ...]:
            # terminals as their id (>= 0), non-terminals as ~symbol (< 0)
            return tuple(value if is_terminal else ~value for is_terminal, value in items)

        def table(alternatives):
            return [
                {tok: [(rule, encode(items)) for rule, items in alts if tok in starts(items)] for tok in lookahead}
                for alts in alternatives
            ]

        self._base = table(base)
        self._recursive = table(recursive)
        # Symbols whose every rule is one terminal (atoms, digits, bonds): a direct lookup.
        self._leaves = [
            {items[0][1]: (rule,) for rule, items in alts}
            if alts and not recursive[symbol] and all(len(i) == 1 and i[0][0] for _, i in alts)
            else None
            for symbol, alts in enumerate(base)
        ]
        self._start = self._symbols[g.start]
        self._terminals_per_rule = max(sum(rule.is_terminal) for rule in g.rules)  # tokens a production yields at most

    # -- parsing -----------------------------------------------------------------------------
    def parse(self, text: str, max_length: int | None = None) -> np.ndarray:
        """The leftmost derivation of ``text`` as rule indices (no padding), at most
        ``max_length`` rules (default: the grammar's)."""
        max_length = max_length or self.grammar.max_length
        tokens = self.tokenizer.tokenize(text)
        if len(tokens) > max_length * self._terminals_per_rule:
            raise ParseError(
                f"{text[:40]!r}...: {len(tokens)} tokens, more than "
                f"{self._length_name(max_length)} {max_length} can derive"
            )
        ids = [self._terminal_id[t] for t in tokens]
        memo: dict[int, tuple[int, Node] | None] = {}
        furthest = [0]
        try:
            result = self._symbol(self._start, 0, ids, memo, furthest)
        except RecursionError:
            raise ParseError(f"{text[:40]!r}...: nested too deeply to parse") from None
        if result is not None and result[0] == len(ids):
            sequence = _flatten(result[1])
        else:
            sequence = self._chart_parse(text, tokens, furthest[0])
        if len(sequence) > max_length:
            raise ParseError(f"{text!r}: needs {len(sequence)} productions, more than {self._length_name(max_length)} "
                             f"{max_length}")
        return np.asarray(sequence, dtype=np.int16)

    def _length_name(self, max_length: int) -> str:
        return f"the {self.grammar.name} grammar's max length" if max_length == self.grammar.max_length else "the limit"

    def _symbol(self, symbol, position, ids, memo, furthest):
        key = position * len(self._base) + symbol
        if key in memo:
            return memo[key]
        memo[key] = None  # guards against indirect left recursion
        token = ids[position] if position < len(ids) else _END
        best = self._longest(self._base[symbol][token], position, ids, memo, furthest, ())
        if best is not None:
            extensions = self._recursive[symbol]
            while True:
                end = best[0]
                token = ids[end] if end < len(ids) else _END
                grown = self._longest(extensions[token], end, ids, memo, furthest, (best[1],))
                if grown is None:
                    break
                best = grown
        memo[key] = best
        return best

    def _longest(self, alternatives, position, ids, memo, furthest, prefix):
        """The alternative that reaches furthest (earlier rule on ties), or None."""
        best = None
        n = len(ids)
        leaves = self._leaves
        for rule, items in alternatives:
            end = position
            children = prefix
            for item in items:
                if item >= 0:  # a terminal
                    if end < n and ids[end] == item:
                        end += 1
                        continue
                    break
                table = leaves[~item]
                if table is not None:  # a symbol whose rules are single terminals
                    leaf = table.get(ids[end]) if end < n else None
                    if leaf is None:
                        break
                    end += 1
                    children = (*children, leaf)
                    continue
                found = self._symbol(~item, end, ids, memo, furthest)
                if found is None:
                    break
                end = found[0]
                children = (*children, found[1])
            else:
                if best is None or end > best[0]:
                    best = (end, (rule, *children))
            if end > furthest[0]:
                furthest[0] = end
        return best

    def _chart_parse(self, text: str, tokens: list[str], furthest: int) -> list[int]:
        rule_index = {p: i for i, p in enumerate(self.grammar.nltk_cfg.productions())}
        position = sum(len(t) for t in tokens[:furthest])
        where = (
            f"at token {tokens[furthest]!r} (token {furthest}, character {position})"
            if furthest < len(tokens)
            else "at the end of the string (it is incomplete)"
        )
        try:
            tree = next(nltk.ChartParser(self.grammar.nltk_cfg, max_time=CHART_SECONDS).parse(tokens), None)
        except ValueError:
            tree = None
        except TimeoutError:
            raise ParseError(
                f"{text!r}: no derivation found in {CHART_SECONDS:g} s; the top-down parse fails {where}"
            ) from None
        if tree is None:
            raise ParseError(f"{text!r}: not in the {self.grammar.name} grammar; parsing fails {where}")
        return [rule_index[p] for p in tree.productions()]

    # -- the inverse ---------------------------------------------------------------------
    def unparse(self, sequence) -> str:
        """The string a rule sequence derives; padding after the end is allowed."""
        g = self.grammar
        rules = g.rules
        stack: list[tuple[bool, str]] = [(False, g.start)]
        out: list[str] = []
        length = 0
        for step, index in enumerate(np.asarray(sequence).tolist()):
            if not 0 <= index < len(rules):
                raise SequenceError(f"step {step}: rule index {index} is out of range 0..{len(rules) - 1}")
            while stack and stack[-1][0]:
                out.append(stack.pop()[1])
            if not stack:
                if index != g.padding_rule:
                    raise SequenceError(f"step {step}: rule {index} after the derivation ended")
                continue
            symbol = stack.pop()[1]
            rule = rules[index]
            if rule.lhs != symbol:
                raise SequenceError(
                    f"step {step}: rule {index} ({rule}) cannot expand {symbol!r}"
                )
            stack.extend(zip(reversed(rule.is_terminal), reversed(rule.rhs)))
            length = step + 1
        while stack and stack[-1][0]:
            out.append(stack.pop()[1])
        if stack:
            raise SequenceError(f"derivation unfinished after {length} rules: {stack[-1][1]!r} left to expand")
        if length > g.max_length:
            raise SequenceError(f"{length} rules, more than the max length {g.max_length}")
        return "".join(out)


def _all_nonterminals(grammar: Grammar) -> list[str]:
    names = list(grammar.lhs_symbols)
    for rule in grammar.rules:
        names.extend(s for s, t in zip(rule.rhs, rule.is_terminal) if not t and s not in names)
    return list(dict.fromkeys(names))


def _first_sets(base, recursive, n_symbols):
    """FIRST sets and nullable symbols by fixed-point iteration."""
    first: list[set[int]] = [set() for _ in range(n_symbols)]
    nullable: set[int] = set()
    changed = True
    while changed:
        changed = False
        for symbol in range(n_symbols):
            for _, items in base[symbol]:
                before = (len(first[symbol]), symbol in nullable)
                for is_terminal, value in items:
                    if is_terminal:
                        first[symbol].add(value)
                        break
                    first[symbol] |= first[value]
                    if value not in nullable:
                        break
                else:
                    nullable.add(symbol)
                changed |= before != (len(first[symbol]), symbol in nullable)
    return first, nullable


def _flatten(node: Node) -> list[int]:
    out: list[int] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current[0])
        stack.extend(reversed(current[1:]))
    return out
