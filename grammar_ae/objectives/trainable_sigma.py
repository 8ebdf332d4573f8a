"""Gaussian VAE with a trainable decoder covariance Sigma_x in the four parameterisations of the
AR-ELBO study, where the AR-ELBO substitutes each one's maximum-likelihood value instead:

- ``iso-i``:  sigma^2 I, one trainable scalar (the two-stage VAE's gamma)
- ``iso-d``:  sigma^2(z) I, a dense head on the code: z -> hidden -> ReLU -> 1
- ``diag-i``: diag(sigma_1^2 .. sigma_D^2), D trainable values
- ``diag-d``: diag(sigma^2(z)), a dense head z -> hidden -> ReLU -> D

Loss = (1/2) sum_d ((x_d - mu_d)^2 / sigma_d^2 + ln sigma_d^2) + kl_weight * KL, mean over the
batch, constants dropped. sigma^2 = exp(s) (+ 1e-6 except for ``iso-i``, as the AR-ELBO adds it
inside its logarithms); s starts at ``init_log_variance`` for every variant (the heads' last
layer starts at zero). At the optimal sigma^2 the loss is the AR-ELBO's plus D / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.ar_elbo import LOG_EPS, check_variant
from grammar_ae.objectives.base import EncoderOutput, ReconstructionTerms, check_finite, check_weight
from grammar_ae.objectives.terms import gaussian_nll
from grammar_ae.objectives.vae import GaussianEncoderObjective


@dataclass
class TrainableSigmaConfig:
    """``latent_dim`` and ``data_dim`` (D) are set by the model family; the heads need them."""

    variant: str = "iso-i"
    kl_weight: float = 1.0
    init_log_variance: float = 0.0
    hidden: int = 128
    latent_dim: int = 0
    data_dim: int = 0


class TrainableSigmaObjective(GaussianEncoderObjective):
    """Owns the variance parameters (or head): the optimiser must include this objective's parameters."""

    config_class = TrainableSigmaConfig
    uses_reconstruction_loss: ClassVar[bool] = False

    def __init__(self, config: TrainableSigmaConfig, name: str = "trainable-sigma") -> None:
        check_variant(config.variant)
        check_weight(name, "kl_weight", config.kl_weight)
        check_finite(name, "init_log_variance", config.init_log_variance)
        super().__init__(config, name)
        variant = config.variant
        outputs = 1 if variant.startswith("iso") else config.data_dim
        if variant.endswith("-d"):
            if min(config.latent_dim, config.hidden, outputs) < 1:
                raise ConfigError(f"objective {name!r} {variant}: latent_dim, hidden and data_dim must be >= 1")
            self.head = nn.Sequential(nn.Linear(config.latent_dim, config.hidden), nn.ReLU(), nn.Linear(config.hidden, outputs))
            nn.init.zeros_(self.head[-1].weight)
            nn.init.constant_(self.head[-1].bias, config.init_log_variance)
        else:
            if outputs < 1:
                raise ConfigError(f"objective {name!r} {variant}: data_dim must be >= 1")
            self.log_variance = nn.Parameter(torch.full((outputs,), float(config.init_log_variance)))

    def variance(self, z: Tensor) -> Tensor:
        """sigma^2: (1,) for iso-i, (D,) for diag-i, (B, 1) for iso-d, (B, D) for diag-d."""
        log_variance = self.head(z) if self.config.variant.endswith("-d") else self.log_variance
        return log_variance.exp() + (0.0 if self.config.variant == "iso-i" else LOG_EPS)

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        variance = self.variance(z)
        nll = gaussian_nll(self._require_squared_error(rec), variance)
        return self.likelihood_terms(nll, enc, rec, sigma_x2=variance.detach().mean())
