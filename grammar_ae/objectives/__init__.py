"""The regularizer core shared by sequence and image models (PROTOCOLS section 4)."""

from grammar_ae.objectives.base import EncoderOutput, Objective, ReconstructionTerms
from grammar_ae.objectives.density import (
    GaussianSampler, GMMSampler, KernelDensitySampler, LatentSampler, StandardNormalSampler,
)
from grammar_ae.objectives.gmm_prior import GMMPrior
from grammar_ae.objectives.registry import OBJECTIVES, build_objective, config_of, objective_config
from grammar_ae.objectives.samplers import FITTED_KINDS, fit_sampler, load_sampler, sampler_from_dict, save_sampler
from grammar_ae.objectives.two_stage import TwoStageSampler

__all__ = [
    "EncoderOutput",
    "GMMPrior",
    "GMMSampler",
    "KernelDensitySampler",
    "GaussianSampler",
    "LatentSampler",
    "OBJECTIVES",
    "Objective",
    "ReconstructionTerms",
    "FITTED_KINDS",
    "StandardNormalSampler",
    "TwoStageSampler",
    "build_objective",
    "config_of",
    "fit_sampler",
    "load_sampler",
    "objective_config",
    "sampler_from_dict",
    "save_sampler",
]
