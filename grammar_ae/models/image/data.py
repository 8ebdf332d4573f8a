"""The images of an image run: the chosen split, a seeded subset, split again into training
and validation parts, and the checksum that finds the same images again for evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grammar_ae.data.images.datasets import ImageDataset, load_image_dataset, train_validation_split
from grammar_ae.errors import ConfigError
from grammar_ae.models.image.config import ImageRunConfig


@dataclass(frozen=True)
class RunData:
    """The training and validation images of a run and the checksum of the split they come from."""

    train: ImageDataset
    validation: ImageDataset
    checksum: str


def load_run_data(config: ImageRunConfig) -> RunData:
    """The split named by ``config`` (seeded subset of ``limit`` images), split into train / validation."""
    dataset = load_image_dataset(config.dataset, config.split, config.data)
    checksum = dataset.checksum
    if config.limit is not None:
        if config.limit > len(dataset):
            raise ConfigError(f"limit {config.limit} exceeds the {len(dataset)} images of {config.dataset} ({config.split})")
        chosen = np.random.default_rng(config.seed).choice(len(dataset), config.limit, replace=False)
        dataset = dataset.subset(np.sort(chosen))
    train, validation = train_validation_split(dataset, config.validation_fraction, config.seed)
    return RunData(train, validation, checksum)
