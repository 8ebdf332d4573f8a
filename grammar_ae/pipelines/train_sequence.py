"""Train a grammar or character model on a string data set (``grammar-ae train --grammar``).

The run directory is locked for the whole job; every check (the flags against what it holds,
the settings of a resumed run, the batch size, the monitored term) passes before anything is
written to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grammar_ae.chemistry import form_of
from grammar_ae.data.batches import split_indices
from grammar_ae.data.datasets import load_prepared
from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.models.base import count_parameters
from grammar_ae.models.sequence.config import SequenceRunConfig, build_spec
from grammar_ae.models.sequence.data import batch_sources
from grammar_ae.models.sequence.run import SPLIT_FILE
from grammar_ae.training import Trainer, seed_everything
from grammar_ae.training.preflight import check_trainable
from grammar_ae.training.run_directory import check_resumable, kept_on_write_failure, stored_run
from grammar_ae.training.run_settings import save_run_settings
from grammar_ae.utils.files import atomic_path
from grammar_ae.utils.output_lock import hold_output_lock


def train_sequence_model(
    config: SequenceRunConfig, out_dir: Path, resume: bool = False, overwrite: bool = False, quiet: bool = False
) -> dict:
    """Train and return the trainer's summary; everything lands in ``out_dir``."""
    config = config.resolved()
    if config.data is None:
        raise ConfigError(f"grammar {config.grammar}: no default data set; pass --data PATH")
    out_dir = Path(out_dir)
    with hold_output_lock(out_dir):
        stored = stored_run(out_dir, resume, overwrite)
        seed_everything(config.seed)
        grammar = Grammar.load(config.grammar)
        data = load_prepared(config.data, grammar, progress=not quiet, form=form_of(config.kekulize))
        if config.limit is not None and config.limit > len(data):
            raise ConfigError(f"limit {config.limit}: more than the {len(data)} items of {config.data}")
        train_items, validation_items = split_indices(len(data), config.seed, config.validation_fraction, config.limit)
        spec = build_spec(config, grammar, data.alphabet, data.max_characters)
        model = spec.build()
        sources = batch_sources(model, data, train_items, validation_items)
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
        monitor = model.objective.validation_monitor
        trainer_config = config.trainer_config(monitor, cpu_autocast=spec.network.autoregressive)
        check_trainable(model, *sources, trainer_config, config.monitor)
        if stored is not None:
            check_resumable(stored, spec.to_dict(), record, trainer_config, out_dir)
        with kept_on_write_failure(out_dir):
            if stored is None:
                _save_split(out_dir, train_items, validation_items)
            trainer = Trainer(model, *sources, trainer_config, out_dir, spec.to_dict(), record, quiet=quiet)
            summary = trainer.fit(resume=resume, overwrite=overwrite)
            save_run_settings(out_dir, config, record)
    return summary


def _save_split(out_dir: Path, train_items: np.ndarray, validation_items: np.ndarray) -> None:
    with atomic_path(out_dir / SPLIT_FILE) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, train=train_items, validation=validation_items)
