"""Convolutional encoder and decoder of the regularized-autoencoder paper's appendix.

Encoder: four Conv(k4, s2) -> BatchNorm -> ReLU blocks with 128, 256, 512, 1024 filters,
flatten, dense to the latent (and a second dense head for the log-variance when the
objective is stochastic). Decoder: dense to an s x s x 1024 map, ConvTranspose(k4, s2)
-> BatchNorm -> ReLU blocks with 512, 256 (and 128 for 64x64 images) filters, a final
3x3 convolution to the image channels, and a sigmoid. s is 8, or 4 for 16x16 images.
``width`` scales every filter count (1/16 makes a network small enough for a CPU).
``depth`` n repeats each convolution n times, the strided one last: n - 1 (3x3, stride 1)
convolutions -> BatchNorm -> ReLU come before every strided encoder block and before every
upsampling decoder block. The code can pass an extra latent layer and a normalisation
(`grammar_ae.models.image.latent`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from grammar_ae.errors import ConfigError
from grammar_ae.models.image.latent import latent_layer, latent_normalisation, mean_head
from grammar_ae.objectives.base import EncoderOutput

ENCODER_FILTERS = (128, 256, 512, 1024)
# image size -> (side of the first decoder map, filters of the upsampling blocks)
DECODER_LAYOUT = {16: (4, (512, 256)), 32: (8, (512, 256)), 64: (8, (512, 256, 128))}


@dataclass(frozen=True)
class ConvNetConfig:
    channels: int
    image_size: int
    latent_dim: int
    width: float = 1.0
    stochastic: bool = False
    depth: int = 1
    latent_norm: str = "none"
    latent_noise_std: float | None = None
    latent_layer: str = "none"

    def __post_init__(self) -> None:
        if self.image_size not in DECODER_LAYOUT:
            raise ConfigError(
                f"image size {self.image_size}: the convolutional networks take square images of "
                f"side {', '.join(map(str, DECODER_LAYOUT))}"
            )
        if self.channels < 1 or self.latent_dim < 1:
            raise ConfigError(f"channels {self.channels} and latent dim {self.latent_dim} must be >= 1")
        if not self.width > 0:
            raise ConfigError(f"width {self.width}: expected a number > 0")

    def filters(self, base: int) -> int:
        return max(1, round(base * self.width))


def _block(convolution: nn.Module, channels: int) -> list[nn.Module]:
    return [convolution, nn.BatchNorm2d(channels), nn.ReLU()]


class ConvEncoder(nn.Module):
    def __init__(self, config: ConvNetConfig):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = config.channels
        for base in ENCODER_FILTERS:
            out_channels = config.filters(base)
            for _ in range(config.depth - 1):
                layers += _block(nn.Conv2d(in_channels, out_channels, 3, 1, 1), out_channels)
                in_channels = out_channels
            layers += _block(nn.Conv2d(in_channels, out_channels, 4, 2, 1), out_channels)
            in_channels = out_channels
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = in_channels * (config.image_size // 2 ** len(ENCODER_FILTERS)) ** 2
        self.mu = mean_head(flat, config.latent_dim, config.latent_norm)
        self.logvar = nn.Linear(flat, config.latent_dim) if config.stochastic else None
        self.latent_layer = latent_layer(config.latent_layer, config.latent_dim)
        self.latent_norm = latent_normalisation(config.latent_norm, config.latent_dim, config.latent_noise_std)

    def forward(self, x: Tensor) -> EncoderOutput:
        h = self.features(x)
        mu = self.mu(h)
        if self.latent_layer is not None:
            mu = self.latent_layer(mu)
        if self.latent_norm is not None:
            mu = self.latent_norm(mu)
        return EncoderOutput(mu, None if self.logvar is None else self.logvar(h))


class ConvDecoder(nn.Module):
    def __init__(self, config: ConvNetConfig):
        super().__init__()
        side, upsampling = DECODER_LAYOUT[config.image_size]
        first = config.filters(1024)
        self.dense = nn.Linear(config.latent_dim, first * side * side)
        self.unflatten = nn.Unflatten(1, (first, side, side))
        layers: list[nn.Module] = []
        in_channels = first
        for base in upsampling:
            out_channels = config.filters(base)
            for _ in range(config.depth - 1):
                layers += _block(nn.Conv2d(in_channels, in_channels, 3, 1, 1), in_channels)
            layers += _block(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), out_channels)
            in_channels = out_channels
        self.blocks = nn.Sequential(*layers, nn.Conv2d(in_channels, config.channels, 3, 1, 1), nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        return self.blocks(self.unflatten(self.dense(z)))
