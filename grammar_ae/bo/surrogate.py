"""The surrogate model: a Gaussian process on (latent point, score).

Inputs are scaled to the unit cube of the search bounds with BoTorch's ``Normalize`` and
outcomes standardised with its ``Standardize``; scores of targets to minimize are negated
first, so the GP always models a quantity to maximize and its posterior is in (signed)
score units.

- ``exact`` (default): ``SingleTaskGP`` fitted with ``fit_gpytorch_mll`` (L-BFGS-B, at most
  ``fit_iterations`` steps), Cholesky-based up to ``EXACT_MAX_POINTS`` points, optionally
  started from the hyperparameters of the previous fit (``warm_start``). The BO loop fits
  it on the trust region's local data (``--surrogate local``: the points nearest the
  region's centre), which keeps it small whatever the size of the data set.
- ``sparse``: BoTorch's ``SingleTaskVariationalGP`` with inducing points initialised by
  k-means++ (on a seeded subsample) or a random subset, trained on minibatches (natural
  gradient for the variational distribution, Adam for the rest) on the variational ELBO;
  fits ZINC-250k-sized sets. The data are transformed once beforehand (BoTorch advises
  against transforms inside minibatch training); after training the GP is used through
  ``SparsePredictive``, its closed-form predictive distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import gpytorch
import numpy as np
import torch
from botorch.models import SingleTaskGP, SingleTaskVariationalGP
from botorch.models.model import Model
from botorch.models.transforms import Normalize, Standardize
from torch import Tensor

from grammar_ae.errors import ConfigError, require_counts

SurrogateKind = Literal["exact", "sparse"]
Hyperparameters = dict[str, list]
DTYPE = torch.float64
KMEANS_SUBSAMPLE_PER_CENTRE = 10  # k-means++ runs on at most 10 points per inducing point
PREDICT_BATCH = 2048
EXACT_MAX_POINTS = 20_000  # an exact GP keeps n x n matrices; beyond this use the sparse GP


@dataclass
class SurrogateConfig:
    kind: SurrogateKind = "exact"
    fit_iterations: int = 50  # exact: L-BFGS-B iterations of the marginal-likelihood fit
    inducing_points: int = 500
    inducing_init: Literal["kmeans++", "random"] = "kmeans++"
    epochs: int = 3  # passes over the data (sparse); about 3 minutes per fit for ZINC-250k on one CPU core
    min_steps: int = 300  # at least this many minibatch steps, so that small sets are fitted too
    batch_size: int = 1024
    learning_rate: float = 0.01  # Adam, hyperparameters
    natural_learning_rate: float = 0.1  # natural gradient, variational distribution

    def __post_init__(self) -> None:
        if self.kind not in ("exact", "sparse"):
            raise ConfigError(f"surrogate {self.kind!r}: expected 'exact' or 'sparse'")
        if self.inducing_init not in ("kmeans++", "random"):
            raise ConfigError(f"inducing_init {self.inducing_init!r}: expected 'kmeans++' or 'random'")
        require_counts(self, ("fit_iterations", "inducing_points", "epochs", "batch_size"), "surrogate ")


@dataclass
class Surrogate:
    """A fitted GP whose posterior is in signed score units (``sign`` * score, to maximize)."""

    model: Model
    sign: float  # +1 to maximize, -1 to minimize
    best_f: float  # best signed training value (the incumbent of improvement-based acquisition)

    @torch.no_grad()
    def predict(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Predictive mean and variance (observation noise included) in score units."""
        self.model.eval()
        means, variances = [], []
        with gpytorch.settings.max_cholesky_size(EXACT_MAX_POINTS):
            for chunk in z.to(DTYPE).split(PREDICT_BATCH):
                posterior = self.model.posterior(chunk.unsqueeze(-2), observation_noise=True)  # marginals only
                means.append(posterior.mean.reshape(-1))
                variances.append(posterior.variance.reshape(-1))
        return self.sign * torch.cat(means), torch.cat(variances)

    def test_metrics(self, z: Tensor, scores: Tensor) -> dict[str, float]:
        """RMSE and mean Gaussian predictive log-likelihood of held-out scores."""
        mean, variance = self.predict(z)
        scores = scores.to(mean)
        rmse = torch.sqrt(torch.mean((mean - scores) ** 2))
        log_lik = -0.5 * (torch.log(2 * math.pi * variance) + (scores - mean) ** 2 / variance)
        return {"rmse": float(rmse), "log_likelihood": float(log_lik.mean()), "n": int(scores.numel())}

    def hyperparameters(self) -> Hyperparameters:
        """The fitted GP's parameters by name, as nested lists (JSON-ready, exact floats)."""
        return {name: value.detach().cpu().tolist() for name, value in self.model.named_parameters()}


