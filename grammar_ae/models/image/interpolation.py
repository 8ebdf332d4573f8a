"""Paths between latent codes: the interpolation figure and the interpolation FID use them."""

from __future__ import annotations

import torch
from torch import Tensor


def slerp(a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (linear where they are parallel)."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12).clamp(-1.0, 1.0).unsqueeze(-1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    t = torch.as_tensor(t, dtype=a.dtype)
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / safe
    return torch.where(parallel, (1 - t) * a + t * b, spherical)
