"""Encoder and decoder of the grammar VAE, sized by a config (PROTOCOLS section 3).

Encoder: Conv1D stack over one-hot sequences (B, T, V), flatten, dense, then the latent
mean (and log-variance for stochastic objectives). Decoder: dense, repeated over T steps,
a stack of GRUs, dense to V logits per step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from torch import Tensor, nn

from grammar_ae.errors import ConfigError, is_number
from grammar_ae.objectives.base import EncoderOutput


DECODERS = ("published", "gru", "transformer")
AUTOREGRESSIVE_SETTINGS = ("decoder", "encoder", "embedding_dim", "model_dim", "decoder_layers", "encoder_dim",
                           "encoder_layers", "heads")
ENCODERS = ("gru", "transformer")


@dataclass
class SequenceNetworkConfig:
    """Network sizes of a sequence model.

    ``decoder`` "published": the grammar VAE's networks (a convolutional encoder over one-hot
    rules, GRUs fed z at every one of the max_length steps; ``conv_*``, ``hidden``,
    ``gru_*``, ``batch_norm``). "gru" / "transformer": autoregressive networks over folded
    tokens (``models.autoregressive_networks``; ``encoder``, ``embedding_dim``,
    ``model_dim``, ``decoder_layers``, ``encoder_dim``, ``encoder_layers``, ``heads``).
    """

    latent_dim: int = 56
    conv_filters: tuple[int, ...] = (9, 9, 10)
    conv_kernels: tuple[int, ...] = (9, 9, 11)
    hidden: int = 435
    gru_hidden: int = 501
    gru_layers: int = 3
    batch_norm: bool = False
    decoder: str = "published"
    encoder: str = "gru"
    embedding_dim: int = 128
    model_dim: int = 512
    decoder_layers: int = 1
    encoder_dim: int = 256
    encoder_layers: int = 1
    heads: int = 4

    def __post_init__(self) -> None:
        self.conv_filters = tuple(self.conv_filters)
        self.conv_kernels = tuple(self.conv_kernels)
        if len(self.conv_filters) != len(self.conv_kernels):
            raise ConfigError("conv_filters and conv_kernels must have the same length")
        for name in ("latent_dim", "hidden", "gru_hidden", "gru_layers", "embedding_dim", "model_dim",
                     "decoder_layers", "encoder_dim", "encoder_layers", "heads"):
            value = getattr(self, name)
            if not is_number(value, integer=True) or value < 1:
                raise ConfigError(f"network setting {name} must be a positive integer, got {value!r}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"network setting decoder {self.decoder!r} is unknown; expected one of {', '.join(DECODERS)}")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"network setting encoder {self.encoder!r} is unknown; expected one of {', '.join(ENCODERS)}")
        for name, used_by in (("model_dim", self.decoder), ("encoder_dim", self.encoder)):
            if used_by == "transformer" and getattr(self, name) % self.heads:
                raise ConfigError(f"network setting {name}={getattr(self, name)} must be a multiple of heads={self.heads}")

    @property
    def autoregressive(self) -> bool:
        return self.decoder != "published"

    def to_dict(self) -> dict:
        """The settings as stored in specs; the published networks' leave out the autoregressive
        ones, so they are stored as before those existed."""
        stored = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if not self.autoregressive:
            stored = {k: v for k, v in stored.items() if k not in AUTOREGRESSIVE_SETTINGS}
        return stored


# Molecules: the published sizes (about 5 M parameters). Expressions: the published sizes
# except the encoder's convolutions, 16 filters each instead of 2, 3 and 4. The published
# encoder squeezes 15 x 12 one-hot steps through 36 features and stalls reconstruction
# (grae: held-out exact match 0.23 after 20 epochs); with 16 filters grae reaches 1.00 in
# 15 epochs (benchmarks/results/sequence_expressions.md). PUBLISHED_EXPRESSION_NETWORK is
# the published encoder.
MOLECULE_NETWORK = SequenceNetworkConfig(decoder="gru")
PUBLISHED_EXPRESSION_NETWORK = SequenceNetworkConfig(
    latent_dim=25, conv_filters=(2, 3, 4), conv_kernels=(2, 3, 4), hidden=100, gru_hidden=100, batch_norm=True
)
EXPRESSION_NETWORK = replace(PUBLISHED_EXPRESSION_NETWORK, conv_filters=(16, 16, 16))


class SequenceEncoder(nn.Module):
    def __init__(self, config: SequenceNetworkConfig, length: int, vocabulary: int, stochastic: bool):
        super().__init__()
        layers: list[nn.Module] = []
        channels, steps = vocabulary, length
        for filters, kernel in zip(config.conv_filters, config.conv_kernels):
            layers += [nn.Conv1d(channels, filters, kernel)]
            layers += [nn.BatchNorm1d(filters)] if config.batch_norm else []
            layers += [nn.ReLU()]
            channels, steps = filters, steps - kernel + 1
        if steps < 1:
            raise ConfigError(f"sequences of {length} steps are too short for the convolution kernels {config.conv_kernels}")
        self.convolutions = nn.Sequential(*layers)
        dense: list[nn.Module] = [nn.Flatten(), nn.Linear(channels * steps, config.hidden)]
        dense += [nn.BatchNorm1d(config.hidden)] if config.batch_norm else []
        self.dense = nn.Sequential(*dense, nn.ReLU())
        self.mean = nn.Linear(config.hidden, config.latent_dim)
        self.log_variance = nn.Linear(config.hidden, config.latent_dim) if stochastic else None

    def forward(self, one_hot: Tensor) -> EncoderOutput:
        hidden = self.dense(self.convolutions(one_hot.transpose(1, 2)))
        logvar = self.log_variance(hidden) if self.log_variance is not None else None
        return EncoderOutput(self.mean(hidden), logvar)


class SequenceDecoder(nn.Module):
    def __init__(self, config: SequenceNetworkConfig, length: int, vocabulary: int):
        super().__init__()
        self.length = length
        layers: list[nn.Module] = []
        layers += [nn.BatchNorm1d(config.latent_dim)] if config.batch_norm else []
        layers += [nn.Linear(config.latent_dim, config.latent_dim), nn.ReLU()]
        self.dense = nn.Sequential(*layers)
        self.gru = nn.GRU(config.latent_dim, config.gru_hidden, num_layers=config.gru_layers, batch_first=True)
        self.logits = nn.Linear(config.gru_hidden, vocabulary)

    def forward(self, z: Tensor) -> Tensor:
        """(B, d) latents to (B, T, V) logits."""
        repeated = self.dense(z).unsqueeze(1).expand(-1, self.length, -1)
        outputs, _ = self.gru(repeated.contiguous())
        return self.logits(outputs)


def default_network(grammar_name: str) -> SequenceNetworkConfig:
    """The published sizes for a built-in grammar; the molecule sizes for other grammars."""
    base = EXPRESSION_NETWORK if grammar_name == "expressions" else MOLECULE_NETWORK
    return SequenceNetworkConfig(**asdict(base))

