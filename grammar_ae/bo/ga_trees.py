"""Genetic operators on a grammar's derivation trees: every child is a string of the grammar.

A derivation tree is a tuple ``(rule, child, child, ...)`` with one child per right-hand
non-terminal of the rule, left to right; the parser's leftmost derivation builds it and
its leaves give the string back. Both operators keep a child within the grammar's
``max_length`` rules (what the models can represent):

- subtree crossover: a random node of the first parent is replaced by a random subtree
  of the second parent with the same left-hand symbol;
- subtree mutation: a random node is replaced by a random derivation of its symbol, each
  rule drawn uniformly among those that still let the tree finish within the length.

``TreeOperators.offspring`` follows mol_ga's blended generation: a fraction of the
parents is mutated, the rest paired for crossover (whose child is mutated now and then).
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from grammar_ae.data.generate import shortest_completions
from grammar_ae.grammar.cfg import PADDING_SYMBOL, Grammar
from grammar_ae.grammar.parser import Parser

Node = tuple  # (rule index, *children)
Path = tuple[int, ...]  # child positions from the root
ATTEMPTS = 10  # tries per child before an operator gives up on a pair of parents


class TreeOperators:
    """Parse, print, cross over and mutate derivation trees of ``grammar``."""

    def __init__(self, grammar: Grammar, mutation_fraction: float = 0.2, crossover_mutation_rate: float = 0.1):
        self.grammar = grammar
        self.parser = Parser(grammar)
        self.mutation_fraction = mutation_fraction
        self.crossover_mutation_rate = crossover_mutation_rate
        self.shortest = shortest_completions(grammar)
        self.joiner = " " if grammar.ignore_whitespace else ""
        self.rules_of: dict[str, list[tuple[int, float]]] = {}
        for rule in grammar.rules:
            if rule.lhs != PADDING_SYMBOL:
                cost = 1 + sum(self.shortest.get(s, math.inf) for s, t in zip(rule.rhs, rule.is_terminal) if not t)
                self.rules_of.setdefault(rule.lhs, []).append((rule.index, cost))

    # -- trees and strings -------------------------------------------------------------
    def tree(self, string: str) -> Node:
        rules = iter(self.parser.parse(string).tolist())

        def build() -> Node:
            rule = next(rules)
            return (rule, *(build() for _ in self.grammar.rhs_nonterminals[rule]))

        return build()

    def string(self, node: Node) -> str:
        tokens: list[str] = []

        def walk(current: Node) -> None:
            rule = self.grammar.rules[current[0]]
            children = iter(current[1:])
            for item, is_terminal in zip(rule.rhs, rule.is_terminal):
                if is_terminal:
                    tokens.append(item)
                else:
                    walk(next(children))

        walk(node)
        return self.joiner.join(tokens)

    def lhs(self, node: Node) -> str:
        return self.grammar.rules[node[0]].lhs

    # -- operators ---------------------------------------------------------------------
    def crossover(self, first: Node, second: Node, rng: random.Random) -> Node | None:
        sites, donors = _nodes(first), _nodes(second)
        for _ in range(ATTEMPTS):
            path, node = rng.choice(sites)
            matching = [subtree for _, subtree in donors if self.lhs(subtree) == self.lhs(node)]
            if not matching:
                continue
            child = _replace(first, path, rng.choice(matching))
            if _size(child) <= self.grammar.max_length:
                return child
        return None

    def mutate(self, tree: Node, rng: random.Random) -> Node:
        path, node = rng.choice(_nodes(tree))
        room = self.grammar.max_length - _size(tree) + _size(node)
        return _replace(tree, path, self.random_tree(self.lhs(node), room, rng))

    def random_tree(self, symbol: str, max_rules: int, rng: random.Random) -> Node:
        """A random derivation of ``symbol`` with at most ``max_rules`` rules."""
        choices = [rule for rule, cost in self.rules_of[symbol] if cost <= max_rules]
        rule = rng.choice(choices)
        symbols = [s for s, t in zip(self.grammar.rules[rule].rhs, self.grammar.rules[rule].is_terminal) if not t]
        room = max_rules - 1
        children = []
        for position, child in enumerate(symbols):
            later = sum(self.shortest[s] for s in symbols[position + 1 :])
            subtree = self.random_tree(child, int(room - later), rng)
            room -= _size(subtree)
            children.append(subtree)
        return (rule, *children)

    def offspring(self, parents: Sequence[str], count: int, rng: random.Random, parallel=None) -> set[str]:
        """Up to ``count`` children of ``parents`` (mol_ga's ``offspring_gen_func`` signature)."""
        trees = [self.tree(string) for string in parents]
        mutated = [tree for tree in trees if rng.random() < self.mutation_fraction]
        mutated = mutated[: int(count * self.mutation_fraction) + 1]
        children = [self.mutate(tree, rng) for tree in mutated]
        pairs = list(trees)
        rng.shuffle(pairs)
        for first, second in zip(trees, pairs):
            if len(children) >= count:
                break
            child = self.crossover(first, second, rng)
            if child is not None and rng.random() < self.crossover_mutation_rate:
                child = self.mutate(child, rng)
            if child is not None:
                children.append(child)
        return {self.string(child) for child in children}


def _nodes(tree: Node, path: Path = ()) -> list[tuple[Path, Node]]:
    found = [(path, tree)]
    for position, child in enumerate(tree[1:]):
        found.extend(_nodes(child, (*path, position)))
    return found


def _replace(tree: Node, path: Path, subtree: Node) -> Node:
    if not path:
        return subtree
    children = list(tree[1:])
    children[path[0]] = _replace(children[path[0]], path[1:], subtree)
    return (tree[0], *children)


def _size(tree: Node) -> int:
    return 1 + sum(_size(child) for child in tree[1:])
