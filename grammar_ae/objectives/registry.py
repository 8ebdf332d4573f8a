"""Objectives by name: ``build_objective(name, **overrides)`` and ``config_of`` for saving."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.ar_elbo import ARELBOObjective
from grammar_ae.objectives.base import Objective
from grammar_ae.objectives.cvvae import CVVAEObjective
from grammar_ae.objectives.gmm import GMMObjective
from grammar_ae.objectives.rae import RAEObjective
from grammar_ae.objectives.two_stage import TwoStageVAEObjective
from grammar_ae.objectives.vae import VAEObjective
from grammar_ae.objectives.wae import WAEObjective

OBJECTIVES: dict[str, type[Objective]] = {
    "ae": RAEObjective,
    "ae-l2": RAEObjective,
    "rae": RAEObjective,
    "rae-l2": RAEObjective,
    "rae-gp": RAEObjective,
    "rae-sn": RAEObjective,
    "vae": VAEObjective,
    "cvvae": CVVAEObjective,
    "wae": WAEObjective,
    "gmm": GMMObjective,
    "ar-elbo": ARELBOObjective,
    "2svae": TwoStageVAEObjective,
}

# Defaults that differ from the config class's own: the reference image weights (PROTOCOLS 4,
# per-pixel mean squared error as REC). Sequence models override them.
PRESETS: dict[str, dict[str, Any]] = {
    "ae-l2": {"l2_weight": 1e-7},
    "rae": {"beta": 5e-4},
    "rae-l2": {"beta": 1e-4, "l2_weight": 1e-7},
    "rae-gp": {"beta": 1e-4, "gp_weight": 0.5e-7},
    "rae-sn": {"beta": 0.009, "spectral_norm": True},
}


def build_objective(name: str, **overrides: Any) -> Objective:
    """The objective ``name`` with its preset defaults, then ``overrides`` (config field names)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"objective {name!r} is unknown; expected one of {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    known = {field.name for field in fields(cls.config_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"objective {name!r} has no setting {', '.join(map(repr, unknown))}; "
            f"its settings are {', '.join(sorted(known))}"
        )
    return cls(cls.config_class(**{**PRESETS.get(name, {}), **overrides}), name=name)


def config_of(objective: Objective) -> dict[str, Any]:
    """``{"name": ..., **config}``; ``build_objective(**config_of(o))`` rebuilds the same objective."""
    return {"name": objective.name, **asdict(objective.config)}
