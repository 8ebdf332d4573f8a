"""Deterministic autoencoders: AE, AE-L2 and the RAE family (z term plus L2 / GP / SN)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.base import EncoderOutput, Objective, ReconstructionTerms, check_weight, total
from grammar_ae.objectives.terms import apply_spectral_norm, gradient_penalty, half_squared_norm, parameter_l2


@dataclass
class RAEConfig:
    """REC + beta * ||z||^2 / 2 + l2_weight * L2(decoder) + gp_weight * GP, optionally with SN.

    All zero / False is the plain AE. Terms combine freely.
    """

    beta: float = 0.0
    l2_weight: float = 0.0
    gp_weight: float = 0.0
    spectral_norm: bool = False


class RAEObjective(Objective):
    """AE, AE-L2 and RAE-{L2, GP, SN}; samples come from ex-post density estimation (no prior)."""

    config_class = RAEConfig

    def __init__(self, config: RAEConfig, name: str = "rae") -> None:
        for field in ("beta", "l2_weight", "gp_weight"):
            check_weight(name, field, getattr(config, field))
        if not isinstance(config.spectral_norm, bool):
            raise ConfigError(f"objective {name!r}: spectral_norm must be true or false, got {config.spectral_norm!r}")
        super().__init__(config, name)
        self.covered_by_spectral_norm: list[str] = []

    @property
    def needs_latent_grad(self) -> bool:
        return self.config.gp_weight > 0

    def prepare_decoder(self, decoder: nn.Module) -> nn.Module:
        if self.config.spectral_norm:
            self.covered_by_spectral_norm = apply_spectral_norm(decoder)
        return decoder

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        cfg = self.config
        terms: dict[str, tuple[float, Tensor]] = {}
        if cfg.beta > 0:
            terms["z_norm"] = (cfg.beta, half_squared_norm(z))
        if cfg.l2_weight > 0:
            terms["l2"] = (cfg.l2_weight, parameter_l2(decoder))
        if cfg.gp_weight > 0:
            terms["gp"] = (cfg.gp_weight, self._gradient_penalty(decoded, z, decoder))
        return total(rec, **terms)

    def _gradient_penalty(self, decoded: Tensor, z: Tensor, decoder: nn.Module) -> Tensor:
        """The penalty on the training graph; outside it (validation under no_grad) z is decoded
        again with a graph of its own, so the validation loss still includes the term."""
        if z.requires_grad and decoded.requires_grad:
            return gradient_penalty(decoded, z)
        training_graph = torch.is_grad_enabled()
        with torch.enable_grad(), self.decoding_context():
            z_leaf = z.detach().requires_grad_()
            penalty = gradient_penalty(decoder(z_leaf), z_leaf, create_graph=training_graph)
        return penalty if training_graph else penalty.detach()
