"""Batch acquisition: which q latent points to evaluate next.

Acquisition functions work on the surrogate's posterior in signed score units (to
maximize) and on latent points (the surrogate normalises its inputs itself):

- ``thompson`` (default): batch Thompson sampling, ``MaxPosteriorSampling`` without
  replacement over a candidate set. Around a centre (the trust region's) the candidates
  are TuRBO's: the centre with a random subset of about ``PERTURBED_DIMENSIONS``
  coordinates replaced by scrambled-Sobol values inside the box; without a centre, Sobol
  points filling the box. One joint posterior draw over the candidates per batch point.
- ``ei``: ``qLogExpectedImprovement``, the numerically robust member of BoTorch's log-EI
  family, optimized with ``optimize_acqf(..., sequential=True)``: the batch is built
  greedily, one point at a time, each conditioned on the points already chosen.
- ``ucb``: ``qUpperConfidenceBound``, optimized the same way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import gpytorch
import torch
from botorch.acquisition import AcquisitionFunction, qLogExpectedImprovement, qUpperConfidenceBound
from botorch.exceptions.warnings import OptimizationWarning
from botorch.generation import MaxPosteriorSampling
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from torch import Tensor
from torch.quasirandom import SobolEngine

from grammar_ae.bo.surrogate import EXACT_MAX_POINTS
from grammar_ae.errors import ConfigError, require_counts

AcquisitionName = Literal["thompson", "ei", "ucb"]
ACQUISITIONS = ("thompson", "ei", "ucb")
PERTURBED_DIMENSIONS = 20  # TuRBO: each candidate changes each coordinate with probability min(1, 20 / d)


@dataclass
class AcquisitionConfig:
    name: AcquisitionName = "thompson"
    num_restarts: int = 4
    raw_samples: int = 256
    max_iterations: int = 100  # L-BFGS-B iterations per restart
    mc_samples: int = 128
    beta: float = 2.0  # UCB exploration weight
    thompson_candidates: int = 2000

    def __post_init__(self) -> None:
        if self.name not in ACQUISITIONS:
            raise ConfigError(f"acquisition {self.name!r}: expected one of {', '.join(ACQUISITIONS)}")
        require_counts(self, ("num_restarts", "raw_samples", "max_iterations", "mc_samples", "thompson_candidates"),
                       "acquisition ")


def candidate_set(box: Tensor, count: int, seed: int, centre: Tensor | None = None) -> Tensor:
    """(count, d) points inside ``box`` (2, d): scrambled Sobol points, or, around ``centre``,
    the centre with each coordinate replaced by a Sobol value with probability min(1, 20 / d)
    (at least one per point)."""
    dim = box.shape[-1]
    sobol = SobolEngine(dim, scramble=True, seed=seed).draw(count).to(box)
    points = box[0] + sobol * (box[1] - box[0])
    if centre is None:
        return points
    generator = torch.Generator().manual_seed(seed)
    perturbed = torch.rand(count, dim, generator=generator) < min(1.0, PERTURBED_DIMENSIONS / dim)
    perturbed[torch.arange(count), torch.randint(dim, (count,), generator=generator)] = True
    return torch.where(perturbed.to(box.device), points, centre.to(box).clamp(box[0], box[1]))


def thompson_choice(model: Model, candidates: Tensor, q: int, seed: int) -> Tensor:
    """Indices of at most q distinct rows of ``candidates`` (n, d), each the maximum of one
    joint posterior draw over them (rows equal to an earlier chosen one are left out). Seeded."""
    with torch.random.fork_rng(devices=[]), torch.no_grad(), gpytorch.settings.max_cholesky_size(EXACT_MAX_POINTS):
        torch.manual_seed(seed)
        chosen = MaxPosteriorSampling(model, replacement=False)(candidates, num_samples=min(q, len(candidates)))
    matches = (candidates.unsqueeze(0) == chosen.unsqueeze(1)).all(dim=-1)
    if not matches.any(dim=1).all():
        raise RuntimeError("Thompson sampling returned a point that is not one of its candidates")
    return torch.tensor(list(dict.fromkeys(matches.int().argmax(dim=1).tolist())), dtype=torch.long)


def thompson_batch(model: Model, box: Tensor, q: int, config: AcquisitionConfig, seed: int,
                   centre: Tensor | None = None) -> Tensor:
    """q distinct candidates of the configured set, chosen by ``thompson_choice``."""
    candidates = candidate_set(box, max(config.thompson_candidates, q), seed, centre)
    return candidates[thompson_choice(model, candidates, q, seed)]


def optimized_batch(acquisition: AcquisitionFunction, box: Tensor, q: int, config: AcquisitionConfig, seed: int) -> Tensor:
    """q points chosen greedily by maximizing ``acquisition`` with restarts (L-BFGS-B)."""
    with warnings.catch_warnings():
        # the greedy batch often stops L-BFGS-B on a line-search "ABNORMAL" status near a
        # pending point; its best candidate is kept rather than restarting the step
        warnings.filterwarnings("ignore", category=OptimizationWarning)
        warnings.filterwarnings("ignore", message="Optimization failed", category=RuntimeWarning)
        points, _ = optimize_acqf(
            acquisition, bounds=box, q=q, num_restarts=config.num_restarts,
            raw_samples=config.raw_samples, sequential=True, retry_on_optimization_warning=False,
            options={"seed": seed, "maxiter": config.max_iterations},
        )
    return points.detach()


def propose(
    model: Model, best_f: float, box: Tensor, q: int, config: AcquisitionConfig, seed: int,
    centre: Tensor | None = None,
) -> Tensor:
    """(q, d) latent points inside ``box`` (2, d) chosen by the configured acquisition on
    ``model``; ``best_f`` is the incumbent (ei), ``centre`` the trust region's (thompson). Seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.name == "thompson":
            return thompson_batch(model, box, q, config, seed, centre)
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([config.mc_samples]), seed=seed)
        acquisition = (
            qLogExpectedImprovement(model, best_f=best_f, sampler=sampler) if config.name == "ei"
            else qUpperConfidenceBound(model, beta=config.beta, sampler=sampler)
        )
        return optimized_batch(acquisition, box, q, config, seed)
