"""Sample quality, reconstructions and decoder smoothness of a trained image autoencoder.

Every FID compares generated images with the run's held-out validation images, in the
features of one extractor named in the result: the FID Inception network when its
TorchScript file is given (``inception``) or cached, else the fallback classifier trained
on the run's labelled training images (numbers then only compare within that extractor).

- ``reconstruction_fid``: reconstructions of the validation images (decoded means);
  ``reconstruction_mse``: their mean squared error per pixel ([0, 1] values).
- Samples, one FID per sampler (``samplers`` picks them; all by default), decoded from codes of:
  ``sample_fid_prior`` the model's training prior (a Gaussian fitted on training codes for
  models without one; ``sample_fid_prior_source`` says which), ``sample_fid_standard_normal``
  N(0, I) (any model), ``sample_fid_gaussian`` one full-covariance Gaussian fitted on training
  codes (MVG), ``sample_fid_gmm`` / ``sample_fid_gmm100`` full-covariance GMMs with 10 / 100
  components and ``sample_fid_second_stage`` a second-stage VAE, all fitted on training codes.
- ``interpolation_fid``: spherical mid-points between random pairs of validation codes;
  ``interpolation_fid_random``: the same pairs at a uniform random point t in [0, 1] each.
- ``precision`` / ``recall`` (k-NN) of the prior samples, ``precision_gmm`` / ``recall_gmm`` of
  the GMM-10 samples.
- Decoder smoothness at the validation codes (``grammar_ae.evaluation.smoothness``): ``els``
  and ``expected_gap_1e-2`` / ``expected_gap_1e-3``; for stochastic encoders ``kl`` (nats per
  image, mean over validation images) and ``sigma_z2`` (the encoder variance, mean over images
  and dimensions).
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
from grammar_ae.evaluation.smoothness import expected_gap, expected_local_smoothness
from grammar_ae.models.image.interpolation import slerp
from grammar_ae.models.image.model import to_uint8
from grammar_ae.models.image.run import TrainedImageModel
from grammar_ae.objectives import EncoderOutput
from grammar_ae.objectives.terms import gaussian_kl
from grammar_ae.utils.config_files import config_from_dict
from grammar_ae.utils.download import cache_root
from grammar_ae.utils.progress import progress_bar, warn
from grammar_ae.utils.provenance import provenance

MAX_SAMPLES = 10_000
RELIABLE_IMAGES = 1_000
"""Fewer held-out or generated images than this make the evaluation warn that its numbers mean little."""
GAP_VARIANCES = {"expected_gap_1e-2": 1e-2, "expected_gap_1e-3": 1e-3}
SAMPLERS = ("prior", "standard_normal", "gaussian", "gmm", "gmm100", "second_stage")


@dataclass
class ImageEvaluationConfig:
    """``samples`` generated images per FID (default: as many as validation images, at most 10,000);
    ``samplers``: the sample FIDs to compute (None: all of ``SAMPLERS``); ``smoothness_images``:
    validation codes the smoothness measures use, ``gap_draws`` noise draws per code."""

    samples: int | None = None
    samplers: list[str] | None = None
    gmm_components: int = 10
    large_gmm_components: int = 100
    two_stage_epochs: int = 20
    smoothness_images: int = 1000
    gap_draws: int = 4
    k: int = 3
    inception: str | None = None
    seed: int = 0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> ImageEvaluationConfig:
        options = {key: value for key, value in (options or {}).items() if value is not None}
        config = config_from_dict(cls, options, "image evaluation option")
        if config.samples is not None and config.samples <= config.k:
            raise ConfigError(f"samples {config.samples}: need more than k = {config.k} generated images")
        counts = ("gmm_components", "large_gmm_components", "two_stage_epochs", "smoothness_images", "gap_draws")
        if any(getattr(config, name) < 1 for name in counts):
            raise ConfigError(f"{', '.join(counts)} must be >= 1")
        config.samplers = list(SAMPLERS if config.samplers is None else config.samplers)
        unknown = sorted(set(config.samplers) - set(SAMPLERS))
        if unknown:
            raise ConfigError(f"sampler(s) {', '.join(unknown)} unknown; expected some of {', '.join(SAMPLERS)}")
        return config

    def sampler_fits(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Each chosen sampler's result key -> (sampler kind, fitter options)."""
        fits = {
            "prior": ("prior", {}),
            "standard_normal": ("standard-normal", {}),
            "gaussian": ("gaussian", {}),
            "gmm": ("gmm", {"components": self.gmm_components, "seed": self.seed}),
            "gmm100": ("gmm", {"components": self.large_gmm_components, "seed": self.seed}),
            "second_stage": ("two-stage", {"epochs": self.two_stage_epochs, "seed": self.seed}),
        }
        return {f"sample_fid_{name}": fits[name] for name in self.samplers}


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
    codes = run.encode_distribution(validation.images)
    reconstructions, reconstruction_mse = _reconstructions(run, validation.images, codes.mu)
    pairs = _pairs(len(validation), count, rng)
    steps: dict[str, Callable[[], torch.Tensor]] = {"reconstruction_fid": lambda: reconstructions}
    for key, (kind, fit) in config.sampler_fits().items():
        steps[key] = lambda kind=kind, fit=fit: run.samples(kind, count, config.seed, fit)
    steps["interpolation_fid"] = lambda: run.generate(_interpolate(codes.mu, pairs, torch.full((count, 1), 0.5)))
    steps["interpolation_fid_random"] = lambda: run.generate(_interpolate(codes.mu, pairs, torch.from_numpy(rng.random((count, 1)))))
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
    with progress_bar("image evaluation", total=len(steps) + 2, enabled=progress) as advance:
        extractor = feature_extractor(run, config.inception)
        comparison = _Comparison(extractor, validation.images, config.k)
        advance(status=extractor.name)
        features: dict[str, np.ndarray] = {}
        for key, generate in steps.items():
            result[key], features[key] = comparison.fid(generate())
            advance(status=key)
        result.update({"reconstruction_mse": reconstruction_mse, **_smoothness(run, codes, config)})
        advance(status="smoothness")
    result["sample_fid_prior_source"] = run.prior_name()
    for suffix, key in (("", "sample_fid_prior"), ("_gmm", "sample_fid_gmm")):
        if key in features:
            result[f"precision{suffix}"], result[f"recall{suffix}"] = comparison.precision_recall(features[key])
    if objective == "gmm" and validation.labels is not None:
        prior = run.model.objective.prior
        clusters = prior.component_of(codes.mu.to(prior.means.device)).cpu()
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


