"""The Gaussian-mixture prior of the KS + CV autoencoder and its two distribution-matching losses."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.terms import standard_normal_cdf


class GMMPrior(nn.Module):
    """Equal-weight mixture of K Gaussians N(means[k], std^2 I) in d dimensions.

    Also a :class:`~grammar_ae.objectives.density.LatentSampler` (``sample``, ``to_dict``).
    """

    kind = "gmm-prior"

    def __init__(self, means: Tensor, std: float = 1.0) -> None:
        super().__init__()
        if means.dim() != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ConfigError(f"GMM prior: means must have shape (K, d) with K, d >= 1, got {tuple(means.shape)}")
        if not torch.isfinite(means).all():
            raise ConfigError("GMM prior: means contain NaN or infinite values")
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
            raise ConfigError(f"GMM prior: std must be a finite number > 0, got {std!r}")
        self.register_buffer("means", means.detach().clone().float())
        self.std = float(std)

    @classmethod
    def one_hot(cls, components: int, latent_dim: int, std: float = 1.0, scale: float = 1.0) -> GMMPrior:
        """The reference prior: component k centred on scale * e_k (requires components <= latent_dim)."""
        if components < 1 or latent_dim < 1:
            raise ConfigError(f"GMM prior: components ({components}) and latent_dim ({latent_dim}) must be >= 1")
        if components > latent_dim:
            raise ConfigError(
                f"GMM prior: components ({components}) must not exceed the latent dimension ({latent_dim}); "
                "the means are one-hot vectors"
            )
        return cls(scale * torch.eye(components, latent_dim), std)

    @property
    def components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def cdf_marginal(self, t: Tensor) -> Tensor:
        """F_d(t_d) = (1/K) sum_k Phi((t_d - means[k, d]) / std), elementwise over (..., d)."""
        return standard_normal_cdf((t.unsqueeze(-2) - self.means) / self.std).mean(dim=-2)

    def covariance(self) -> Tensor:
        """std^2 I + (1/K) sum_k (mu_k - mu_bar)(mu_k - mu_bar)^T, shape (d, d)."""
        centred = self.means - self.means.mean(dim=0)
        between = centred.T @ centred / self.components
        return self.std**2 * torch.eye(self.dim, device=self.means.device) + between

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, d): pick a component uniformly, then add std * N(0, I) noise.

        Random numbers are drawn on the generator's device (default: the means' device) and the
        result is returned on the means' device.
        """
        device = generator.device if generator is not None else self.means.device
        component = torch.randint(self.components, (n,), generator=generator, device=device)
        noise = torch.randn(n, self.dim, generator=generator, device=device)
        return (self.means.to(device)[component] + self.std * noise).to(self.means.device)

    def component_of(self, z: Tensor) -> Tensor:
        """Index (B,) of the most likely component for each code (nearest mean: equal weights and std)."""
        return torch.cdist(z, self.means.to(z.dtype)).argmin(dim=1)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "means": self.means.cpu(), "std": self.std}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> GMMPrior:
        return cls(torch.as_tensor(state["means"]), float(state["std"]))


def ks_loss(z: Tensor, prior: GMMPrior) -> Tensor:
    """Mean over ranks i and dims d of (i / N - F_d(z_(i), d))^2, z sorted per dimension (keeps gradients)."""
    n = z.shape[0]
    ordered, _ = torch.sort(z, dim=0)
    target = torch.arange(1, n + 1, dtype=z.dtype, device=z.device).unsqueeze(1) / n
    return (target - prior.cdf_marginal(ordered)).pow(2).mean()


def cv_loss(z: Tensor, prior: GMMPrior) -> Tensor:
    """Mean over (d, d') of (batch covariance - prior covariance)^2; the batch covariance is unbiased (N - 1)."""
    return (torch.cov(z.T) - prior.covariance().to(z.dtype)).pow(2).mean()
