"""Batch acquisition: which q latent points to evaluate next.

Acquisition functions work on the surrogate's internal units (inputs in the unit cube,
outcomes standardised to maximize):

- ``ei`` (default): ``qLogExpectedImprovement``, the numerically robust member of BoTorch's
  log-EI family, optimized with ``optimize_acqf(..., sequential=True)``: the batch is built
  greedily, one point at a time, each conditioned on the points already chosen.
- ``ucb``: ``qUpperConfidenceBound``, optimized the same way.
- ``thompson``: ``MaxPosteriorSampling`` (Thompson sampling without replacement) over a
  scrambled Sobol candidate set.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from botorch.acquisition import AcquisitionFunction, qLogExpectedImprovement, qUpperConfidenceBound
from botorch.exceptions.warnings import OptimizationWarning
from botorch.generation import MaxPosteriorSampling
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from torch import Tensor
from torch.quasirandom import SobolEngine

from grammar_ae.errors import ConfigError

AcquisitionName = Literal["ei", "ucb", "thompson"]
ACQUISITIONS = ("ei", "ucb", "thompson")


@dataclass
class AcquisitionConfig:
    name: AcquisitionName = "ei"
    num_restarts: int = 4
    raw_samples: int = 256
    max_iterations: int = 100  # L-BFGS-B iterations per restart
    mc_samples: int = 128
    beta: float = 2.0  # UCB exploration weight
    thompson_candidates: int = 2000

    def validate(self) -> None:
        if self.name not in ACQUISITIONS:
            raise ConfigError(f"acquisition {self.name!r}: expected one of {', '.join(ACQUISITIONS)}")
        for name in ("num_restarts", "raw_samples", "max_iterations", "mc_samples", "thompson_candidates"):
            if getattr(self, name) < 1:
                raise ConfigError(f"acquisition {name} must be at least 1, got {getattr(self, name)}")


def make_acquisition(
    name: AcquisitionName, model: Model, best_f: float, *,
    mc_samples: int = 128, beta: float = 2.0, seed: int = 0,
) -> AcquisitionFunction | MaxPosteriorSampling:
    """The acquisition ``name`` on ``model``; ``best_f`` is the incumbent (used by ``ei``)."""
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    if name == "ei":
        return qLogExpectedImprovement(model, best_f=best_f, sampler=sampler)
    if name == "ucb":
        return qUpperConfidenceBound(model, beta=beta, sampler=sampler)
    if name == "thompson":
        return MaxPosteriorSampling(model, replacement=False)
    raise ConfigError(f"acquisition {name!r}: expected one of {', '.join(ACQUISITIONS)}")


def optimize_acquisition(
    acquisition: AcquisitionFunction | MaxPosteriorSampling, bounds: Tensor, q: int,
    config: AcquisitionConfig, seed: int,
) -> Tensor:
    """(q, d) points inside ``bounds`` (2, d) chosen by ``acquisition``; seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(acquisition, MaxPosteriorSampling):
            sobol = SobolEngine(bounds.shape[-1], scramble=True, seed=seed)
            unit = sobol.draw(max(config.thompson_candidates, q)).to(bounds)
            candidates = bounds[0] + unit * (bounds[1] - bounds[0])
            with torch.no_grad():
                return acquisition(candidates, num_samples=q).detach()
        with warnings.catch_warnings():
            # the greedy batch often stops L-BFGS-B on a line-search "ABNORMAL" status near a
            # pending point; its best candidate is kept rather than restarting the step
            warnings.filterwarnings("ignore", category=OptimizationWarning)
            warnings.filterwarnings("ignore", message="Optimization failed", category=RuntimeWarning)
            points, _ = optimize_acqf(
                acquisition, bounds=bounds, q=q, num_restarts=config.num_restarts,
                raw_samples=config.raw_samples, sequential=True, retry_on_optimization_warning=False,
                options={"seed": seed, "maxiter": config.max_iterations},
            )
    return points.detach()


def propose(
    model: Model, best_f: float, bounds: Tensor, q: int, config: AcquisitionConfig, seed: int,
) -> Tensor:
    """Build the configured acquisition on ``model`` and return its q points."""
    config.validate()
    acquisition = make_acquisition(
        config.name, model, best_f, mc_samples=config.mc_samples, beta=config.beta, seed=seed,
    )
    return optimize_acquisition(acquisition, bounds, q, config, seed)
