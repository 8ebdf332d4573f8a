"""Latent samplers: the N(0, I) prior and ex-post densities fitted to training codes (a
Gaussian, a Gaussian mixture, a Gaussian kernel density).

The two-stage sampler lives with its objective (``two_stage``); ``samplers`` fits, saves and
loads any of them by kind. Every sampler draws ``sample(n, generator)`` codes (n, d) as float32 on the CPU (the GMM prior:
on its means' device; move them to the decoder's device), is deterministic given a CPU
generator, and round-trips through ``to_dict()`` / :func:`sampler_from_dict` (plain values and
CPU tensors, loadable with ``weights_only=True``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from grammar_ae.errors import CheckpointError, ConfigError, DataError


@runtime_checkable
class LatentSampler(Protocol):
    kind: str

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def to_dict(self) -> dict[str, Any]: ...


def check_latents(latents: Tensor, min_rows: int, what: str) -> Tensor:
    """Latents as a float64 CPU tensor (n, d); DataError if the shape or values are unusable."""
    if not isinstance(latents, Tensor) or latents.dim() != 2 or latents.shape[1] < 1:
        shape = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
        raise DataError(f"{what}: latents must be a 2-D tensor (n, d), got {shape}")
    if latents.shape[0] < min_rows:
        raise DataError(f"{what}: needs at least {min_rows} latent codes, got {latents.shape[0]}")
    if not torch.isfinite(latents).all():
        raise DataError(f"{what}: latents contain NaN or infinite values")
    return latents.detach().to("cpu", torch.float64)


def cpu_normal(n: int, dim: int, generator: torch.Generator | None) -> Tensor:
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
        return cpu_normal(n, self.dim, generator).float()

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
        noise = cpu_normal(n, self.dim, generator)
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
        data = check_latents(latents, components, "GMM sampler").numpy()
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
        data = check_latents(latents, 2, "Gaussian sampler")
        return cls(torch.ones(1), data.mean(dim=0, keepdim=True), torch.cov(data.T).reshape(1, data.shape[1], -1))

    @property
    def mean(self) -> Tensor:
        return self.means[0]

    @property
    def cov(self) -> Tensor:
        return self.covariances[0]


def check_bandwidth(bandwidth: float) -> float:
    """A kernel density's bandwidth: a finite number > 0 (ConfigError otherwise)."""
    if not (isinstance(bandwidth, (int, float)) and np.isfinite(bandwidth) and bandwidth > 0):
        raise ConfigError(f"KDE sampler: bandwidth must be a number > 0, got {bandwidth!r}")
    return float(bandwidth)


class KernelDensitySampler:
    """A Gaussian kernel density on training codes: a stored code drawn uniformly, plus isotropic
    noise of standard deviation ``bandwidth`` (latent units). A decoder trained on codes with
    little noise decodes reliably only near them; a small bandwidth keeps samples there, at the
    cost of novelty (a sample may decode to the training item it started from). Codes are
    stored in float16."""

    kind = "kde"

    def __init__(self, codes: Tensor, bandwidth: float) -> None:
        self.bandwidth = check_bandwidth(bandwidth)
        self.codes = torch.as_tensor(codes).to(torch.float16)
        if self.codes.dim() != 2 or len(self.codes) < 1:
            raise CheckpointError(f"KDE sampler: codes must be (n, d) with n >= 1, got {tuple(self.codes.shape)}")

    @property
    def dim(self) -> int:
        return self.codes.shape[1]

    @classmethod
    def fit(cls, latents: Tensor, bandwidth: float = 0.2) -> KernelDensitySampler:
        return cls(check_latents(latents, 1, "KDE sampler"), bandwidth)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        noise = cpu_normal(n, self.dim, generator)
        rows = torch.randint(len(self.codes), (n,), generator=generator)
        return (self.codes[rows].double() + self.bandwidth * noise).float()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "codes": self.codes, "bandwidth": self.bandwidth}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> KernelDensitySampler:
        return cls(state["codes"], float(state["bandwidth"]))
