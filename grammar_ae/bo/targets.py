"""Objective targets for latent-space optimization, and a registry for user targets.

A target scores strings of one grammar; ``None`` marks a string the target cannot score
(for molecules: RDKit cannot sanitize it). Built-in targets:

- ``logp``: penalized logP of PROTOCOLS 5 (maximize), molecules.
- ``qed``: RDKit's quantitative estimate of drug-likeness (maximize), molecules.
- ``expression``: distance to ``1/3+x+sin(x*x)`` on [-10, 10] (minimize), expressions.

Adding your own target (no change to the loop needed)::

    from grammar_ae.bo.targets import register_target

    def heavy_atoms(smiles: str) -> float | None:
        ...  # return None when the string is not a valid molecule

    register_target("heavy_atoms", heavy_atoms, grammar="smiles", direction="maximize")

Then ``BOConfig(target="heavy_atoms")``, or on the command line
``grammar-ae optimize --target heavy_atoms --target-module my_targets`` where the module
``my_targets`` calls ``register_target`` when imported. Define the function at module level
so that whole data sets can be scored in worker processes.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable, Literal, Sequence

import numpy as np

from grammar_ae.bo.expression_eval import ExpressionSyntaxError, evaluate
from grammar_ae.chemistry import canonical_smiles, is_valid_molecule, molecule
from grammar_ae.errors import ConfigError

Direction = Literal["maximize", "minimize"]
ScoreFunction = Callable[[str], "float | None"]


@dataclass(frozen=True)
class Target:
    """An objective: ``function`` scores one string (None = invalid)."""

    name: str
    grammar: str
    direction: Direction
    function: ScoreFunction
    validity: Callable[[str], bool] | None = None
    optimum: str | None = None
    description: str = ""
    version: str = "1"
    canonical: Callable[[str], "str | None"] | None = None

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def key(self, string: str) -> str:
        """What makes two strings one candidate, for duplicates and the budget: the canonical
        form where the target has one (canonical SMILES: one molecule written otherwise is no
        new molecule), else the string without whitespace."""
        canonical = self.canonical(string) if self.canonical is not None else None
        return canonical if canonical is not None else "".join(string.split())

    def score_one(self, string: str) -> float | None:
        value = self.function(string)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def score(self, strings: Sequence[str]) -> list[float | None]:
        """Scores in order; None where a string is invalid for this target."""
        return [self.score_one(string) for string in strings]

    def is_valid(self, string: str) -> bool:
        """Whether the target can score ``string`` (cheap check where one is given)."""
        if self.validity is not None:
            return self.validity(string)
        return self.score_one(string) is not None

    def reaches_optimum(self, score: float | None) -> bool:
        """Whether ``score`` is as good as the known optimum's (an equivalent string counts)."""
        best = self.optimum_score
        if best is None or score is None:
            return False
        return self.best([score, best]) == score or math.isclose(score, best, rel_tol=1e-9, abs_tol=1e-12)

    @cached_property
    def optimum_score(self) -> float | None:
        """The known optimum's score (None without one)."""
        return None if self.optimum is None else self.score_one(self.optimum)

    def worst(self, scores: Sequence[float]) -> float:
        return min(scores) if self.maximize else max(scores)

    def best(self, scores: Sequence[float]) -> float:
        return max(scores) if self.maximize else min(scores)

    def ranked(self, scores: Sequence[float]) -> list[int]:
        """Indices of ``scores`` from best to worst (stable)."""
        return sorted(range(len(scores)), key=lambda i: -scores[i] if self.maximize else scores[i])


_REGISTRY: dict[str, Target] = {}


def register_target(
    name: str,
    function: ScoreFunction,
    *,
    grammar: str,
    direction: Direction,
    is_valid: Callable[[str], bool] | None = None,
    optimum: str | None = None,
    description: str = "",
    version: str = "1",
    canonical: Callable[[str], str | None] | None = None,
    replace: bool = False,
) -> Target:
    """Add a target to the registry and return it.

    ``function(string) -> float | None`` scores one string; ``is_valid`` is an optional
    cheaper validity check; ``optimum`` a known best string (reported as found when a
    proposal scores as well as it, so equivalent strings count);
    change ``version`` when the function changes so that cached scores are recomputed;
    ``canonical(string)`` an optional canonical form (None where there is none): strings
    with one canonical form count as one candidate.
    """
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"target {name!r}: direction must be 'maximize' or 'minimize', got {direction!r}")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"target name {name!r}: use letters, digits, '-' and '_' only")
    if name in _REGISTRY and not replace:
        raise ConfigError(f"target {name!r} is already registered (pass replace=True to override it)")
    target = Target(name, grammar, direction, function, is_valid, optimum, description, version, canonical)
    _REGISTRY[name] = target
    return target


