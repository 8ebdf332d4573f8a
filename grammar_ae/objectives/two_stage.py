"""Two-stage VAE, stage 1: a VAE whose Gaussian decoder variance gamma is learned.

Stage 2 (a VAE on the stage-1 codes) is :class:`grammar_ae.objectives.density.TwoStageSampler`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.base import EncoderOutput, ReconstructionTerms, check_weight
from grammar_ae.objectives.terms import learned_variance_nll
from grammar_ae.objectives.vae import GaussianEncoderObjective


@dataclass
class TwoStageConfig:
    """Loss = sum_D (x - x_hat)^2 / (2 gamma) + (D/2) log gamma + kl_weight * KL, gamma learned."""

    kl_weight: float = 1.0
    init_log_gamma: float = 0.0


class TwoStageVAEObjective(GaussianEncoderObjective):
    """Owns the parameter ``log_gamma``: the optimiser must include this objective's parameters."""

    config_class = TwoStageConfig

    def __init__(self, config: TwoStageConfig, name: str = "2svae") -> None:
        check_weight(name, "kl_weight", config.kl_weight)
        if not math.isfinite(config.init_log_gamma):
            raise ConfigError(f"objective {name!r}: init_log_gamma must be finite, got {config.init_log_gamma!r}")
        super().__init__(config, name)
        self.log_gamma = nn.Parameter(torch.tensor(float(config.init_log_gamma)))

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        nll = learned_variance_nll(self._require_squared_error(rec), self.log_gamma)
        kl = self.kl(enc)
        return {
            "loss": nll + self.config.kl_weight * kl,
            "rec": rec.loss,
            "nll": nll,
            "kl": kl,
            "gamma": self.log_gamma.detach().exp(),
        }
