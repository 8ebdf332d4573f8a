"""Train a grammar or character model on a string data set (``grammar-ae train --grammar``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from grammar_ae.data.batches import SequenceBatchSource, split_indices
from grammar_ae.data.datasets import load_prepared
from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.models.sequence.presets import preset_objective
from grammar_ae.models.sequence.model import GRAMMAR, SequenceAutoEncoder, SequenceModelSpec
from grammar_ae.models.sequence.networks import (
    SequenceNetworkConfig,
    count_parameters,
    default_network,
)
from grammar_ae.pipelines.settings import RunSettings
from grammar_ae.training import Trainer, TrainerConfig, seed_everything
from grammar_ae.utils.files import atomic_path, atomic_write_json

PUBLISHED_DATA = {"smiles": "zinc250k", "expressions": "expressions"}
PUBLISHED_EPOCHS = {"smiles": 100, "expressions": 50}
PUBLISHED_BATCH = {"smiles": 500, "expressions": 600}
SPLIT_FILE = "split.npz"


@dataclass
class SequenceRunConfig(RunSettings):
    kind = "sequence-model"
    grammar: str = "smiles"
    model: str = "grae"
    regularizer: str | None = None
    data: str | None = None
    batch_size: int | None = None

    def resolved(self) -> SequenceRunConfig:
        """Published defaults filled in for a built-in grammar."""
        name = Path(self.grammar).stem if self.grammar not in PUBLISHED_DATA else self.grammar
        return SequenceRunConfig(
            **{
                **asdict(self),
                "data": self.data or PUBLISHED_DATA.get(name),
                "epochs": self.epochs or PUBLISHED_EPOCHS.get(name, 50),
                "batch_size": self.batch_size or PUBLISHED_BATCH.get(name, 500),
            }
        )


def build_spec(config: SequenceRunConfig, grammar: Grammar, alphabet: list[str], max_characters: int) -> SequenceModelSpec:
    preset, objective = preset_objective(config.model, config.regularizer, config.objective)
    network = {**default_network(grammar.name).to_dict(), **config.network}
    try:
        network_config = SequenceNetworkConfig(**network)
    except TypeError as error:
        raise ConfigError(f"network settings: {error}") from None
    return SequenceModelSpec(
        representation=preset.representation,
        preset=preset.name,
        grammar_name=grammar.name,
        grammar_source=grammar.source,
        grammar_hash=grammar.hash,
        network=network_config,
        objective=objective,
        alphabet=alphabet if preset.representation != GRAMMAR else [],
        length=max_characters if preset.representation != GRAMMAR else 0,
    )


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
    model = SequenceAutoEncoder(spec)
    length = model.codec.length
    sources = [
        SequenceBatchSource(data, items, spec.representation, length, grammar.padding_rule)
        for items in (train_items, validation_items)
    ]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        with atomic_path(out_dir / SPLIT_FILE) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, train=train_items, validation=validation_items)
    record = {
        "task": "sequence",
        # epochs and device may change when a run is resumed; the trainer records them
        "config": {k: v for k, v in asdict(config).items() if k not in ("epochs", "device")},
        "data": str(config.data),
        "data_file": str(Path(data.summary["input"]).resolve()),
        "data_sha256": data.input_sha256,
        "grammar_hash": grammar.hash,
        "train_items": int(len(train_items)),
        "validation_items": int(len(validation_items)),
        "parameters": count_parameters(model),
    }
    atomic_write_json(out_dir / "config.json", record)
    trainer_config = TrainerConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        plateau_factor=0.2,
        plateau_patience=3,
        min_learning_rate=1e-4,
        seed=config.seed,
        device=config.device,
        grad_clip=config.grad_clip,
        monitor=config.monitor or model.objective.validation_monitor,
    )
    trainer = Trainer(model, *sources, trainer_config, out_dir, spec.to_dict(), record, quiet=quiet)
    return trainer.fit(resume=resume, overwrite=overwrite)
