"""Loss terms as plain functions of tensors; the objectives combine them with weights.

Reductions follow one convention: sum over latent (or data) dimensions, mean over the batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from grammar_ae.errors import TrainingError


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over dimensions, mean over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def half_squared_norm(z: Tensor) -> Tensor:
    """||z||^2 / 2 summed over dimensions, mean over the batch (RAE code term, CV-VAE KL)."""
    return 0.5 * z.pow(2).sum(dim=1).mean()


def reparameterise(mu: Tensor, logvar: Tensor, noise_scale: float = 1.0) -> Tensor:
    """mu + noise_scale * exp(logvar / 2) * eps, eps ~ N(0, I)."""
    return mu + noise_scale * torch.exp(0.5 * logvar) * torch.randn_like(mu)


def parameter_l2(module: nn.Module) -> Tensor:
    """Sum of squares of every trainable parameter of ``module`` (weights and biases)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("L2 penalty: the decoder has no trainable parameters")
    return torch.stack([p.pow(2).sum() for p in params]).sum()


def gradient_penalty(decoded: Tensor, z: Tensor, create_graph: bool = True) -> Tensor:
    """Mean over the batch of ||d decoded.sum() / d z_i||^2, differentiable if ``create_graph``.

    For decoders that treat samples independently this is the squared norm of each sample's
    output-sum gradient with respect to its own code.
    """
    if not (z.requires_grad and decoded.requires_grad):
        raise TrainingError(
            "gradient penalty: z and the decoder output must be part of the autograd graph; "
            "decode under torch.enable_grad() with z.requires_grad_() (see Objective.needs_latent_grad)"
        )
    (grad,) = torch.autograd.grad(decoded.sum(), z, create_graph=create_graph)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


_SPECTRAL_NORM_LAYERS = (
    nn.Linear,
    nn.Conv1d, nn.Conv2d, nn.Conv3d,
    nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
)


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> list[str]:
    """Spectrally normalise every weight matrix of ``module`` in place; return the names covered.

    Covered: the ``weight`` of Linear, Conv{1,2,3}d and ConvTranspose{1,2,3}d layers,
    and every ``weight_ih_l*`` / ``weight_hh_l*`` matrix of RNN / GRU / LSTM layers (the gate
    blocks of a GRU are stacked in one matrix, so each gate's norm is bounded by 1 as well).
    Not covered: biases, normalisation layers, embeddings. One power iteration runs per
    forward pass in training mode.
    """
    covered: list[str] = []
    for prefix, layer in list(module.named_modules()):
        if isinstance(layer, _SPECTRAL_NORM_LAYERS):
            names = ["weight"]
        elif isinstance(layer, nn.RNNBase):
            names = [n for n, _ in layer.named_parameters(recurse=False) if n.startswith("weight_")]
        else:
            continue
        for name in names:
            spectral_norm(layer, name=name, n_power_iterations=n_power_iterations)
            covered.append(f"{prefix}.{name}" if prefix else name)
    if not covered:
        raise TrainingError("spectral normalisation: the decoder has no Linear, Conv or RNN layer")
    return covered


def gaussian_nll(squared_error: Tensor, variance: Tensor) -> Tensor:
    """Gaussian decoder NLL with the given variances, constants dropped.

    (1/2) sum_D ((x - x_hat)^2 / variance + log variance), mean over the batch; ``variance`` is a
    scalar, (D,), (B, 1) or (B, D), anything that broadcasts against the squared errors (B, D).
    """
    return 0.5 * (squared_error / variance + variance.log()).sum(dim=1).mean()


def binary_cross_entropy(probabilities: Tensor, target: Tensor) -> Tensor:
    """-(t ln p + (1 - t) ln(1 - p)) per element, each logarithm clamped at -100 as torch's
    ``binary_cross_entropy`` does; written out so that it also runs under autocast."""
    log_p = probabilities.log().clamp_min(-100.0)
    log_not_p = torch.log1p(-probabilities).clamp_min(-100.0)
    return -(target * log_p + (1.0 - target) * log_not_p)


def standard_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
