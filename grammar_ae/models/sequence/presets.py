"""The grammar-model presets (`--model`): representation plus objective with its weights, and
the published run defaults (PROTOCOLS section 3).

Weights follow the published settings where there are some (GVAE: KL weight 1 and
encoder noise std 0.01; GMM prior: 10 components on one-hot means, std 1, KS/CV weights
from the prior-sample heuristic). Every weight can be overridden. Runs: the published data
set, epochs and batch size per built-in grammar; Adam 1e-3 times 0.2 after 3 epochs without
validation progress, down to 1e-4. Network sizes: ``grammar_ae.models.sequence.networks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grammar_ae.errors import ConfigError
from grammar_ae.training.run_settings import PlateauSchedule

PUBLISHED_DATA = {"smiles": "zinc250k", "expressions": "expressions"}
PUBLISHED_EPOCHS = {"smiles": 100, "expressions": 50}
PUBLISHED_BATCH = {"smiles": 500, "expressions": 600}
AUTOREGRESSIVE_BATCH = 128  # many small steps: what the autoregressive networks learn fastest with on CPUs
SCHEDULE = PlateauSchedule(factor=0.2, patience=3, min_learning_rate=1e-4)


@dataclass(frozen=True)
class Preset:
    name: str
    representation: str  # "grammar" or "character"
    objective: str
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""


GRAE_REGULARIZERS: dict[str, dict[str, Any]] = {
    "l2": {"beta": 1e-3, "l2_weight": 1e-6},
    "gp": {"beta": 1e-3, "gp_weight": 1e-4},
    "sn": {"beta": 1e-3, "spectral_norm": True},
}
DEFAULT_GRAE_REGULARIZER = "l2"

SEQUENCE_PRESETS: dict[str, Preset] = {
    "gvae": Preset("gvae", "grammar", "vae", {"kl_weight": 1.0, "encoder_noise_std": 0.01}, "grammar VAE"),
    "cvae": Preset("cvae", "character", "vae", {"kl_weight": 1.0, "encoder_noise_std": 0.01}, "character VAE"),
    "gcvvae": Preset("gcvvae", "grammar", "cvvae", {"noise_std": 0.1, "kl_weight": 1.0}, "grammar constant-variance VAE"),
    "grae": Preset("grae", "grammar", "rae", GRAE_REGULARIZERS[DEFAULT_GRAE_REGULARIZER], "grammar regularized AE"),
    "grae-gmm": Preset("grae-gmm", "grammar", "gmm", {"components": 10, "std": 1.0}, "grammar AE with a GMM prior (KS + CV)"),
}


def preset_objective(name: str, regularizer: str | None = None, overrides: dict[str, Any] | None = None) -> tuple[Preset, dict[str, Any]]:
    """The preset and its objective settings: preset defaults, the regularizer, then overrides."""
    if name not in SEQUENCE_PRESETS:
        raise ConfigError(f"--model {name!r} is unknown; expected one of {', '.join(SEQUENCE_PRESETS)}")
    preset = SEQUENCE_PRESETS[name]
    settings = dict(preset.settings)
    if regularizer is not None:
        if name != "grae":
            raise ConfigError(f"--regularizer applies to grae only, not {name}")
        if regularizer not in GRAE_REGULARIZERS:
            raise ConfigError(f"--regularizer {regularizer!r} is unknown; expected one of {', '.join(GRAE_REGULARIZERS)}")
        settings = dict(GRAE_REGULARIZERS[regularizer])
    settings.update(overrides or {})
    return preset, {"name": preset.objective, **settings}