def _pairs(n: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random pairs of distinct indices below ``n``."""
    first = rng.integers(n, size=count)
    return first, (first + rng.integers(1, n, size=count)) % n


def _interpolate(codes: torch.Tensor, pairs: tuple[np.ndarray, np.ndarray], t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation at ``t`` (count, 1) between the codes of each pair."""
    return slerp(codes[pairs[0]], codes[pairs[1]], t.to(codes.dtype))


def _reconstructions(run: TrainedImageModel, images: np.ndarray, means: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``images`` decoded from their latent ``means``: as uint8 images, and their mean squared
    error per pixel ([0, 1] values)."""
    decoded = run.decode(means)
    target = torch.from_numpy(images).float() / 255.0
    return to_uint8(decoded), float((decoded - target).pow(2).mean())


def _smoothness(run: TrainedImageModel, codes: EncoderOutput, config: ImageEvaluationConfig) -> dict[str, float]:
    """``els``, the expected gaps and, for stochastic encoders, ``kl`` and ``sigma_z2``."""
    shown = codes.mu[: config.smoothness_images].to(run.device)
    decoder = run.model.decoder
    result = {"els": expected_local_smoothness(decoder, shown)}
    generator = torch.Generator().manual_seed(config.seed)
    for key, variance in GAP_VARIANCES.items():
        result[key] = expected_gap(decoder, shown, variance, config.gap_draws, generator)
    if codes.logvar is not None:
        result["kl"] = float(gaussian_kl(codes.mu.double(), codes.logvar.double()))
        result["sigma_z2"] = float(codes.logvar.double().exp().mean())
    return result
