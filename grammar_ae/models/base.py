"""Shared base class of every autoencoder in the zoo (sequence and image).

A model is an encoder, a decoder, a reconstruction term and an objective from the
regularizer core (`grammar_ae.objectives`); it is what the trainer's ``TrainableModel`` asks for. Subclasses say how a batch becomes the
network input and how the reconstruction error is measured; the objective decides how
the latent is drawn and which regularizers are added.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from grammar_ae.objectives.base import EncoderOutput, Objective, ReconstructionTerms


class AutoEncoder(nn.Module, ABC):
    """encoder: input -> EncoderOutput, decoder: z -> decoded output."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, objective: Objective, latent_dim: int):
        super().__init__()
        self.encoder = encoder
        self.objective = objective
        self.decoder = objective.prepare_decoder(decoder)
        self.latent_dim = latent_dim

    @abstractmethod
    def inputs(self, batch: Any) -> Tensor:
        """The network input of a batch (e.g. one-hot built from integer arrays)."""

    @abstractmethod
    def reconstruction(self, decoded: Tensor, batch: Any) -> ReconstructionTerms:
        """The reconstruction error of ``decoded`` against ``batch``."""

    def encode(self, x: Tensor) -> EncoderOutput:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def decoder_for(self, batch: Any) -> nn.Module:
        """The decoder as the objective sees it (z -> decoded) for this batch; autoregressive
        models bind it to the batch's targets (teacher forcing)."""
        return self.decoder

    def loss(self, batch: Any) -> dict[str, Tensor]:
        """All loss terms of one batch; ``loss`` is the one to minimise."""
        encoded = self.encode(self.inputs(batch))
        z = self.objective.latent(encoded)
        decoder = self.decoder_for(batch)
        with self.objective.decoding_context():
            decoded = decoder(z)
        rec = self.reconstruction(decoded, batch)
        return self.objective(encoded, z, decoded, rec, decoder)

    def forward(self, batch: Any) -> dict[str, Tensor]:
        """The loss terms (what ``DistributedDataParallel`` calls)."""
        return self.loss(batch)

    def before_training(self, batch_size: int) -> None:
        """Called once by the trainer before the first epoch (the GMM prior calibrates its weights)."""
        calibrate = getattr(self.objective, "calibrate", None)
        if calibrate is not None and not self.objective.calibrated:
            calibrate(batch_size, self.latent_dim)

    @torch.no_grad()
    def latent_means(self, batch: Any) -> Tensor:
        """Deterministic latent codes (the encoder mean)."""
        return self.encode(self.inputs(batch)).mu


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
