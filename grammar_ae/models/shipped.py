"""Pretrained models shipped by name: ``load_run`` turns a registered name (for example
``zinc`` or ``expressions``) into the run directory the model's ``fetch`` provides, wherever
the argument is not an existing path. None is registered yet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grammar_ae.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class ShippedModel:
    """``fetch`` returns the model's local run directory (downloading it into the cache first
    where needed)."""

    name: str
    fetch: Callable[[], Path]
    description: str = ""


SHIPPED_MODELS: dict[str, ShippedModel] = {}


def register_shipped_model(model: ShippedModel) -> None:
    """Make ``model.name`` loadable by every command and by ``grammar_ae.load_run``."""
    if model.name in SHIPPED_MODELS:
        raise ConfigError(f"a shipped model named {model.name!r} is registered already")
    SHIPPED_MODELS[model.name] = model


def resolve_run(path_or_name: str | Path) -> Path:
    """An existing path as it is, else the run directory of the shipped model of that name."""
    path = Path(path_or_name)
    if path.exists():
        return path
    shipped = SHIPPED_MODELS.get(str(path_or_name))
    if shipped is None:
        names = f", nor a shipped model ({', '.join(sorted(SHIPPED_MODELS))})" if SHIPPED_MODELS else ""
        raise CheckpointError(f"{path}: no such checkpoint or run directory{names}")
    return Path(shipped.fetch())
