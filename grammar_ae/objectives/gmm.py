"""GMM-prior deterministic autoencoder: REC plus KS (marginal CDFs) and CV (covariance) matching."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from grammar_ae.errors import ConfigError, TrainingError
from grammar_ae.objectives.base import EncoderOutput, Objective, ReconstructionTerms, check_positive, check_weight
from grammar_ae.objectives.gmm_prior import GMMPrior, cv_loss, ks_loss
from grammar_ae.utils import distributed


@dataclass
class GMMConfig:
    """Loss = rec_weight * REC + l_KS * L_KS + l_CV * L_CV with a one-hot-mean mixture prior.

    ``ks_weight`` / ``cv_weight`` left as None are set by :meth:`GMMObjective.calibrate` to
    1 / E[L] over prior batches of the training batch size. ``latent_dim`` may be left None
    and is then taken from ``calibrate`` (or from a loaded state dict).
    """

    components: int = 10
    std: float = 1.0
    mean_scale: float = 1.0
    latent_dim: int | None = None
    rec_weight: float = 1.0
    ks_weight: float | None = None
    cv_weight: float | None = None


class GMMObjective(Objective):
    """The calibrated weights are buffers (``ks_weight``, ``cv_weight``), so they are checkpointed.

    KS and CV are statistics of the batch: in data-parallel training they are computed on
    the global batch (the codes of every process, gathered with their gradients), so N
    processes of batch B / N optimise the loss of one process of batch B. Validation uses
    each process's own batches.

    Validation progress is judged by the reconstruction term: the KS and CV terms carry
    weights of about 1 / (their value on prior samples), so on a finite validation batch
    their noise dwarfs the reconstruction and would stall the learning-rate schedule.
    """

    config_class = GMMConfig
    validation_monitor = "rec"

    def __init__(self, config: GMMConfig, name: str = "gmm") -> None:
        if not isinstance(config.components, int) or config.components < 1:
            raise ConfigError(f"objective {name!r}: components must be an integer >= 1, got {config.components!r}")
        if config.latent_dim is not None and (not isinstance(config.latent_dim, int) or config.latent_dim < 1):
            raise ConfigError(f"objective {name!r}: latent_dim must be an integer >= 1, got {config.latent_dim!r}")
        check_positive(name, "std", config.std)
        check_positive(name, "mean_scale", config.mean_scale)
        check_weight(name, "rec_weight", config.rec_weight)
        for field in ("ks_weight", "cv_weight"):
            if getattr(config, field) is not None:
                check_weight(name, field, getattr(config, field))
        super().__init__(config, name)
        self.register_buffer("ks_weight", torch.tensor(_or_nan(config.ks_weight)))
        self.register_buffer("cv_weight", torch.tensor(_or_nan(config.cv_weight)))
        self.prior: GMMPrior | None = None
        if config.latent_dim is not None:
            self._ensure_prior(config.latent_dim)

    def _ensure_prior(self, latent_dim: int) -> GMMPrior:
        if self.prior is None:
            prior = GMMPrior.one_hot(self.config.components, latent_dim, self.config.std, self.config.mean_scale)
            self.prior = prior.to(self.ks_weight.device)
            self.config.latent_dim = latent_dim
        elif self.prior.dim != latent_dim:
            raise ConfigError(
                f"objective {self.name!r}: latent dimension {latent_dim} does not match the prior's "
                f"{self.prior.dim} (config latent_dim)"
            )
        return self.prior

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        """A checkpoint saved after a lazy ``calibrate`` carries the prior: rebuild it before loading."""
        means = state_dict.get(f"{prefix}prior.means")
        if means is not None and self.prior is None:
            self._ensure_prior(means.shape[1])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def calibrated(self) -> bool:
        return bool(torch.isfinite(self.ks_weight) and torch.isfinite(self.cv_weight))

    @torch.no_grad()
    def calibrate(self, batch_size: int, latent_dim: int, n_batches: int = 100, seed: int = 0) -> dict[str, float]:
        """Set l_KS = 1 / E[L_KS] and l_CV = 1 / E[L_CV] over ``n_batches`` prior batches of ``batch_size``.

        Weights fixed in the config are kept. Returns the expectations and the weights in use.
        """
        prior = self._ensure_prior(latent_dim)
        if batch_size <= latent_dim:
            raise ConfigError(
                f"objective {self.name!r}: the batch size ({batch_size}) must exceed the latent "
                f"dimension ({latent_dim}) for the covariance loss"
            )
        if n_batches < 1:
            raise ConfigError(f"objective {self.name!r}: n_batches must be >= 1, got {n_batches}")
        generator = torch.Generator().manual_seed(seed)
        ks_sum = cv_sum = 0.0
        for _ in range(n_batches):
            z = prior.sample(batch_size, generator)
            ks_sum += float(ks_loss(z, prior))
            cv_sum += float(cv_loss(z, prior))
        expected_ks, expected_cv = ks_sum / n_batches, cv_sum / n_batches
        if self.config.ks_weight is None:
            self.ks_weight.fill_(1.0 / expected_ks)
        if self.config.cv_weight is None:
            self.cv_weight.fill_(1.0 / expected_cv)
        return {
            "expected_ks": expected_ks,
            "expected_cv": expected_cv,
            "ks_weight": float(self.ks_weight),
            "cv_weight": float(self.cv_weight),
        }

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        if not self.calibrated:
            raise TrainingError(
                f"objective {self.name!r}: call calibrate(batch_size, latent_dim) before training "
                "(or set ks_weight and cv_weight in the config)"
            )
        prior = self._ensure_prior(z.shape[1])
        if self.training:  # data-parallel training: the statistics of the global batch
            z = distributed.gather_rows(z)
        if z.shape[0] < 2:
            raise TrainingError(f"objective {self.name!r}: a batch needs at least 2 codes, got {z.shape[0]}")
        ks, cv = ks_loss(z, prior), cv_loss(z, prior)
        loss = self.config.rec_weight * rec.loss + self.ks_weight * ks + self.cv_weight * cv
        return {"loss": loss, "rec": rec.loss, "ks": ks, "cv": cv}

    def prior_sampler(self, latent_dim: int) -> GMMPrior:
        return self._ensure_prior(latent_dim)


def _or_nan(weight: float | None) -> float:
    return math.nan if weight is None else float(weight)
