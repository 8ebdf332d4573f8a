"""The image protocol of the RAE paper (PROTOCOLS section 4): objective weights, epochs and
latent sizes per data set, network width, learning-rate schedule.

Defaults: batch 100, Adam 1e-3 halved when the validation loss stops improving (at most six
times), 100 epochs for MNIST-like sets, CIFAR-10 and SVHN, 70 for CelebA (30 for scikit-learn's
small digits), latent size 16 (MNIST-like and digits), 128 (CIFAR-10, SVHN) or 64 (CelebA).
The network width (a multiplier of every filter count) is 1.0, the paper's networks, for a
run started on CUDA and 1/16 for one started on a CPU, where the full networks take hours
per epoch; a resumed run keeps the width it started with.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from grammar_ae.errors import ConfigError
from grammar_ae.objectives import OBJECTIVES
from grammar_ae.objectives.base import check_weight
from grammar_ae.training.run_settings import PlateauSchedule
from grammar_ae.utils.device import resolve_device

# The reference weights for per-pixel mean squared error as REC; the objectives' own
# defaults hold for the others.
OBJECTIVE_WEIGHTS: dict[str, dict[str, Any]] = {
    "ae-l2": {"l2_weight": 1e-7},
    "rae": {"beta": 5e-4},
    "rae-l2": {"beta": 1e-4, "l2_weight": 1e-7},
    "rae-gp": {"beta": 1e-4, "gp_weight": 0.5e-7},
    "rae-sn": {"beta": 0.009, "spectral_norm": True},
}
PUBLISHED_EPOCHS = {"mnist": 100, "fashion-mnist": 100, "cifar10": 100, "svhn": 100, "celeba": 70, "digits": 30}
LATENT_DIMS = {"mnist": 16, "fashion-mnist": 16, "digits": 16, "cifar10": 128, "svhn": 128, "celeba": 64}
BATCH_SIZE = 100
GPU_WIDTH = 1.0
CPU_WIDTH = 1 / 16
SCHEDULE = PlateauSchedule(factor=0.5, patience=5, min_fraction=1 / 64)
RECONSTRUCTIONS = ("mse", "bce")


def default_width(device: str) -> float:
    """The network width of a new run on ``device`` (see the module docstring)."""
    return GPU_WIDTH if resolve_device(device).type == "cuda" else CPU_WIDTH


def pixel_scale_defaults(model: str, image_shape: tuple[int, ...]) -> dict[str, float]:
    """Weights that put the prior terms on the scale of the per-pixel mean squared error.

    Image REC is the mean over pixels, D times smaller than a per-image sum, so a KL
    weight of 1 (or KS/CV weights calibrated to about 1) would outweigh it and collapse
    the posterior. Dividing the KL by D (VAE, CV-VAE) or multiplying REC by D (GMM prior)
    restores the per-image balance of the published models.
    """
    pixels = float(np.prod(image_shape))
    if model in ("vae", "cvvae"):
        return {"kl_weight": 1.0 / pixels}
    if model == "gmm":
        return {"rec_weight": pixels}
    return {}



def split_image_settings(model: str, settings: dict[str, Any]) -> tuple[dict[str, Any], str, float | None]:
    """The run's objective settings as (the objective's own settings, reconstruction, beta).

    Two settings belong to image runs rather than to an objective: ``reconstruction`` (``mse``,
    the per-pixel mean squared error, or ``bce``, the per-pixel mean binary cross-entropy) and,
    for objectives with a KL weight and no ``beta`` of their own, ``beta``: the weight of the KL
    relative to its image default (the beta of a beta-VAE; ``kl_weight`` sets it absolutely).
    """
    settings = dict(settings)
    reconstruction = settings.pop("reconstruction", "mse")
    if reconstruction not in RECONSTRUCTIONS:
        raise ConfigError(f"objective.reconstruction {reconstruction!r}: expected one of {', '.join(RECONSTRUCTIONS)}")
    objective = OBJECTIVES[model]
    if reconstruction != "mse" and not objective.uses_reconstruction_loss:
        raise ConfigError(
            f"objective.reconstruction={reconstruction}: {model} models the Gaussian likelihood of the squared "
            "errors itself and takes mse only"
        )
    known = {field.name for field in fields(objective.config_class)}
    if "beta" not in settings or "beta" in known:
        return settings, reconstruction, None
    beta = settings.pop("beta")
    if "kl_weight" not in known:
        raise ConfigError(f"objective.beta: {model} has no KL term to weight")
    if "kl_weight" in settings:
        raise ConfigError("give objective.beta (relative to the image default) or objective.kl_weight, not both")
    check_weight(model, "beta", beta)
    return settings, reconstruction, float(beta)


def image_objective_settings(model: str, settings: dict[str, Any], image_shape: tuple[int, ...]) -> tuple[dict[str, Any], str]:
    """The objective settings of an image run (pixel-scale defaults, then the run's settings,
    ``beta`` applied) and its reconstruction loss (see :func:`split_image_settings`)."""
    own, reconstruction, beta = split_image_settings(model, settings)
    defaults = pixel_scale_defaults(model, image_shape)
    if beta is not None:
        own["kl_weight"] = beta * defaults.get("kl_weight", OBJECTIVES[model].config_class().kl_weight)
    return {**defaults, **own}, reconstruction