def data_bounds(latents: Tensor, margin: float = 0.0) -> Tensor:
    """(2, d) box of ``latents``, widened by ``margin`` times its width on each side."""
    lower, upper = latents.min(dim=0).values, latents.max(dim=0).values
    width = (upper - lower).clamp_min(1e-6)
    return torch.stack([lower - margin * width, upper + margin * width])


def fit_surrogate(
    latents: Tensor, scores: Tensor, bounds: Tensor, maximize: bool, config: SurrogateConfig, seed: int,
    device: torch.device | str = "cpu", warm_start: Hyperparameters | None = None,
) -> Surrogate:
    """Fit the GP on ``latents`` (n, d) and ``scores`` (n,) in the search box ``bounds`` (2, d);
    an exact GP starts from ``warm_start`` (``Surrogate.hyperparameters()`` of an earlier fit)."""
    if latents.shape[0] < 2:
        raise ConfigError(f"the surrogate needs at least 2 scored points, got {latents.shape[0]}")
    if config.kind == "exact" and latents.shape[0] > EXACT_MAX_POINTS:
        raise ConfigError(
            f"an exact GP on {latents.shape[0]:,} points needs too much memory and time (at most "
            f"{EXACT_MAX_POINTS:,}); use the local or sparse surrogate, or max_training_points"
        )
    sign = 1.0 if maximize else -1.0
    x = latents.to(device=device, dtype=DTYPE)
    y = (sign * scores.to(device=device, dtype=DTYPE)).unsqueeze(-1)
    normalize = Normalize(x.shape[-1], bounds=bounds.to(device=device, dtype=DTYPE))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.kind == "exact":
            model = fit_exact_gp(x, y, normalize, config.fit_iterations, warm_start)
        else:
            model = fit_sparse_gp(x, y, normalize, config, seed)
    model.eval()
    return Surrogate(model, sign, best_f=float(y.max()))


def fit_exact_gp(
    x: Tensor, y: Tensor, normalize: Normalize, iterations: int, warm_start: Hyperparameters | None = None,
) -> SingleTaskGP:
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model = SingleTaskGP(x, y, input_transform=normalize, outcome_transform=Standardize(m=1))
    if warm_start:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in warm_start:
                    parameter.copy_(torch.as_tensor(warm_start[name], dtype=parameter.dtype))
    with gpytorch.settings.max_cholesky_size(EXACT_MAX_POINTS):
        fit_gpytorch_mll(
            ExactMarginalLogLikelihood(model.likelihood, model),
            optimizer_kwargs={"options": {"maxiter": iterations}},
        )
    return model


def initial_inducing_points(x: Tensor, count: int, method: str, seed: int) -> Tensor:
    """``count`` rows to start the inducing points from: k-means++ centres or a random subset."""
    rng = np.random.default_rng(seed)
    count = min(count, x.shape[0])
    if method == "random":
        return x[torch.from_numpy(rng.choice(x.shape[0], count, replace=False)).to(x.device)].clone()
    from sklearn.cluster import kmeans_plusplus

    rows = rng.choice(x.shape[0], min(x.shape[0], KMEANS_SUBSAMPLE_PER_CENTRE * count), replace=False)
    centres, _ = kmeans_plusplus(x[torch.from_numpy(rows).to(x.device)].cpu().numpy(), count, random_state=seed)
    return torch.from_numpy(centres).to(x)


