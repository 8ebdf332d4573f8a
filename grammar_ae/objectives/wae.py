"""WAE-MMD: a deterministic encoder whose aggregate code distribution is pulled to N(0, I) by MMD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from grammar_ae.errors import TrainingError
from grammar_ae.objectives.base import EncoderOutput, Objective, ReconstructionTerms, check_weight, total
from grammar_ae.utils import distributed

IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise ||a_i - b_j||^2 (n, m), smooth everywhere (cdist's gradient is undefined at 0)."""
    sq = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2.0 * a @ b.T
    return sq.clamp_min(0.0)


def imq_mmd(x: Tensor, y: Tensor, prior_std: float = 1.0, scales: tuple[float, ...] = IMQ_SCALES) -> Tensor:
    """Unbiased MMD^2 between samples x (n, d) and y (m, d), inverse multiquadratic kernels.

    k(a, b) = C / (C + ||a - b||^2) with C = 2 d prior_std^2 * scale, summed over ``scales``;
    the within-sample means exclude the diagonal.
    """
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise TrainingError(f"MMD needs at least 2 samples on each side, got {n} and {m}")
    base = 2.0 * x.shape[1] * prior_std**2
    d_xx, d_yy, d_xy = squared_distances(x, x), squared_distances(y, y), squared_distances(x, y)
    off_x = ~torch.eye(n, dtype=torch.bool, device=x.device)
    off_y = ~torch.eye(m, dtype=torch.bool, device=y.device)
    mmd = x.new_zeros(())
    for scale in scales:
        c = base * scale
        k_xx, k_yy, k_xy = c / (c + d_xx), c / (c + d_yy), c / (c + d_xy)
        mmd = mmd + k_xx[off_x].mean() + k_yy[off_y].mean() - 2.0 * k_xy.mean()
    return mmd


@dataclass
class WAEConfig:
    """REC + mmd_weight * MMD(q(z), N(0, I)); one prior draw of batch size per step."""

    mmd_weight: float = 3e-2


class WAEObjective(Objective):
    """MMD is a statistic of the batch: data-parallel training computes it on the global batch
    (every process's codes, gathered with their gradients)."""

    config_class = WAEConfig
    standard_normal_prior: ClassVar[bool] = True

    def __init__(self, config: WAEConfig, name: str = "wae") -> None:
        check_weight(name, "mmd_weight", config.mmd_weight)
        super().__init__(config, name)

    def forward(
        self, enc: EncoderOutput, z: Tensor, decoded: Tensor, rec: ReconstructionTerms, decoder: nn.Module
    ) -> dict[str, Tensor]:
        if self.training:  # data-parallel training: the MMD of the global batch
            z = distributed.gather_rows(z)
        mmd = imq_mmd(z, torch.randn_like(z))
        return total(rec, mmd=(self.config.mmd_weight, mmd))
