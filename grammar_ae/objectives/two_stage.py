"""Two-stage VAE: stage 1 is a VAE whose Gaussian decoder variance gamma is learned
(:class:`TwoStageVAEObjective`); stage 2 is the same kind of VAE fitted on the stage-1
codes, used as their sampler (:class:`TwoStageSampler`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from grammar_ae.errors import ConfigError
from grammar_ae.objectives.base import EncoderOutput, ReconstructionTerms, check_finite, check_weight
from grammar_ae.objectives.density import check_latents, cpu_normal
from grammar_ae.objectives.terms import gaussian_nll
from grammar_ae.objectives.vae import GaussianEncoderObjective


@dataclass
class TwoStageConfig:
    """Loss = sum_D (x - x_hat)^2 / (2 gamma) + (D/2) log gamma + kl_weight * KL, gamma learned."""

    kl_weight: float = 1.0
    init_log_gamma: float = 0.0


class TwoStageVAEObjective(GaussianEncoderObjective):
    """Owns the parameter ``log_gamma``: the optimiser must include this objective's parameters."""

    config_class = TwoStageConfig
    uses_reconstruction_loss: ClassVar[bool] = False

    def __init__(self, config: TwoStageConfig, name: str = "2svae") -> None:
        check_weight(name, "kl_weight", config.kl_weight)
        check_finite(name, "init_log_gamma", config.init_log_gamma)
        super().__init__(config, name)
        self.log_gamma = nn.Parameter(torch.tensor(float(config.init_log_gamma)))

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        nll = gaussian_nll(self._require_squared_error(rec), self.log_gamma.exp())
        return self.likelihood_terms(nll, enc, rec, gamma=self.log_gamma.detach().exp())


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

    The stage-2 VAE is trained on the codes standardised per dimension with the stage-1 loss
    (:class:`TwoStageVAEObjective`, learned decoder variance gamma); its decoder and gamma are kept. Sampling includes the
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
        data = check_latents(latents, 2, "two-stage sampler").float()
        shift, scale = data.mean(dim=0), data.std(dim=0).clamp_min(1e-8)
        data = (data - shift) / scale
        net = TwoStageNetConfig(data.shape[1], hidden, depth)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder, decoder = _dense_stack(net, 2 * net.latent_dim), _dense_stack(net, net.latent_dim)
            objective = TwoStageVAEObjective(TwoStageConfig())
            optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters(), objective.log_gamma], lr=lr)
            history = []
            for _ in range(epochs):
                total, batches = 0.0, 0
                for index in torch.randperm(data.shape[0]).split(batch_size):
                    batch = data[index]
                    encoded = EncoderOutput(*encoder(batch).chunk(2, dim=1))
                    z = objective.latent(encoded)
                    decoded = decoder(z)
                    squared_error = (batch - decoded).pow(2)
                    rec = ReconstructionTerms(loss=squared_error.mean(), squared_error=squared_error)
                    loss = objective(encoded, z, decoded, rec, decoder)["loss"]
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total, batches = total + loss.item(), batches + 1
                history.append(total / batches)
        sampler = cls(net, decoder, objective.log_gamma.item(), shift, scale)
        sampler.history = history
        return sampler

    @property
    def dim(self) -> int:
        return self.net.latent_dim

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = cpu_normal(n, self.dim, generator).float()
        noise = cpu_normal(n, self.dim, generator).float()
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
