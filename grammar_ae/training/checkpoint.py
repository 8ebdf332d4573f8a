"""Atomic checkpoint files with a format marker, and compatibility checks.

A training checkpoint (written by the trainer) holds: ``model_spec`` (what the model zoo
needs to rebuild the model; its ``family`` key names the model family), ``model_state``, ``optimizer_state``, ``scheduler_state``,
``epoch``, ``best_epoch``, ``best_validation_loss``, ``history`` (the metrics rows),
``rng`` (see ``seeding.capture_rng``), ``config``, ``record`` (data checksum, grammar
hash, ... as given by the caller) and ``provenance``. Everything is plain data and tensors,
so files are read with ``torch.load(weights_only=True)``: loading never runs code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from grammar_ae.errors import CheckpointError
from grammar_ae.utils.files import atomic_path

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
FORMAT_MARKER = "grammar_ae_checkpoint"
FORMAT_VERSION = 1
FAMILY_KEY = "family"
"""The key of ``model_spec`` that names the model family ("sequence", "image")."""
_MISSING = object()


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` plus the format marker; a crash leaves any previous file intact."""
    with atomic_path(path) as tmp:
        torch.save({FORMAT_MARKER: FORMAT_VERSION, **state}, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``; CheckpointError when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError) as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read (truncated, corrupt or not a grammar-ae checkpoint): {_reason(error)}"
        ) from None
    if not isinstance(state, dict) or FORMAT_MARKER not in state:
        raise CheckpointError(f"{path} is not a grammar-ae checkpoint (no {FORMAT_MARKER!r} marker)")
    if state[FORMAT_MARKER] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state[FORMAT_MARKER]!r}; "
            f"this grammar-ae reads version {FORMAT_VERSION}"
        )
    return _with_family_key(state)


def _with_family_key(state: dict) -> dict:
    """Image checkpoints written before the family key named their family ``"kind": "image"``."""
    spec = state.get("model_spec")
    if isinstance(spec, dict) and FAMILY_KEY not in spec and spec.get("kind") == "image":
        state["model_spec"] = {FAMILY_KEY: spec["kind"], **{k: v for k, v in spec.items() if k != "kind"}}
    return state


def check_compatible(record: dict, expected: dict, source: str = "checkpoint") -> None:
    """Raise CheckpointError naming the first key of ``expected`` whose value ``record`` does not match.

    Only the keys of ``expected`` are checked; nested dicts are compared entirely and the
    message names the dotted path of the difference (e.g. ``model_spec.latent_dim``).
    """
    for key, value in expected.items():
        difference = _first_difference(record.get(key, _MISSING), value, key)
        if difference is not None:
            where, stored, wanted = difference
            raise CheckpointError(
                f"{source} does not match: {where} is {_show(stored)} there, expected {_show(wanted)}"
            )


def _reason(error: Exception) -> str:
    """The informative part of a loading error (torch's unpickler puts it after a long preamble)."""
    text = str(error)
    _, found, after = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (after if found else text).splitlines() if line.strip()]
    return (lines[0].split(". ")[0] if lines else type(error).__name__)[:160]


def _first_difference(stored: Any, wanted: Any, where: str) -> tuple[str, Any, Any] | None:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in sorted(stored.keys() | wanted.keys(), key=str):
            difference = _first_difference(stored.get(key, _MISSING), wanted.get(key, _MISSING), f"{where}.{key}")
            if difference is not None:
                return difference
        return None
    return None if stored is not _MISSING and stored == wanted else (where, stored, wanted)


def _show(value: Any, limit: int = 60) -> str:
    if value is _MISSING:
        return "missing"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