def get_target(name: str) -> Target:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown target {name!r}; available: {', '.join(available_targets())}")
    return _REGISTRY[name]


def available_targets() -> list[str]:
    return sorted(_REGISTRY)


def import_target_module(module: str) -> None:
    """Import a user module that registers targets when imported."""
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(f"--target-module {module}: cannot import it ({error})") from error


def check_target_grammar(target: Target, grammar_name: str) -> None:
    if target.grammar != grammar_name:
        raise ConfigError(
            f"target {target.name!r} scores {target.grammar!r} strings but the checkpoint is a "
            f"{grammar_name!r} model; targets for it: "
            f"{', '.join(n for n in available_targets() if _REGISTRY[n].grammar == grammar_name) or 'none'}"
        )


# ---- molecules -------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _sascorer():
    from rdkit.Chem import RDConfig

    folder = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if not os.path.isfile(os.path.join(folder, "sascorer.py")):
        raise ConfigError(f"RDKit's SA score (Contrib/SA_Score/sascorer.py) is missing under {folder}")
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module("sascorer")


def largest_ring_size(mol) -> int:
    return max((len(ring) for ring in mol.GetRingInfo().AtomRings()), default=0)


def penalized_logp(smiles: str) -> float | None:
    """Standardised logP - SA - (rings over 6 atoms), constants of PROTOCOLS 5 (ZINC-250k)."""
    from rdkit.Chem import Crippen

    mol = molecule(smiles)
    if mol is None:
        return None
    log_p = Crippen.MolLogP(mol)
    sa = _sascorer().calculateScore(mol)
    cycle = max(0, largest_ring_size(mol) - 6)
    return (
        (log_p - 2.45777691) / 1.43341767
        + (3.05352042 - sa) / 0.83460587
        + (-cycle + 0.04861121) / 0.28746695
    )


def qed(smiles: str) -> float | None:
    from rdkit.Chem import QED

    mol = molecule(smiles)
    return None if mol is None else QED.qed(mol)


# ---- expressions ------------------------------------------------------------------------------

TARGET_EXPRESSION = "1/3+x+sin(x*x)"
EXPRESSION_X = np.linspace(-10, 10, 1000)
EXPRESSION_Y = 1 / 3 + EXPRESSION_X + np.sin(EXPRESSION_X * EXPRESSION_X)
EXPRESSION_CAP = 1000.0
WORST_EXPRESSION_SCORE = float(np.log(1 + EXPRESSION_CAP))


def is_valid_expression(expression: str) -> bool:
    """Whether ``expression`` parses (evaluated at one point, not against the data)."""
    try:
        evaluate(expression, EXPRESSION_X[:1])
    except ExpressionSyntaxError:
        return False
    return True


def expression_distance(expression: str) -> float | None:
    """log(1 + mean min((f - y)^2, 1000)) over the grid; non-finite -> log(1001); None if unparseable."""
    try:
        values = evaluate(expression, EXPRESSION_X)
    except ExpressionSyntaxError:
        return None
    with np.errstate(all="ignore"):
        score = float(np.log(1 + np.mean(np.minimum((values - EXPRESSION_Y) ** 2, EXPRESSION_CAP))))
    return score if math.isfinite(score) else WORST_EXPRESSION_SCORE


register_target(
    "logp", penalized_logp, grammar="smiles", direction="maximize", is_valid=is_valid_molecule,
    canonical=canonical_smiles, description="penalized logP: z(logP) + z(-SA) + z(-cycle) with the ZINC-250k constants",
)
register_target(
    "qed", qed, grammar="smiles", direction="maximize", is_valid=is_valid_molecule, canonical=canonical_smiles,
    description="RDKit QED drug-likeness",
)
register_target(
    "expression", expression_distance, grammar="expressions", direction="minimize",
    is_valid=is_valid_expression, optimum=TARGET_EXPRESSION,
    description="log(1 + mean capped squared error to 1/3+x+sin(x*x) on linspace(-10, 10, 1000))",
)
