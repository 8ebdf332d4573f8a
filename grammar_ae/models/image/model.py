"""Image autoencoders: the convolutional networks of `grammar_ae.models.image.networks` with any
objective of the regularizer core, trained on uint8 image batches.

A model is described by a JSON-like spec, stored in checkpoints so that the model can be
rebuilt from them::

    {"kind": "image", "image_shape": [C, H, W], "latent_dim": 16, "width": 0.0625,
     "objective": {"name": "rae-l2", ...objective settings}}
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import Tensor

from grammar_ae.errors import ConfigError, DataError
from grammar_ae.models.image.networks import ConvDecoder, ConvEncoder, ConvNetConfig
from grammar_ae.models.base import AutoEncoder
from grammar_ae.objectives import OBJECTIVES, Objective, ReconstructionTerms, build_objective, config_of

KIND = "image"


class ImageAutoEncoder(AutoEncoder):
    """Batches are uint8 images (B, C, H, W); REC is the per-pixel mean squared error of [0, 1] values."""

    def __init__(self, network: ConvNetConfig, objective: Objective):
        super().__init__(ConvEncoder(network), ConvDecoder(network), objective, network.latent_dim)
        self.network = network

    def inputs(self, batch: Tensor) -> Tensor:
        if batch.dtype != torch.uint8 or batch.dim() != 4:
            raise DataError(f"image batches must be uint8 (B, C, H, W), got {batch.dtype} {tuple(batch.shape)}")
        return batch.float() / 255.0

    def reconstruction(self, decoded: Tensor, batch: Tensor) -> ReconstructionTerms:
        squared_error = (decoded.float() - self.inputs(batch)).pow(2).flatten(1)
        return ReconstructionTerms(loss=squared_error.mean(), squared_error=squared_error)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Decoded images as uint8 (B, C, H, W), ready for the feature extractors."""
        return self.decode(z).mul(255.0).round_().clamp_(0, 255).to(torch.uint8)

    @property
    def spec(self) -> dict[str, Any]:
        """The spec that rebuilds this model (with the objective's full settings)."""
        shape = [self.network.channels, self.network.image_size, self.network.image_size]
        return {
            "kind": KIND,
            "image_shape": shape,
            "latent_dim": self.network.latent_dim,
            "width": self.network.width,
            "objective": config_of(self.objective),
        }


def image_model_spec(
    image_shape: tuple[int, int, int], latent_dim: int, objective: str, width: float = 1.0, **overrides: Any
) -> dict[str, Any]:
    """A spec for ``build_image_model``; ``overrides`` are settings of the objective."""
    return {
        "kind": KIND,
        "image_shape": [int(d) for d in image_shape],
        "latent_dim": int(latent_dim),
        "width": float(width),
        "objective": {"name": objective, **overrides},
    }


def build_image_model(spec: dict[str, Any]) -> ImageAutoEncoder:
    """The model a spec describes (see the module docstring)."""
    if spec.get("kind", KIND) != KIND:
        raise ConfigError(f"image model spec: kind is {spec['kind']!r}, expected {KIND!r}")
    missing = [key for key in ("image_shape", "latent_dim", "objective") if key not in spec]
    if missing:
        raise ConfigError(f"image model spec: missing {', '.join(missing)}")
    shape, latent_dim = spec["image_shape"], spec["latent_dim"]
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"image model spec: image_shape {shape} must be [channels, side, side]")
    settings = dict(spec["objective"])
    name = settings.pop("name", None)
    if name not in OBJECTIVES:
        raise ConfigError(f"image model spec: objective {name!r} is unknown; expected one of {', '.join(OBJECTIVES)}")
    if "latent_dim" in {f.name for f in fields(OBJECTIVES[name].config_class)}:
        settings.setdefault("latent_dim", latent_dim)
    objective = build_objective(name, **settings)
    network = ConvNetConfig(
        channels=shape[0],
        image_size=shape[1],
        latent_dim=latent_dim,
        width=spec.get("width", 1.0),
        stochastic=objective.stochastic_encoder,
    )
    return ImageAutoEncoder(network, objective)
