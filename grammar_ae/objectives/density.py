"""Latent samplers: the N(0, I) prior and ex-post densities fitted to training codes.

Every sampler draws ``sample(n, generator)`` codes (n, d) as float32 on the CPU (the GMM prior:
on its means' device; move them to the decoder's device), is deterministic given a CPU
generator, and round-trips through ``to_dict()`` / :func:`sampler_from_dict` (plain values and
CPU tensors, loadable with ``weights_only=True``).
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from grammar_ae.errors import CheckpointError, ConfigError, DataError
from grammar_ae.objectives.gmm_prior import GMMPrior
from grammar_ae.objectives.terms import gaussian_kl, learned_variance_nll, reparameterise
from grammar_ae.utils.files import atomic_path


@runtime_checkable
class LatentSampler(Protocol):
    kind: str

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def to_dict(self) -> dict[str, Any]: ...


def _check_latents(latents: Tensor, min_rows: int, what: str) -> Tensor:
    """Latents as a float64 CPU tensor (n, d); DataError if the shape or values are unusable."""
    if not isinstance(latents, Tensor) or latents.dim() != 2 or latents.shape[1] < 1:
        shape = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
        raise DataError(f"{what}: latents must be a 2-D tensor (n, d), got {shape}")
    if latents.shape[0] < min_rows:
        raise DataError(f"{what}: needs at least {min_rows} latent codes, got {latents.shape[0]}")
    if not torch.isfinite(latents).all():
        raise DataError(f"{what}: latents contain NaN or infinite values")
    return latents.detach().to("cpu", torch.float64)


def _cpu_normal(n: int, dim: int, generator: torch.Generator | None) -> Tensor:
    if n < 1:
        raise ConfigError(f"number of samples must be >= 1, got {n}")
    return torch.randn(n, dim, generator=generator, dtype=torch.float64)


class StandardNormalSampler:
    """N(0, I) in ``dim`` dimensions."""

    kind = "standard-normal"

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ConfigError(f"standard normal sampler: dim must be >= 1, got {dim}")
        self.dim = int(dim)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return _cpu_normal(n, self.dim, generator).float()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> StandardNormalSampler:
        return cls(int(state["dim"]))


def _psd_factor(cov: Tensor) -> Tensor:
    """F with F F^T = cov for a symmetric positive semi-definite cov (eigenvalues clamped at 0)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    return eigenvectors * eigenvalues.clamp_min(0.0).sqrt()


class GaussianMixtureSampler:
    """Mixture of full-covariance Gaussians (weights (K,), means (K, d), covariances (K, d, d))."""

    kind = "gmm"

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covariances = torch.as_tensor(covariances, dtype=torch.float64)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covariances.shape != (k, d, d):
            raise CheckpointError(
                f"{self.kind} sampler: inconsistent shapes weights {tuple(self.weights.shape)}, "
                f"means {tuple(self.means.shape)}, covariances {tuple(self.covariances.shape)}"
            )
        self._factors = torch.stack([_psd_factor(c) for c in self.covariances])

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        noise = _cpu_normal(n, self.dim, generator)
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        draws = self.means[component] + torch.einsum("nij,nj->ni", self._factors[component], noise)
        return draws.float()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": self.weights, "means": self.means, "covariances": self.covariances}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> GaussianMixtureSampler:
        return cls(state["weights"], state["means"], state["covariances"])


class GMMSampler(GaussianMixtureSampler):
    """A K-component full-covariance Gaussian mixture fitted by EM (scikit-learn)."""

    @classmethod
    def fit(cls, latents: Tensor, components: int = 10, max_iter: int = 100, seed: int = 0) -> GMMSampler:
        from sklearn.mixture import GaussianMixture

        if components < 1 or max_iter < 1:
            raise ConfigError(f"GMM sampler: components ({components}) and max_iter ({max_iter}) must be >= 1")
        data = _check_latents(latents, components, "GMM sampler").numpy()
        mixture = GaussianMixture(components, covariance_type="full", max_iter=max_iter, random_state=seed)
        mixture.fit(data)
        return cls(
            torch.from_numpy(np.asarray(mixture.weights_)),
            torch.from_numpy(np.asarray(mixture.means_)),
            torch.from_numpy(np.asarray(mixture.covariances_)),
        )


class GaussianSampler(GaussianMixtureSampler):
    """One Gaussian with the training codes' mean and full (unbiased) covariance."""

    kind = "gaussian"

    @classmethod
    def fit(cls, latents: Tensor) -> GaussianSampler:
        data = _check_latents(latents, 2, "Gaussian sampler")
        return cls(torch.ones(1), data.mean(dim=0, keepdim=True), torch.cov(data.T).reshape(1, data.shape[1], -1))

    @property
    def mean(self) -> Tensor:
        return self.means[0]

    @property
    def cov(self) -> Tensor:
        return self.covariances[0]


@dataclass
class TwoStageNetConfig:
    """Shape of the stage-2 VAE: ``depth`` dense ReLU layers of ``hidden`` units on each side."""

    latent_dim: int
    hidden: int = 1024
    depth: int = 3


