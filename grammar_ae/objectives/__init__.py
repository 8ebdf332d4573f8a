"""The regularizer core shared by sequence and image models (PROTOCOLS section 4)."""

from grammar_ae.objectives.base import EncoderOutput, Objective, ReconstructionTerms
from grammar_ae.objectives.density import (
    GaussianSampler,
    GMMSampler,
    LatentSampler,
    StandardNormalSampler,
    TwoStageSampler,
    fit_sampler,
    load_sampler,
    sampler_from_dict,
    save_sampler,
)
from grammar_ae.objectives.gmm_prior import GMMPrior
from grammar_ae.objectives.registry import OBJECTIVES, PRESETS, build_objective, config_of

__all__ = [
    "EncoderOutput",
    "GMMPrior",
    "GMMSampler",
    "GaussianSampler",
    "LatentSampler",
    "OBJECTIVES",
    "Objective",
    "PRESETS",
    "ReconstructionTerms",
    "StandardNormalSampler",
    "TwoStageSampler",
    "build_objective",
    "config_of",
    "fit_sampler",
    "load_sampler",
    "sampler_from_dict",
    "save_sampler",
]
