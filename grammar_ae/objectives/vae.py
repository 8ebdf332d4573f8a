"""VAE: a stochastic encoder, reparameterised sample, KL to N(0, I)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from grammar_ae.objectives.base import (
    EncoderOutput,
    Objective,
    ReconstructionTerms,
    check_weight,
    total,
)
from grammar_ae.objectives.terms import gaussian_kl, reparameterise


class GaussianEncoderObjective(Objective):
    """Shared by VAE-like objectives: z = mu + noise * sigma * eps in training, mu in eval; N(0, I) prior."""

    stochastic_encoder: ClassVar[bool] = True
    standard_normal_prior: ClassVar[bool] = True
    noise_scale: float = 1.0

    def latent(self, enc: EncoderOutput) -> Tensor:
        logvar = self._require_logvar(enc)
        if not self.training:
            return enc.mu
        return reparameterise(enc.mu, logvar, self.noise_scale)

    def kl(self, enc: EncoderOutput) -> Tensor:
        return gaussian_kl(enc.mu, self._require_logvar(enc))

    def likelihood_terms(self, nll: Tensor, enc: EncoderOutput, rec: ReconstructionTerms, **reported: Tensor) -> dict[str, Tensor]:
        """Terms of objectives that model the decoder likelihood themselves: loss = nll +
        kl_weight * KL; ``rec`` (the model's standard loss) and ``reported`` are only reported."""
        kl = self.kl(enc)
        return {"loss": nll + self.config.kl_weight * kl, "rec": rec.loss, "nll": nll, "kl": kl, **reported}


@dataclass
class VAEConfig:
    """REC + kl_weight * KL.

    ``encoder_noise_std`` scales eps in the reparameterised sample: 1.0 is the standard VAE;
    the original GVAE code used 0.01; 0 decodes the mean (deterministic encoding). The KL term
    is unchanged by it.
    """

    kl_weight: float = 1.0
    encoder_noise_std: float = 1.0


class VAEObjective(GaussianEncoderObjective):
    config_class = VAEConfig

    def __init__(self, config: VAEConfig, name: str = "vae") -> None:
        check_weight(name, "kl_weight", config.kl_weight)
        check_weight(name, "encoder_noise_std", config.encoder_noise_std)
        super().__init__(config, name)
        self.noise_scale = config.encoder_noise_std

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        return total(rec, kl=(self.config.kl_weight, self.kl(enc)))
