"""CV-VAE: a deterministic encoder plus fixed-variance Gaussian noise; the KL reduces to ||mu||^2 / 2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from grammar_ae.objectives.base import (
    EncoderOutput,
    Objective,
    ReconstructionTerms,
    check_positive,
    check_weight,
    total,
)
from grammar_ae.objectives.terms import half_squared_norm


@dataclass
class CVVAEConfig:
    """z = mu + eps, eps ~ N(0, noise_std^2 I) in training; loss REC + kl_weight * ||mu||^2 / 2."""

    noise_std: float = 0.7
    kl_weight: float = 1.0


class CVVAEObjective(Objective):
    config_class = CVVAEConfig
    standard_normal_prior: ClassVar[bool] = True

    def __init__(self, config: CVVAEConfig, name: str = "cvvae") -> None:
        check_positive(name, "noise_std", config.noise_std)
        check_weight(name, "kl_weight", config.kl_weight)
        super().__init__(config, name)

    def latent(self, enc: EncoderOutput) -> Tensor:
        if not self.training:
            return enc.mu
        return enc.mu + self.config.noise_std * torch.randn_like(enc.mu)

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        return total(rec, kl=(self.config.kl_weight, half_squared_norm(enc.mu)))
