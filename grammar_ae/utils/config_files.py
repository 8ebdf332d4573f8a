"""Settings from a config file (TOML or YAML), ``--set key=value`` overrides, and typed configs built from them."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from grammar_ae.errors import ConfigError


def read_config_file(path: Path | None) -> dict[str, Any]:
    """A TOML (.toml) or YAML (.yaml/.yml) mapping; empty without a path."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
        loaded = tomllib.loads(text) if Path(path).suffix == ".toml" else yaml.safe_load(text)
    except OSError as error:
        raise ConfigError(f"config file {path}: cannot be read ({error})") from None
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"config file {path}: not valid {'TOML' if Path(path).suffix == '.toml' else 'YAML'} ({error})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top")
    return loaded


Config = TypeVar("Config")


def config_from_dict(cls: type[Config], values: dict[str, Any], what: str) -> Config:
    """``cls(**values)``, refusing unknown keys with a message that lists the known ones
    (``what`` names one key, e.g. "network setting")."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``["objective.beta=0.01", "epochs=3"]`` -> nested dict with YAML-typed values."""
    out: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE (e.g. objective.beta=0.01)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        target = out
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; nested mappings are merged; None values are ignored."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out
