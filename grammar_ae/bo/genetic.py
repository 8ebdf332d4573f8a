"""Genetic algorithms, the peers latent-space BO is judged against: same target, starting
data, seeds and budget of objective calls on new strings.

Both run mol_ga's GA driver (``run_ga_maximization``: a population of the best
``population`` strings, parents drawn by uniform quantile sampling, ``offspring`` children
per generation); the children come from the grammar's genetic operators
(``grammar_ae.bo.offspring``).

The population starts as every scorable starting string with its (cached) score, so those
cost no call. A child that is neither a starting string nor an earlier child is scored
(one objective call when the target accepts it); the run stops when ``budget`` calls are
spent or after ``max_generations``. The outputs are those of a BO run (``results``), with
generations as iterations and no latent points. A finished run in ``out_dir`` is kept as
it is; an unfinished one runs again from the start (a GA run takes seconds to minutes).
"""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.loop import ITERATIONS_PER_BUDGET_BATCH
from grammar_ae.bo.offspring import GENETIC_ALGORITHMS, check_ga_grammar
from grammar_ae.bo.results import format_score, write_outputs
from grammar_ae.bo.scoring import key_many
from grammar_ae.bo.starting_data import score_starting_strings, starting_record, starting_strings
from grammar_ae.bo.state import BOState, Proposal, load_state, objective_calls
from grammar_ae.bo.targets import Target, check_target_grammar, get_target
from grammar_ae.errors import require_counts
from grammar_ae.utils.output_lock import hold_output_lock
from grammar_ae.utils.progress import progress_bar


@dataclass
class GAConfig:
    target: str
    budget: int = 250
    offspring: int = 50  # children per generation
    population: int = 10_000  # strings kept (mol_ga's default)
    max_generations: int | None = None  # None: 4x the generations the budget needs when every child is new
    seed: int = 0
    data: str | None = None

    def __post_init__(self) -> None:
        require_counts(self, ("budget", "offspring", "population", "max_generations"))
        if self.max_generations is None:
            self.max_generations = ITERATIONS_PER_BUDGET_BATCH * math.ceil(self.budget / self.offspring)


class BudgetSpent(Exception):
    """Raised inside mol_ga's loop when the last call of the budget is made."""


class BudgetedScores:
    """mol_ga's scoring function: signed scores (mol_ga maximizes) of the strings it has not
    seen, recording each new one as a proposal and counting calls against the budget."""

    def __init__(self, target: Target, known: set[str], state: BOState, budget: int, worst: float,
                 report: Callable[[], None]):
        self.target, self.known, self.state, self.budget, self.worst = target, known, state, budget, worst
        self.sign = 1.0 if target.maximize else -1.0
        self.report = report
        self.calls = 0

    def __call__(self, strings: list[str]) -> list[float]:
        if not strings:
            return []
        self.state.completed_iterations += 1
        try:
            return self._score(strings)
        finally:
            self.report()

    def _score(self, strings: list[str]) -> list[float]:
        """Scores in the order of ``strings``, computed in sorted order: mol_ga builds the list
        from a set, whose order follows Python's string hashing, and the budget may end mid-list."""
        values = {}
        for index, string in enumerate(sorted(strings)):
            if self.calls >= self.budget:
                raise BudgetSpent
            key = self.target.key(string)
            score = self.target.score_one(string) if self.target.is_valid(string) else None
            valid = score is not None
            duplicate = valid and key in self.known
            self.state.proposals.append(Proposal(
                self.state.completed_iterations, index, string, valid, score, duplicate,
                observed=score if valid else self.worst, latent=[],
            ))
            self.calls += valid and not duplicate
            self.known.add(key)
            values[string] = self.sign * (score if valid else self.worst)
        if self.calls >= self.budget:
            raise BudgetSpent
        return [values[string] for string in strings]


def run_ga(model: LatentModel, config: GAConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the grammar's GA from the starting data and return the summary (see the module docstring)."""
    from mol_ga import run_ga_maximization
    from mol_ga.cached_function import CachedBatchFunction
    from mol_ga.sample_population import uniform_quantile_sampling

    target = get_target(config.target)
    check_target_grammar(target, model.grammar_name)
    check_ga_grammar(model.grammar_name)
    out_dir = Path(out_dir)
    settings = {**asdict(config), "method": "ga"}
    with hold_output_lock(out_dir):
        saved = load_state(out_dir)
        if saved is not None and saved.config == settings and (out_dir / "summary.json").is_file():
            return json.loads((out_dir / "summary.json").read_text())
        state = BOState(config=settings, checkpoint_sha256=model.checkpoint_sha256)
        strings = starting_strings(model, config.data)
        with progress_bar("GA (objective calls on new strings)", config.budget, enabled=progress) as advance:
            reported = [0]

            def report() -> None:
                calls = objective_calls(state.proposals)
                scores_new = [p.score for p in state.proposals if p.valid and not p.duplicate]
                best = format_score(target.best(scores_new) if scores_new else None)
                advance(calls - reported[0], status=(
                    f"generation {state.completed_iterations}: best new {best}, "
                    f"data's best {format_score(state.training['best_score'])}"))
                reported[0] = calls

            advance(0, status=f"score {len(strings):,} starting strings ({target.name})")
            scores = score_starting_strings(target, strings)
            scorable = np.flatnonzero(np.isfinite(scores)).tolist()
            worst = target.worst(scores[scorable].tolist())
            state.training = starting_record(config.data, strings, scores, target, worst)
            sign = 1.0 if target.maximize else -1.0
            keys = key_many(target, strings)
            known = {keys[i] for i in scorable}
            scoring = BudgetedScores(target, known, state, config.budget, worst, report)
            cached = CachedBatchFunction(scoring, cache={strings[i]: sign * float(scores[i]) for i in scorable})
            advance(0, status=f"evolve: {config.offspring} children per generation, population {config.population:,}")
            try:
                run_ga_maximization(
                    scoring_func=cached, starting_population_smiles={strings[i] for i in scorable},
                    sampling_func=uniform_quantile_sampling,
                    offspring_gen_func=GENETIC_ALGORITHMS[model.grammar_name](model.grammar),
                    selection_func=heapq.nlargest, max_generations=config.max_generations,
                    population_size=config.population, offspring_size=config.offspring,
                    rng=random.Random(config.seed),
                )
            except BudgetSpent:
                pass
            state.save(out_dir)
            summary = write_outputs(out_dir, state, target)
    return summary

