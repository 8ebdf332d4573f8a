"""What the encoder does to its code after the dense mean head: an optional extra latent layer
(trainable or frozen at its random initialisation) and a normalisation of the code.

Normalisations (``latent_norm``): ``none``; ``batch`` (BatchNorm1d without affine parameters: each
code dimension has mean 0 and variance 1 over the batch, running statistics in eval mode);
``layer`` (LayerNorm without affine parameters: each code has mean 0 and variance 1 over its
dimensions); ``spectral`` (spectral normalisation of the mean head's weight, one power iteration
per training step); ``noise`` (additive N(0, latent_noise_std^2) noise in training only).
For stochastic encoders they act on the mean; the log-variance head is left as it is.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from grammar_ae.errors import ConfigError, is_number

LATENT_NORMS = ("none", "batch", "spectral", "layer", "noise")
LATENT_LAYERS = ("none", "trainable", "frozen")


class GaussianNoise(nn.Module):
    """x + std * eps in training mode, x in eval mode."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        return x + self.std * x.new_empty(x.shape).normal_() if self.training else x

    def extra_repr(self) -> str:
        return f"std={self.std}"


def latent_normalisation(kind: str, latent_dim: int, noise_std: float | None) -> nn.Module | None:
    """The module applied to the code for ``kind`` (None for ``none`` and ``spectral``)."""
    if kind == "batch":
        return nn.BatchNorm1d(latent_dim, affine=False)
    if kind == "layer":
        return nn.LayerNorm(latent_dim, elementwise_affine=False)
    if kind == "noise":
        return GaussianNoise(float(noise_std))
    return None


def mean_head(in_features: int, latent_dim: int, kind: str) -> nn.Linear:
    """The dense layer to the code, spectrally normalised for ``kind == "spectral"``."""
    head = nn.Linear(in_features, latent_dim)
    return spectral_norm(head) if kind == "spectral" else head


def latent_layer(kind: str, latent_dim: int) -> nn.Linear | None:
    """A d x d dense layer after the mean head; ``frozen`` keeps its random initial weights."""
    if kind == "none":
        return None
    layer = nn.Linear(latent_dim, latent_dim)
    layer.requires_grad_(kind == "trainable")
    return layer


def check_latent_settings(latent_norm: str, latent_noise_std: float | None, layer: str) -> None:
    """ConfigError unless the normalisation and latent layer are known and the noise std fits the normalisation."""
    if latent_norm not in LATENT_NORMS:
        raise ConfigError(f"network latent_norm {latent_norm!r}: expected one of {', '.join(LATENT_NORMS)}")
    if layer not in LATENT_LAYERS:
        raise ConfigError(f"network latent_layer {layer!r}: expected one of {', '.join(LATENT_LAYERS)}")
    if latent_norm == "noise":
        if not is_number(latent_noise_std) or not latent_noise_std > 0:
            raise ConfigError(
                f"latent_norm noise needs network.latent_noise_std=S, a number > 0 (got {latent_noise_std!r})"
            )
    elif latent_noise_std is not None:
        raise ConfigError(f"network.latent_noise_std applies to latent_norm noise only (latent_norm is {latent_norm!r})")
