"""Pretrained models shipped by name: ``load_run`` turns a registered name into the run
directory the model's ``fetch`` provides, wherever the argument is not an existing path.

The package ships ``zinc`` (molecules, ZINC-250k) and ``expressions`` (the 100k expression
set) in ``data/models/<name>/``: a weights-only checkpoint (``best.pt``, float16), the
training split (``split.npz``), a card (``card.json``: the training command, data
checksum, code version, CPU time and the metrics ``evaluate`` reproduces) and the ex-post
latent densities fitted on its training codes (``sampler_*.pt``), so that sampling needs
neither the data set nor minutes of encoding. ``fetch`` copies them once into the cache
(``$GRAMMAR_AE_CACHE/models/<name>-<sha256 prefix>``), where evaluation can store further
fitted samplers next to them. Their data sets are resolved by name as for any run
(``$GRAMMAR_AE_DATA``, the cache, or a download).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from grammar_ae.data.sources import embedded_path
from grammar_ae.errors import CheckpointError, ConfigError
from grammar_ae.models.run import SAMPLER_FILES
from grammar_ae.training.checkpoint import BEST_CHECKPOINT, load_checkpoint, save_checkpoint
from grammar_ae.utils.download import cache_root
from grammar_ae.utils.files import atomic_path, sha256_file

CARD_FILE = "card.json"
SPLIT_FILE = "split.npz"
SHIPPED_FILES = (BEST_CHECKPOINT, SPLIT_FILE, CARD_FILE)
EXPORTED_KEYS = ("model_spec", "epoch", "best_epoch", "best_validation_loss", "history", "config", "record",
                 "world_size", "provenance")


@dataclass(frozen=True)
class ShippedModel:
    """``fetch`` returns the model's local run directory (copying or downloading it into the
    cache first where needed); ``card`` describes it."""

    name: str
    fetch: Callable[[], Path]
    description: str = ""
    card: dict = field(default_factory=dict)


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


def packaged_model(directory: Path) -> ShippedModel:
    """The shipped model whose files are in ``directory`` (inside the package)."""
    card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))

    def fetch() -> Path:
        digest = sha256_file(directory / BEST_CHECKPOINT)[:12]
        local = cache_root() / "models" / f"{directory.name}-{digest}"
        if not (local / BEST_CHECKPOINT).is_file():
            staging = local.with_name(local.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            for name in SHIPPED_FILES:
                shutil.copy2(directory / name, staging / name)
            shutil.rmtree(local, ignore_errors=True)
            staging.rename(local)
        for path in directory.glob(SAMPLER_FILES):  # also into copies made before they shipped
            if not (local / path.name).is_file():
                with atomic_path(local / path.name) as tmp:
                    shutil.copy2(path, tmp)
        return local

    return ShippedModel(directory.name, fetch, card.get("description", ""), card)


def export_run(run_dir: Path, out_dir: Path) -> dict:
    """Write a run's best checkpoint (weights as float16, no optimizer) and its split into
    ``out_dir``, as a shipped model holds them; returns the full checkpoint it came from."""
    state = load_checkpoint(Path(run_dir) / BEST_CHECKPOINT)
    shipped = {key: state.get(key) for key in EXPORTED_KEYS}
    shipped["model_state"] = {k: v.half() if v.is_floating_point() else v for k, v in state["model_state"].items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / BEST_CHECKPOINT, shipped)
    with np.load(Path(run_dir) / SPLIT_FILE) as split:
        parts = {name: split[name].astype(np.int32) for name in ("train", "validation")}
    with atomic_path(out_dir / SPLIT_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **parts)
    return state


def _register_packaged_models() -> None:
    root = embedded_path("models")
    if root.is_dir():
        for directory in sorted(p for p in root.iterdir() if (p / CARD_FILE).is_file()):
            register_shipped_model(packaged_model(directory))


_register_packaged_models()
