"""One pass of further training over given batches: the weighted retraining of latent-space
optimization (``grammar_ae.bo.retraining``) fine-tunes a trained model this way."""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch import Tensor

from grammar_ae.training.trainer import TrainableModel


def fine_tune(
    model: TrainableModel, batches: Sequence[Tensor], learning_rate: float, seed: int, grad_clip: float = 1.0,
) -> float:
    """Train ``model`` (a ``torch.nn.Module``) in place, one Adam step per batch in the given
    order (a fresh optimizer), and leave it in eval mode; returns the mean loss over the
    batches. The objective's random draws come from ``seed``, so the result is reproducible."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for batch in batches:
            loss = model.loss(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    return sum(losses) / len(losses) if losses else float("nan")


def weights_sha256(module: torch.nn.Module) -> str:
    """A digest of ``module``'s parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
