"""Objectives by name: their typed configs, ``build_objective(name, **settings)`` and ``config_of`` for saving."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.ar_elbo import ARELBOObjective
from grammar_ae.objectives.base import Objective
from grammar_ae.objectives.cvvae import CVVAEObjective
from grammar_ae.objectives.gmm import GMMObjective
from grammar_ae.objectives.rae import RAEObjective
from grammar_ae.objectives.trainable_sigma import TrainableSigmaObjective
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
    "trainable-sigma": TrainableSigmaObjective,
}


def objective_config(name: str, **settings: Any) -> Any:
    """The typed config (dataclass) of the objective ``name`` with ``settings`` (config field names)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"objective {name!r} is unknown; expected one of {', '.join(OBJECTIVES)}")
    config_class = OBJECTIVES[name].config_class
    known = {field.name for field in fields(config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(
            f"objective {name!r} has no setting {', '.join(map(repr, unknown))}; "
            f"its settings are {', '.join(sorted(known))}"
        )
    return config_class(**settings)


def build_objective(name: str, **settings: Any) -> Objective:
    """The objective ``name`` with ``settings``; unset fields keep the config class's defaults.

    The variant names (``ae-l2``, ``rae-l2``, ``rae-gp``, ``rae-sn``) share the RAE config; a
    model family's presets give each its weights.
    """
    config = objective_config(name, **settings)
    return OBJECTIVES[name](config, name=name)


def config_of(objective: Objective) -> dict[str, Any]:
    """``{"name": ..., **config}``; ``build_objective(**config_of(o))`` rebuilds the same objective."""
    return {"name": objective.name, **asdict(objective.config)}
