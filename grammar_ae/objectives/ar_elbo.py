"""AR-ELBO: the VAE loss with the decoder variance replaced by its maximum-likelihood value.

With squared errors e_bd = (x_bd - mu_bd)^2 over a batch of B samples and D data dimensions
(constants dropped, E = mean over the batch):

- ``iso-i``:  (D/2) ln( E_b sum_d e_bd / D )          one variance for all samples and elements
- ``iso-d``:  (D/2) E_b ln( sum_d e_bd / D + eps )     one variance per sample
- ``diag-i``: (1/2) sum_d ln( E_b e_bd + eps )          one variance per element
- ``diag-d``: (1/2) sum_d E_b ln( e_bd + eps )          one variance per sample and element

eps = 1e-6. The isotropic forms use the ML variance ||x - mu||^2 / D, which differs from
ln ||x - mu||^2 by the constant (D/2) ln D. The KL term is the VAE's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.base import EncoderOutput, ReconstructionTerms, check_weight
from grammar_ae.objectives.vae import GaussianEncoderObjective

LOG_EPS = 1e-6
VARIANTS = ("iso-i", "iso-d", "diag-i", "diag-d")


def ar_nll(squared_error: Tensor, variant: str) -> Tensor:
    """The variance-free reconstruction term of one AR-ELBO variant (see the module docstring)."""
    dim = squared_error.shape[1]
    if variant == "iso-i":
        return 0.5 * dim * (squared_error.sum(dim=1).mean() / dim).log()
    if variant == "iso-d":
        return 0.5 * dim * (squared_error.sum(dim=1) / dim + LOG_EPS).log().mean()
    if variant == "diag-i":
        return 0.5 * (squared_error.mean(dim=0) + LOG_EPS).log().sum()
    if variant == "diag-d":
        return 0.5 * (squared_error + LOG_EPS).log().sum(dim=1).mean()
    raise unknown_variant(variant)


def unknown_variant(variant: str) -> ConfigError:
    return ConfigError(f"AR-ELBO variant {variant!r} is unknown; expected one of {', '.join(VARIANTS)}")


def check_variant(variant: str) -> None:
    """ConfigError unless ``variant`` is one of ``VARIANTS``."""
    if variant not in VARIANTS:
        raise unknown_variant(variant)


@dataclass
class ARELBOConfig:
    variant: str = "iso-i"
    kl_weight: float = 1.0


class ARELBOObjective(GaussianEncoderObjective):
    """Loss = AR term + kl_weight * KL; ``rec`` reports the model's standard loss for comparison."""

    config_class = ARELBOConfig
    uses_reconstruction_loss: ClassVar[bool] = False

    def __init__(self, config: ARELBOConfig, name: str = "ar-elbo") -> None:
        check_variant(config.variant)
        check_weight(name, "kl_weight", config.kl_weight)
        super().__init__(config, name)

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        return self.likelihood_terms(ar_nll(self._require_squared_error(rec), self.config.variant), enc, rec)
