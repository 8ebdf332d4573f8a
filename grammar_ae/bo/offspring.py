"""Children of scored strings: the genetic operators of each grammar, shared by the GA peer
(``grammar_ae.bo.genetic``) and by BO's offspring candidates (``grammar_ae.bo.loop``).

- ``smiles``: mol_ga's Graph GA operators (crossover and mutation of molecular graphs);
- ``expressions``: subtree crossover and mutation of the grammar's derivation trees
  (``grammar_ae.bo.ga_trees``).

Each is mol_ga's ``offspring_gen_func(parents, count, rng, parallel)``, returning a set.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import Grammar

Offspring = Callable  # mol_ga's offspring_gen_func(parents, count, rng, parallel) -> set[str]


def molecule_offspring(grammar: Grammar) -> Offspring:
    from mol_ga.graph_ga.gen_candidates import graph_ga_blended_generation

    return graph_ga_blended_generation


def tree_offspring(grammar: Grammar) -> Offspring:
    from grammar_ae.bo.ga_trees import TreeOperators

    return TreeOperators(grammar).offspring


GENETIC_ALGORITHMS: dict[str, Callable[[Grammar], Offspring]] = {"smiles": molecule_offspring, "expressions": tree_offspring}


def check_ga_grammar(grammar_name: str) -> None:
    if grammar_name not in GENETIC_ALGORITHMS:
        raise ConfigError(
            f"no genetic algorithm for the {grammar_name!r} grammar (there is one for {', '.join(GENETIC_ALGORITHMS)})"
        )


def offspring_of(
    grammar_name: str, grammar: Grammar, population: Sequence[tuple[float, str]], count: int, seed: int,
) -> list[str]:
    """Up to ``count`` distinct children (sorted) of parents drawn from ``population``
    ((signed score, string) pairs, higher better) by mol_ga's uniform quantile sampling, as
    the GA draws them; reproducible given ``seed``."""
    from mol_ga.sample_population import uniform_quantile_sampling

    rng = random.Random(seed)
    parents = uniform_quantile_sampling(list(population), 2 * count, rng)
    return sorted(GENETIC_ALGORITHMS[grammar_name](grammar)(parents, count, rng))
