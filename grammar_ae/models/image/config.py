"""Settings of an image run (``grammar-ae train --dataset``) and of its network.

The data of a run is the chosen split of the data set (``split="test"`` uses the test split
alone), optionally a seeded random subset of ``limit`` images, split again by a seeded shuffle
into training and validation parts (``grammar_ae.models.image.data``). Defaults: see
``grammar_ae.models.image.presets``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from grammar_ae.data.images.sources import SPLITS, get_source
from grammar_ae.errors import ConfigError, is_number
from grammar_ae.models.image.latent import check_latent_settings
from grammar_ae.models.image.presets import (
    BATCH_SIZE,
    LATENT_DIMS,
    PUBLISHED_EPOCHS,
    SCHEDULE,
    default_width,
    split_image_settings,
)
from grammar_ae.objectives import OBJECTIVES, objective_config
from grammar_ae.training.run_settings import RunSettings
from grammar_ae.utils.config_files import config_from_dict


@dataclass
class ImageNetworkConfig:
    """The settable parts of the convolutional networks: latent size, ``width`` (a multiplier of
    every filter count), ``depth`` (each convolution repeated that many times, the strided one
    last) and what the encoder does to its code (``grammar_ae.models.image.latent``)."""

    CHANGEABLE: ClassVar[tuple[str, ...]] = ("depth", "latent_norm", "latent_noise_std", "latent_layer")

    latent_dim: int
    width: float = 1.0
    depth: int = 1
    latent_norm: str = "none"
    latent_noise_std: float | None = None
    latent_layer: str = "none"

    def __post_init__(self) -> None:
        for name in ("latent_dim", "depth"):
            value = getattr(self, name)
            if not is_number(value, integer=True) or value < 1:
                raise ConfigError(f"network {name} {value!r}: expected an integer >= 1")
        if not is_number(self.width) or not self.width > 0:
            raise ConfigError(f"network width {self.width!r}: expected a number > 0 (e.g. 0.0625)")
        self.width = float(self.width)
        check_latent_settings(self.latent_norm, self.latent_noise_std, self.latent_layer)

    def changed_settings(self) -> dict[str, Any]:
        """The settings of ``CHANGEABLE`` that differ from their defaults (older specs lack them all)."""
        defaults = {field.name: field.default for field in fields(self)}
        return {name: getattr(self, name) for name in self.CHANGEABLE if getattr(self, name) != defaults[name]}


@dataclass
class ImageRunConfig(RunSettings):
    """Settings of one image run; None / empty values are filled in by :meth:`resolved`."""

    kind = "image"
    schedule = SCHEDULE

    dataset: str = "digits"
    model: str = "rae-l2"
    split: str = "train"
    data: str | None = None
    batch_size: int = BATCH_SIZE

    def resolved(self, started_network: dict[str, Any] | None = None) -> ImageRunConfig:
        """A checked copy with the data set's defaults filled in. ``started_network``: the
        network settings of the run being resumed, which stand in for the defaults (so a run
        keeps its width on any device)."""
        get_source(self.dataset)
        if self.model not in OBJECTIVES:
            raise ConfigError(f"image model {self.model!r} is unknown; expected one of {', '.join(OBJECTIVES)}")
        if self.split not in SPLITS:
            raise ConfigError(f"split {self.split!r}: expected one of {', '.join(SPLITS)}")
        objective_config(self.model, **split_image_settings(self.model, self.objective)[0])
        defaults = started_network or {"latent_dim": LATENT_DIMS[self.dataset], "width": default_width(self.device)}
        network = {**defaults, **self.network}
        config_from_dict(ImageNetworkConfig, network, "network setting")
        return replace(
            self,
            data=None if self.data is None else str(self.data),
            epochs=self.epochs or PUBLISHED_EPOCHS[self.dataset],
            network=network,
        )

    def network_config(self) -> ImageNetworkConfig:
        return ImageNetworkConfig(**self.network)
