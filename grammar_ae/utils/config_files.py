"""Settings from a config file (TOML or YAML), ``--set key=value`` overrides, and typed configs built from them."""

from __future__ import annotations

import re
import tomllib
import types
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from grammar_ae.errors import ConfigError, is_number


class _YAMLLoader(yaml.SafeLoader):
    """YAML with numbers read as users write them: ``1e6`` and ``1e-3`` are floats (YAML 1.2),
    where YAML 1.1 reads an exponent without a dot or sign as a string."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def load_yaml(text: str) -> Any:
    """YAML text as data, numbers as written (see ``_YAMLLoader``)."""
    return yaml.load(text, Loader=_YAMLLoader)


def read_config_file(path: Path | None) -> dict[str, Any]:
    """A TOML (.toml) or YAML (.yaml/.yml) mapping; empty without a path."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
        loaded = tomllib.loads(text) if Path(path).suffix == ".toml" else load_yaml(text)
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


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
               list: "a list", tuple: "a list"}


def check_types(config: Any, what: str) -> None:
    """ConfigError naming the first field of the dataclass ``config`` whose value does not have
    its annotated type (``what`` names one field, e.g. "run setting"); an integer stands for a
    float and becomes one."""
    hints = get_type_hints(type(config))
    for field in fields(config):
        value = getattr(config, field.name)
        allowed = _plain_types(hints[field.name])
        if allowed is None or value is None and type(None) in allowed:
            continue
        if float in allowed and is_number(value, integer=True):
            object.__setattr__(config, field.name, float(value))
        elif not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            expected = " or ".join(_TYPE_NAMES[t] for t in allowed if t in _TYPE_NAMES)
            raise ConfigError(f"{what} {field.name}={value!r}: expected {expected}")


def _plain_types(hint: Any) -> tuple[type, ...] | None:
    """The classes a value of ``hint`` may have (None: any value)."""
    if get_origin(hint) in (Union, types.UnionType):
        parts = [_plain_types(arg) for arg in get_args(hint)]
        return None if any(part is None for part in parts) else tuple(t for part in parts for t in part)
    hint = get_origin(hint) or hint
    return (hint,) if isinstance(hint, type) else None


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``["objective.beta=0.01", "epochs=3"]`` -> nested dict with YAML-typed values."""
    out: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE (e.g. objective.beta=0.01)")
        try:
            value = load_yaml(raw)
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
