"""Decoder smoothness measures of the AR-ELBO study, at given latent codes.

- Local smoothness ||J_D(z)||_F, the Frobenius norm of the decoder's Jacobian at a code: computed
  exactly, one forward-mode derivative (a column of J) per latent dimension. Its mean over the
  encoded means of held-out images is the expected local smoothness (ELS); for a linear decoder
  W z + b it is ||W||_F.
- Expected gap for a perturbation variance v: E ||D(z + eps) - D(z)||^2 with eps ~ N(0, v I),
  averaged over the codes and ``draws`` noise draws each; for a linear decoder it is v ||W||_F^2.

Decoder outputs are summed over their elements (pixels, in [0, 1] for images).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torch.autograd import forward_ad

Decoder = Callable[[Tensor], Tensor]
CHUNK = 250


@torch.no_grad()
def jacobian_norms(decoder: Decoder, z: Tensor) -> Tensor:
    """||J_D(z_i)||_F for every row of ``z`` (n, d), as a CPU float64 tensor (n,)."""
    norms = []
    for chunk in z.split(CHUNK):
        squares = torch.zeros(len(chunk), dtype=torch.float64, device=chunk.device)
        for k in range(chunk.shape[1]):
            tangent = torch.zeros_like(chunk)
            tangent[:, k] = 1.0
            with forward_ad.dual_level():
                column = forward_ad.unpack_dual(decoder(forward_ad.make_dual(chunk, tangent))).tangent
            squares += column.flatten(1).double().pow(2).sum(dim=1)
        norms.append(squares.sqrt().cpu())
    return torch.cat(norms)


def expected_local_smoothness(decoder: Decoder, z: Tensor) -> float:
    """The mean of :func:`jacobian_norms` over the codes ``z``."""
    return float(jacobian_norms(decoder, z).mean())


@torch.no_grad()
def expected_gap(decoder: Decoder, z: Tensor, variance: float, draws: int, generator: torch.Generator) -> float:
    """E ||D(z + eps) - D(z)||^2, eps ~ N(0, variance I): the mean over codes and ``draws`` draws each.

    The noise comes from the CPU ``generator``, so the value is the same on any device.
    """
    total = 0.0
    for chunk in z.split(CHUNK):
        base = decoder(chunk).flatten(1).double()
        for _ in range(draws):
            eps = torch.randn(chunk.shape, generator=generator).to(chunk) * math.sqrt(variance)
            total += float((decoder(chunk + eps).flatten(1).double() - base).pow(2).sum())
    return total / (len(z) * draws)
