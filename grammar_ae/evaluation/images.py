"""Sample quality of a trained image autoencoder (the RAE paper's table).

Every FID compares generated images with the run's held-out validation images, in the
features of one extractor named in the result: the FID Inception network when its
TorchScript file is given (``inception``) or cached, else the fallback classifier trained
on the run's labelled training images (numbers then only compare within that extractor).

- ``reconstruction_fid``: reconstructions of the validation images.
- ``sample_fid_gaussian``: decoded samples of the model's prior (VAE-like models, WAE and the
  GMM prior), or of one Gaussian fitted on training codes for deterministic autoencoders;
  ``sample_fid_gaussian_source`` says which.
- ``sample_fid_gmm``: samples of an ex-post 10-component GMM fitted on training codes.
- ``sample_fid_two_stage`` (2svae only): samples of the second-stage VAE fitted on training codes.
- ``interpolation_fid``: spherical mid-points between random pairs of validation codes.
- ``precision`` / ``recall`` (k-NN, of the ``sample_fid_gaussian`` samples) and
  ``precision_gmm`` / ``recall_gmm``.
- ``clustering_accuracy`` (gmm only): prior component of each validation code vs its label.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch

from grammar_ae.errors import ConfigError
from grammar_ae.evaluation.image_features import (
    INCEPTION_FILE,
    ClassifierFeatures,
    FeatureExtractor,
    InceptionFeatures,
    extract_features,
)
from grammar_ae.evaluation.image_metrics import GaussianStatistics, clustering_accuracy, frechet_distance, precision_recall
from grammar_ae.models.image.interpolation import slerp
from grammar_ae.models.image.run import TrainedImageModel
from grammar_ae.utils.config_files import config_from_dict
from grammar_ae.utils.download import cache_root
from grammar_ae.utils.progress import progress_bar, warn
from grammar_ae.utils.provenance import provenance

MAX_SAMPLES = 10_000
RELIABLE_IMAGES = 1_000
"""Fewer held-out or generated images than this make the evaluation warn that its numbers mean little."""


@dataclass
class ImageEvaluationConfig:
    """``samples`` generated images per FID (default: as many as validation images, at most 10,000)."""

    samples: int | None = None
    gmm_components: int = 10
    two_stage_epochs: int = 20
    k: int = 3
    inception: str | None = None
    seed: int = 0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> ImageEvaluationConfig:
        options = {key: value for key, value in (options or {}).items() if value is not None}
        config = config_from_dict(cls, options, "image evaluation option")
        if config.samples is not None and config.samples <= config.k:
            raise ConfigError(f"samples {config.samples}: need more than k = {config.k} generated images")
        if config.gmm_components < 1 or config.two_stage_epochs < 1:
            raise ConfigError("gmm_components and two_stage_epochs must be >= 1")
        return config


def feature_extractor(run: TrainedImageModel, inception: str | None) -> FeatureExtractor:
    """The Inception network (given path, else the cached file), else the fallback classifier."""
    if inception is not None or (cache_root() / INCEPTION_FILE).is_file():
        return InceptionFeatures(inception, device=run.device)
    return ClassifierFeatures.for_dataset(run.data.train)


class _Comparison:
    """Generated images against the validation images, in one extractor's features."""

    def __init__(self, extractor: FeatureExtractor, real: np.ndarray, k: int):
        self.extractor, self.k = extractor, k
        self.real = extract_features(extractor, real)
        self.real_statistics = GaussianStatistics.of(self.real)

    def fid(self, generated: torch.Tensor) -> tuple[float, np.ndarray]:
        features = extract_features(self.extractor, generated)
        return frechet_distance(self.real_statistics, GaussianStatistics.of(features)), features

    def precision_recall(self, features: np.ndarray) -> tuple[float, float]:
        result = precision_recall(self.real, features, self.k)
        return result.precision, result.recall


def evaluate_image_run(run: TrainedImageModel, options: dict[str, Any] | None = None, progress: bool = True) -> dict:
    """The metrics of the module docstring for ``run``."""
    config = ImageEvaluationConfig.from_options(options)
    started = time.perf_counter()
    objective = run.model.objective.name
    validation = run.data.validation
    count = config.samples or min(len(validation), MAX_SAMPLES)
    if min(len(validation), count) < RELIABLE_IMAGES:
        warn(
            f"{len(validation):,} held-out and {count:,} generated images: FID, precision and recall "
            f"are unreliable below {RELIABLE_IMAGES:,} images each"
        )
    rng = np.random.default_rng(config.seed)
    gmm_fit = {"components": config.gmm_components, "seed": config.seed}
    two_stage_fit = {"epochs": config.two_stage_epochs, "seed": config.seed}
    steps: dict[str, Callable[[], torch.Tensor]] = {
        "reconstruction_fid": lambda: run.reconstruct(validation.images),
        "sample_fid_gaussian": lambda: run.samples("prior", count, config.seed),
        "sample_fid_gmm": lambda: run.samples("gmm", count, config.seed, gmm_fit),
        "interpolation_fid": lambda: _interpolation_midpoints(run, validation.images, count, rng),
    }
    if objective == "2svae":
        steps["sample_fid_two_stage"] = lambda: run.samples("two-stage", count, config.seed, two_stage_fit)
    result: dict[str, Any] = {
        "run": str(run.run_dir),
        "checkpoint": str(run.checkpoint_file),
        "checkpoint_sha256": run.checkpoint_sha256,
        "epoch": run.epoch,
        "model": objective,
        "dataset": run.config.dataset,
        "split": run.config.split,
        "data_sha256": run.record["data_sha256"],
    }
    with progress_bar("image evaluation", total=len(steps) + 1, enabled=progress) as advance:
        extractor = feature_extractor(run, config.inception)
        comparison = _Comparison(extractor, validation.images, config.k)
        advance(status=extractor.name)
        features: dict[str, np.ndarray] = {}
        for key, generate in steps.items():
            result[key], features[key] = comparison.fid(generate())
            advance(status=key)
    result["sample_fid_gaussian_source"] = run.prior_name()
    result["precision"], result["recall"] = comparison.precision_recall(features["sample_fid_gaussian"])
    result["precision_gmm"], result["recall_gmm"] = comparison.precision_recall(features["sample_fid_gmm"])
    if objective == "gmm" and validation.labels is not None:
        prior = run.model.objective.prior
        clusters = prior.component_of(run.encode(validation.images).to(prior.means.device)).cpu()
        result["clustering_accuracy"] = clustering_accuracy(validation.labels, clusters.numpy())
    result.update(
        {
            "feature_extractor": extractor.name,
            "feature_extractor_accuracy": getattr(extractor, "validation_accuracy", None),
            "real_images": len(validation),
            "generated_images": count,
            "config": asdict(config),
            "seconds": round(time.perf_counter() - started, 2),
            "provenance": provenance(),
        }
    )
    return result


def _interpolation_midpoints(run: TrainedImageModel, images: np.ndarray, count: int, rng: np.random.Generator) -> torch.Tensor:
    """Decoded spherical mid-points between ``count`` random pairs of distinct images' codes."""
    first = rng.integers(len(images), size=count)
    second = (first + rng.integers(1, len(images), size=count)) % len(images)
    codes = run.encode(images)
    return run.generate(slerp(codes[first], codes[second], 0.5))
