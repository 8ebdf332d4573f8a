"""Train a grammar or character model on a string data set (``grammar-ae train --grammar``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grammar_ae.data.batches import split_indices
from grammar_ae.data.datasets import load_prepared
from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.models.base import count_parameters
from grammar_ae.models.sequence.config import SequenceRunConfig, build_spec
from grammar_ae.models.sequence.data import batch_sources
from grammar_ae.models.sequence.run import SPLIT_FILE
from grammar_ae.training import Trainer, seed_everything
from grammar_ae.training.run_settings import save_run_settings
from grammar_ae.utils.files import atomic_path


def train_sequence_model(
    config: SequenceRunConfig, out_dir: Path, resume: bool = False, overwrite: bool = False, quiet: bool = False
) -> dict:
    """Train and return the trainer's summary; everything lands in ``out_dir``."""
    config = config.resolved()
    if config.data is None:
        raise ConfigError(f"grammar {config.grammar}: no default data set; pass --data PATH")
    seed_everything(config.seed)
    grammar = Grammar.load(config.grammar)
    data = load_prepared(config.data, grammar, progress=not quiet)
    train_items, validation_items = split_indices(len(data), config.seed, config.validation_fraction, config.limit)
    if len(train_items) < config.batch_size:
        raise ConfigError(
            f"{len(train_items)} training items are fewer than one batch of {config.batch_size}; lower --batch-size"
        )
    spec = build_spec(config, grammar, data.alphabet, data.max_characters)
    model = spec.build()
    sources = batch_sources(model, data, train_items, validation_items)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        with atomic_path(out_dir / SPLIT_FILE) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, train=train_items, validation=validation_items)
    record = {
        "task": "sequence",
        "config": config.identity(),
        "data": str(config.data),
        "data_file": str(Path(data.summary["input"]).resolve()),
        "data_sha256": data.input_sha256,
        "grammar_hash": grammar.hash,
        "train_items": int(len(train_items)),
        "validation_items": int(len(validation_items)),
        "parameters": count_parameters(model),
    }
    # bf16 autocast on the CPU for the autoregressive networks, whose matrix products dominate
    trainer_config = config.trainer_config(model.objective.validation_monitor, cpu_autocast=spec.network.autoregressive)
    trainer = Trainer(model, *sources, trainer_config, out_dir, spec.to_dict(), record, quiet=quiet)
    summary = trainer.fit(resume=resume, overwrite=overwrite)
    save_run_settings(out_dir, config, record)
    return summary
