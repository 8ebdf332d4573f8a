"""Settings of a sequence run (``grammar-ae train --grammar``) and the model spec they give."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.models.sequence.model import GRAMMAR, SequenceModelSpec
from grammar_ae.models.sequence.networks import SequenceNetworkConfig, default_network
from grammar_ae.models.sequence.presets import (
    AUTOREGRESSIVE_BATCH,
    PUBLISHED_BATCH,
    PUBLISHED_DATA,
    PUBLISHED_EPOCHS,
    SCHEDULE,
    preset_objective,
)
from grammar_ae.training.run_settings import RunSettings
from grammar_ae.utils.config_files import config_from_dict


@dataclass
class SequenceRunConfig(RunSettings):
    kind = "sequence-model"
    schedule = SCHEDULE

    grammar: str = "smiles"
    model: str = "grae"
    regularizer: str | None = None
    data: str | None = None
    kekulize: bool = False  # molecules: train on canonical Kekule SMILES (no aromatic atoms)

    def resolved(self) -> SequenceRunConfig:
        """Published defaults filled in for a built-in grammar."""
        name = Path(self.grammar).stem if self.grammar not in PUBLISHED_DATA else self.grammar
        decoder = self.network.get("decoder", default_network(name).decoder)
        batch = PUBLISHED_BATCH.get(name, 500) if decoder == "published" else AUTOREGRESSIVE_BATCH
        return SequenceRunConfig(
            **{
                **asdict(self),
                "data": self.data or PUBLISHED_DATA.get(name),
                "epochs": self.epochs or PUBLISHED_EPOCHS.get(name, 50),
                "batch_size": self.batch_size or batch,
            }
        )


def build_spec(config: SequenceRunConfig, grammar: Grammar, alphabet: list[str], max_characters: int) -> SequenceModelSpec:
    """The spec of the model ``config`` asks for: its preset, then the network and objective settings."""
    if config.kekulize and grammar.name == "expressions":
        raise ConfigError("kekulize applies to SMILES grammars, not to expressions")
    preset, objective = preset_objective(config.model, config.regularizer, config.objective)
    network = {**default_network(grammar.name).to_dict(), **config.network}
    try:
        network_config = config_from_dict(SequenceNetworkConfig, network, "network setting")
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
        kekulize=config.kekulize,
    )
