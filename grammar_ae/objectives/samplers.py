"""Latent samplers by kind: fit an ex-post density to training codes, save and load any sampler."""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable

import torch
from torch import Tensor

from grammar_ae.errors import CheckpointError, ConfigError
from grammar_ae.objectives.density import (
    GaussianSampler, GMMSampler, KernelDensitySampler, LatentSampler, StandardNormalSampler,
)
from grammar_ae.objectives.gmm_prior import GMMPrior
from grammar_ae.objectives.two_stage import TwoStageSampler
from grammar_ae.utils.files import atomic_path

_FITTERS: dict[str, Callable[..., LatentSampler]] = {
    "gaussian": GaussianSampler.fit,
    "gmm": GMMSampler.fit,
    "two-stage": TwoStageSampler.fit,
    "kde": KernelDensitySampler.fit,
}

_LOADERS: dict[str, Callable[[dict[str, Any]], LatentSampler]] = {
    StandardNormalSampler.kind: StandardNormalSampler.from_dict,
    GaussianSampler.kind: GaussianSampler.from_dict,
    GMMSampler.kind: GMMSampler.from_dict,
    TwoStageSampler.kind: TwoStageSampler.from_dict,
    KernelDensitySampler.kind: KernelDensitySampler.from_dict,
    GMMPrior.kind: GMMPrior.from_dict,
}

FITTED_KINDS = tuple(_FITTERS)


def fit_sampler(kind: str, latents: Tensor, **options: Any) -> LatentSampler:
    """Fit an ex-post density of ``kind`` ("gaussian", "gmm", "two-stage") to training codes (n, d)."""
    if kind not in _FITTERS:
        raise ConfigError(f"latent sampler {kind!r} is unknown; expected one of {', '.join(FITTED_KINDS)}")
    fitter = _FITTERS[kind]
    try:
        inspect.signature(fitter).bind(latents, **options)
    except TypeError as error:
        raise ConfigError(f"latent sampler {kind!r}: {error}") from None
    return fitter(latents, **options)


def sampler_from_dict(state: dict[str, Any]) -> LatentSampler:
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in _LOADERS:
        raise CheckpointError(f"latent sampler state has unknown kind {kind!r}")
    return _LOADERS[kind](state)


def save_sampler(path: str | os.PathLike, sampler: LatentSampler) -> None:
    """Write ``sampler.to_dict()`` atomically with torch.save."""
    with atomic_path(path) as tmp:
        torch.save(sampler.to_dict(), tmp)


def load_sampler(path: str | os.PathLike) -> LatentSampler:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"latent sampler file {os.fspath(path)!r} does not exist") from None
    except Exception as error:  # torch raises several types for corrupt files
        raise CheckpointError(f"latent sampler file {os.fspath(path)!r} is unreadable: {error}") from None
    return sampler_from_dict(state)
