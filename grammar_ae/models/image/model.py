"""Image autoencoders: the convolutional networks of `grammar_ae.models.image.networks` with any
objective of the regularizer core, trained on uint8 image batches.

A model is described by an :class:`ImageModelSpec`, stored in checkpoints as a JSON-like dict
so that the model can be rebuilt from them::

    {"family": "image", "image_shape": [C, H, W], "latent_dim": 16, "width": 0.0625,
     "objective": {"name": "rae-l2", ...objective settings}}

plus the network settings that differ from their defaults (``depth``, ``latent_norm``,
``latent_noise_std``, ``latent_layer``) and ``"reconstruction": "bce"`` when REC is the binary
cross-entropy: specs of older runs, which lack them, describe the same models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from grammar_ae.errors import ConfigError, DataError
from grammar_ae.models.base import AutoEncoder
from grammar_ae.models.image.config import ImageNetworkConfig
from grammar_ae.models.image.networks import ConvDecoder, ConvEncoder, ConvNetConfig
from grammar_ae.models.image.presets import OBJECTIVE_WEIGHTS, RECONSTRUCTIONS
from grammar_ae.objectives import OBJECTIVES, ReconstructionTerms, build_objective, config_of
from grammar_ae.objectives.terms import binary_cross_entropy
from grammar_ae.training.checkpoint import FAMILY_KEY

FAMILY = "image"


@dataclass(frozen=True)
class ImageModelSpec:
    """Image shape (C, H, W), network settings, the objective ``{"name": ..., **settings}`` and the
    reconstruction loss (``mse`` or ``bce``)."""

    image_shape: tuple[int, int, int]
    network: ImageNetworkConfig
    objective: dict[str, Any]
    reconstruction: str = "mse"

    def __post_init__(self) -> None:
        shape = self.image_shape
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ConfigError(f"image model spec: image_shape {list(shape)} must be [channels, side, side]")
        if self.objective.get("name") not in OBJECTIVES:
            raise ConfigError(
                f"image model spec: objective {self.objective.get('name')!r} is unknown; "
                f"expected one of {', '.join(OBJECTIVES)}"
            )
        if self.reconstruction not in RECONSTRUCTIONS:
            raise ConfigError(f"image model spec: reconstruction {self.reconstruction!r}; expected one of {', '.join(RECONSTRUCTIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            FAMILY_KEY: FAMILY,
            "image_shape": [int(d) for d in self.image_shape],
            "latent_dim": self.network.latent_dim,
            "width": self.network.width,
            **self.network.changed_settings(),
            **({"reconstruction": self.reconstruction} if self.reconstruction != "mse" else {}),
            "objective": dict(self.objective),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ImageModelSpec:
        if spec.get(FAMILY_KEY, FAMILY) != FAMILY:
            raise ConfigError(f"image model spec: {FAMILY_KEY} is {spec[FAMILY_KEY]!r}, expected {FAMILY!r}")
        missing = [key for key in ("image_shape", "latent_dim", "objective") if key not in spec]
        if missing:
            raise ConfigError(f"image model spec: missing {', '.join(missing)}")
        optional = {name: spec[name] for name in ImageNetworkConfig.CHANGEABLE if name in spec}
        network = ImageNetworkConfig(latent_dim=spec["latent_dim"], width=spec.get("width", 1.0), **optional)
        return cls(tuple(spec["image_shape"]), network, dict(spec["objective"]), spec.get("reconstruction", "mse"))

    def build(self) -> ImageAutoEncoder:
        """The model this spec describes."""
        settings = dict(self.objective)
        name = settings.pop("name")
        sizes = {"latent_dim": self.network.latent_dim, "data_dim": math.prod(self.image_shape)}
        for field in fields(OBJECTIVES[name].config_class):
            if field.name in sizes:
                settings.setdefault(field.name, sizes[field.name])
        return ImageAutoEncoder(self, build_objective(name, **settings))


def image_model_spec(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    objective: str,
    width: float = 1.0,
    *,
    network: dict[str, Any] | None = None,
    reconstruction: str = "mse",
    **overrides: Any,
) -> ImageModelSpec:
    """A spec with the objective's reference image weights, then ``overrides`` (its settings);
    ``network``: further network settings (depth, latent_norm, ...)."""
    sizes = ImageNetworkConfig(latent_dim=latent_dim, width=width, **(network or {}))
    settings = {**OBJECTIVE_WEIGHTS.get(objective, {}), **overrides}
    return ImageModelSpec(tuple(int(d) for d in image_shape), sizes, {"name": objective, **settings}, reconstruction)


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] images as uint8 values, rounded and clipped."""
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class ImageAutoEncoder(AutoEncoder):
    """Batches are uint8 images (B, C, H, W); REC is the per-pixel mean squared error (or binary
    cross-entropy) of [0, 1] values."""

    def __init__(self, spec: ImageModelSpec, objective):
        channels, side, _ = spec.image_shape
        network = ConvNetConfig(
            channels=channels, image_size=side, stochastic=objective.stochastic_encoder, **asdict(spec.network)
        )
        super().__init__(ConvEncoder(network), ConvDecoder(network), objective, network.latent_dim)
        self.network = network
        self._spec = spec

    @property
    def spec(self) -> ImageModelSpec:
        """The spec that rebuilds this model, with the objective's full settings."""
        return replace(self._spec, objective=config_of(self.objective))

    def inputs(self, batch: Tensor) -> Tensor:
        if batch.dtype != torch.uint8 or batch.dim() != 4:
            raise DataError(f"image batches must be uint8 (B, C, H, W), got {batch.dtype} {tuple(batch.shape)}")
        return batch.float() / 255.0

    def reconstruction(self, decoded: Tensor, batch: Tensor) -> ReconstructionTerms:
        target = self.inputs(batch)
        squared_error = (decoded.float() - target).pow(2).flatten(1)
        if self._spec.reconstruction == "bce":
            loss = binary_cross_entropy(decoded.float(), target).mean()
        else:
            loss = squared_error.mean()
        return ReconstructionTerms(loss=loss, squared_error=squared_error)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Decoded images as uint8 (B, C, H, W), ready for the feature extractors."""
        return to_uint8(self.decode(z))