def fit_sparse_gp(x: Tensor, y: Tensor, normalize: Normalize, config: SurrogateConfig, seed: int) -> SparsePredictive:
    """Minibatch training: natural-gradient steps for the variational distribution, Adam for
    the kernel, likelihood and inducing locations (much faster to converge than Adam alone),
    on the whole set transformed once with ``normalize`` and ``Standardize``."""
    from gpytorch.mlls import VariationalELBO
    from gpytorch.optim import NGD
    from gpytorch.variational import NaturalVariationalDistribution

    normalize.eval()
    standardize = Standardize(m=1)
    x_unit, (y_standard, _) = normalize(x), standardize(y)
    standardize.eval()
    inducing = initial_inducing_points(x_unit, config.inducing_points, config.inducing_init, seed)
    svgp = SingleTaskVariationalGP(
        x_unit, y_standard, inducing_points=inducing,
        variational_distribution=NaturalVariationalDistribution(inducing.shape[0]),
    )
    svgp.train()
    elbo = VariationalELBO(svgp.likelihood, svgp.model, num_data=x.shape[0])
    natural = NGD(svgp.model.variational_parameters(), num_data=x.shape[0], lr=config.natural_learning_rate)
    adam = torch.optim.Adam([*svgp.model.hyperparameters(), *svgp.likelihood.parameters()], lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(config.batch_size, x.shape[0])
    steps_per_epoch = math.ceil(x.shape[0] / batch_size)
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    targets = y_standard.squeeze(-1)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator).to(x.device)
        for batch in order.split(batch_size):
            natural.zero_grad(set_to_none=True)
            adam.zero_grad(set_to_none=True)
            loss = -elbo(svgp.model(x_unit[batch]), targets[batch])
            loss.backward()
            natural.step()
            adam.step()
    return SparsePredictive(svgp.eval(), normalize, standardize)


class SparsePredictive(Model):
    """The predictive distribution of a trained ``SingleTaskVariationalGP``, precomputed.

    With K_uu = L L^T and the whitened variational q(v) = N(m, S):
    mean(X) = mu(X) + K_Xu L^-T m,  cov(X, X') = K_XX' + K_Xu L^-T (S - I) L^-1 K_uX'.
    GPyTorch recomputes the inducing-point kernel and its Cholesky factor for every batch
    element of the input; acquisition optimization evaluates hundreds of batches of q
    points, which made it orders of magnitude slower than this closed form. Inputs pass
    through ``normalize`` first and the posterior through ``standardize.untransform_posterior``.
    """

    def __init__(self, svgp: SingleTaskVariationalGP, normalize: Normalize | None = None,
                 standardize: Standardize | None = None):
        super().__init__()
        strategy = svgp.model.variational_strategy
        with torch.no_grad():
            inducing = strategy.inducing_points.detach()
            kuu = svgp.model.covar_module(inducing).to_dense()
            chol = torch.linalg.cholesky(kuu + strategy.jitter_val * torch.eye(len(inducing)).to(kuu))
            q_v = strategy.variational_distribution
            eye = torch.eye(len(inducing)).to(kuu)
            left = torch.linalg.solve_triangular(chol.mT, eye, upper=True)  # L^-T
            self.register_buffer("inducing", inducing)
            self.register_buffer("weights", left @ q_v.mean.detach())
            self.register_buffer("middle", left @ (q_v.covariance_matrix.detach() - eye) @ left.mT)
            self.register_buffer("noise", svgp.likelihood.noise.detach().reshape(()))
        self.jitter = strategy.jitter_val
        self.kernel = svgp.model.covar_module
        self.mean_module = svgp.model.mean_module
        self.kernel.requires_grad_(False)
        self.mean_module.requires_grad_(False)
        self.svgp = svgp
        self.normalize = normalize
        self.standardize = standardize

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(self, X: Tensor, output_indices=None, observation_noise=False, posterior_transform=None, **kwargs):
        from botorch.posteriors.gpytorch import GPyTorchPosterior
        from gpytorch.distributions import MultivariateNormal
        from linear_operator import to_linear_operator

        if self.normalize is not None:
            X = self.normalize(X)
        k_xu = self.kernel(X, self.inducing.expand(*X.shape[:-2], *self.inducing.shape)).to_dense()
        mean = self.mean_module(X) + k_xu @ self.weights
        covariance = self.kernel(X).to_dense() + k_xu @ self.middle @ k_xu.mT
        diagonal = self.jitter + (self.noise if observation_noise is True else 0.0)
        covariance = covariance + diagonal * torch.eye(X.shape[-2]).to(X)
        posterior = GPyTorchPosterior(MultivariateNormal(mean, to_linear_operator(covariance)))
        if self.standardize is not None:
            posterior = self.standardize.untransform_posterior(posterior)
        return posterior if posterior_transform is None else posterior_transform(posterior)
