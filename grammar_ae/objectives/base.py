"""The interface every objective implements, shared by sequence and image models.

A training step with any objective reads::

    enc = encoder(x)                                  # EncoderOutput(mu, logvar)
    z = objective.latent(enc)                         # sample / noisy code in train mode, mean in eval
    with objective.decoding_context():
        decoded = decoder(z)
    rec = ReconstructionTerms(loss=..., squared_error=...)
    terms = objective(enc, z, decoded, rec, decoder)  # terms["loss"] is what is minimised
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, ContextManager

import torch
from torch import Tensor, nn

from grammar_ae.errors import ConfigError, TrainingError, is_number
from grammar_ae.objectives.density import LatentSampler, StandardNormalSampler
from grammar_ae.utils.autograd import double_backward


@contextlib.contextmanager
def _twice_differentiable() -> Iterator[None]:
    with torch.backends.cudnn.flags(enabled=False), double_backward():
        yield


@dataclass
class EncoderOutput:
    """What an encoder returns: the code (B, d) and, for stochastic encoders, its log-variance."""

    mu: Tensor
    logvar: Tensor | None = None


@dataclass
class ReconstructionTerms:
    """The model's reconstruction loss, reduced to a scalar, and optionally the per-element squared errors.

    ``squared_error`` (B, D) is needed by objectives that model the decoder variance (AR-ELBO,
    two-stage VAE); image models fill it in, sequence models usually do not.
    """

    loss: Tensor
    squared_error: Tensor | None = None


class Objective(nn.Module):
    """Base class: deterministic code, identity decoder preparation, no prior.

    Subclasses set ``stochastic_encoder`` (the encoder must return ``logvar``) and
    ``standard_normal_prior`` (samples are decoded from N(0, I)), override :meth:`forward`, and
    where needed :meth:`latent`, :meth:`prepare_decoder` and :meth:`prior_sampler`.
    ``validation_monitor`` is the loss term the trainer judges validation progress by unless
    the run says otherwise. ``uses_reconstruction_loss`` is False for objectives that model the
    likelihood of the squared errors themselves (``rec.loss`` is then only reported).
    ``config`` is the objective's typed dataclass configuration.
    """

    config_class: ClassVar[type]
    stochastic_encoder: ClassVar[bool] = False
    standard_normal_prior: ClassVar[bool] = False
    validation_monitor: ClassVar[str] = "loss"
    uses_reconstruction_loss: ClassVar[bool] = True

    def __init__(self, config: Any, name: str) -> None:
        super().__init__()
        self.config = config
        self.name = name

    @property
    def needs_latent_grad(self) -> bool:
        """True if ``z`` must take part in autograd when decoding (gradient penalty)."""
        return False

    def decoding_context(self) -> ContextManager:
        """Wrap the decoder call in it: when the loss needs a double backward through the
        decoder (gradient penalty), cuDNN (whose RNNs do not support one) is disabled and layers
        with a hand-written backward pass use plain autograd."""
        return _twice_differentiable() if self.needs_latent_grad else contextlib.nullcontext()

    def latent(self, enc: EncoderOutput) -> Tensor:
        """The code passed to the decoder: here always the encoder mean."""
        return enc.mu

    def prepare_decoder(self, decoder: nn.Module) -> nn.Module:
        """Modify the decoder once before training (and before building the optimiser)."""
        return decoder

    def forward(
        self,
        enc: EncoderOutput,
        z: Tensor,
        decoded: Tensor,
        rec: ReconstructionTerms,
        decoder: nn.Module,
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def prior_sampler(self, latent_dim: int) -> LatentSampler | None:
        """The sampler of the training prior, or None when the model has none (use ex-post density)."""
        return StandardNormalSampler(latent_dim) if self.standard_normal_prior else None

    def extra_repr(self) -> str:
        return f"name={self.name!r}, config={self.config}"

    def _require_logvar(self, enc: EncoderOutput) -> Tensor:
        if enc.logvar is None:
            raise ConfigError(
                f"objective {self.name!r} needs a stochastic encoder, but the encoder output has "
                "no logvar (build the model with a stochastic encoder)"
            )
        return enc.logvar

    def _require_squared_error(self, rec: ReconstructionTerms) -> Tensor:
        if rec.squared_error is None:
            raise ConfigError(
                f"objective {self.name!r} needs the per-element squared errors (B, D) in "
                "ReconstructionTerms.squared_error; this model does not provide them"
            )
        if rec.squared_error.dim() != 2:
            raise TrainingError(
                f"objective {self.name!r}: squared_error must have shape (B, D), "
                f"got {tuple(rec.squared_error.shape)}"
            )
        return rec.squared_error


def check_weight(objective: str, field: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is a finite, non-negative number."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"objective {objective!r}: {field} must be a finite number >= 0, got {value!r}")


def check_finite(objective: str, field: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is a finite number."""
    if not is_number(value) or not math.isfinite(value):
        raise ConfigError(f"objective {objective!r}: {field} must be finite, got {value!r}")


def check_positive(objective: str, field: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is a finite number > 0."""
    check_weight(objective, field, value)
    if value <= 0:
        raise ConfigError(f"objective {objective!r}: {field} must be > 0, got {value!r}")


def total(rec: ReconstructionTerms, **weighted_terms: tuple[float, Tensor]) -> dict[str, Tensor]:
    """``{"loss": rec + sum(weight * term), "rec": rec, name: term, ...}`` (terms reported unweighted)."""
    loss = rec.loss
    terms: dict[str, Tensor] = {}
    for key, (weight, value) in weighted_terms.items():
        loss = loss + weight * value
        terms[key] = value
    return {"loss": loss, "rec": rec.loss, **terms}