def _dense_stack(config: TwoStageNetConfig, out_features: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = config.latent_dim
    for _ in range(config.depth):
        layers += [nn.Linear(width, config.hidden), nn.ReLU()]
        width = config.hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class TwoStageSampler:
    """Stage 2 of the two-stage VAE: u ~ N(0, I), z = decoder(u) + sqrt(gamma) * eps, de-standardised.

    The stage-2 VAE is trained on the codes standardised per dimension, with a learned decoder
    variance gamma like stage 1; its decoder and gamma are kept. Sampling includes the
    Gaussian observation noise of that decoder: when gamma -> 0 (codes on a low-dimensional
    manifold, the two-stage argument) this is the decoder mean; when the stage-2 VAE leaves
    some directions to the noise, they still get their variance. ``history`` holds the mean
    loss per epoch.
    """

    kind = "two-stage"

    def __init__(
        self, net: TwoStageNetConfig, decoder: nn.Sequential, log_gamma: float, shift: Tensor, scale: Tensor
    ) -> None:
        self.net = net
        self.decoder = decoder.cpu().eval()
        self.log_gamma = float(log_gamma)
        self.shift = shift.to("cpu", torch.float32)
        self.scale = scale.to("cpu", torch.float32)
        self.history: list[float] = []

    @classmethod
    def fit(
        cls,
        latents: Tensor,
        epochs: int = 20,
        hidden: int = 1024,
        depth: int = 3,
        batch_size: int = 100,
        lr: float = 1e-3,
        seed: int = 0,
    ) -> TwoStageSampler:
        """Train the stage-2 VAE (Adam) on ``latents``; deterministic given ``seed``; global RNG untouched."""
        for field, value in (("epochs", epochs), ("hidden", hidden), ("depth", depth), ("batch_size", batch_size)):
            if value < 1:
                raise ConfigError(f"two-stage sampler: {field} must be >= 1, got {value}")
        if not lr > 0:
            raise ConfigError(f"two-stage sampler: lr must be > 0, got {lr}")
        data = _check_latents(latents, 2, "two-stage sampler").float()
        shift, scale = data.mean(dim=0), data.std(dim=0).clamp_min(1e-8)
        data = (data - shift) / scale
        net = TwoStageNetConfig(data.shape[1], hidden, depth)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder, decoder = _dense_stack(net, 2 * net.latent_dim), _dense_stack(net, net.latent_dim)
            log_gamma = nn.Parameter(torch.zeros(()))
            optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters(), log_gamma], lr=lr)
            history = []
            for _ in range(epochs):
                total, batches = 0.0, 0
                for index in torch.randperm(data.shape[0]).split(batch_size):
                    batch = data[index]
                    mu, logvar = encoder(batch).chunk(2, dim=1)
                    decoded = decoder(reparameterise(mu, logvar))
                    loss = learned_variance_nll((batch - decoded).pow(2), log_gamma) + gaussian_kl(mu, logvar)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total, batches = total + loss.item(), batches + 1
                history.append(total / batches)
        sampler = cls(net, decoder, log_gamma.item(), shift, scale)
        sampler.history = history
        return sampler

    @property
    def dim(self) -> int:
        return self.net.latent_dim

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = _cpu_normal(n, self.dim, generator).float()
        noise = _cpu_normal(n, self.dim, generator).float()
        z = self.decoder(u) + math.exp(0.5 * self.log_gamma) * noise
        return z * self.scale + self.shift

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "net": asdict(self.net),
            "decoder": self.decoder.state_dict(),
            "log_gamma": self.log_gamma,
            "shift": self.shift,
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TwoStageSampler:
        net = TwoStageNetConfig(**state["net"])
        decoder = _dense_stack(net, net.latent_dim)
        decoder.load_state_dict(state["decoder"])
        return cls(net, decoder, float(state["log_gamma"]), state["shift"], state["scale"])


_FITTERS: dict[str, Callable[..., LatentSampler]] = {
    "gaussian": GaussianSampler.fit,
    "gmm": GMMSampler.fit,
    "two-stage": TwoStageSampler.fit,
}

_LOADERS: dict[str, Callable[[dict[str, Any]], LatentSampler]] = {
    StandardNormalSampler.kind: StandardNormalSampler.from_dict,
    GaussianSampler.kind: GaussianSampler.from_dict,
    GMMSampler.kind: GMMSampler.from_dict,
    TwoStageSampler.kind: TwoStageSampler.from_dict,
    GMMPrior.kind: GMMPrior.from_dict,
}

SAMPLER_KINDS = tuple(_FITTERS)


def fit_sampler(kind: str, latents: Tensor, **options: Any) -> LatentSampler:
    """Fit an ex-post density of ``kind`` ("gaussian", "gmm", "two-stage") to training codes (n, d)."""
    if kind not in _FITTERS:
        raise ConfigError(f"latent sampler {kind!r} is unknown; expected one of {', '.join(SAMPLER_KINDS)}")
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
