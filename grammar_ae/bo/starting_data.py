"""The data an optimizer starts from: strings, their scores and their latent means.

By default the model's own training strings; ``data`` names another set (``moses-sample``,
``zinc250k``, ``expressions``, ...) or a file, read as ``grammar-ae train --data`` reads it.
Scores are cached by ``scoring.score_many``; latent means are cached the same way under
``$GRAMMAR_AE_CACHE/bo_latents/<checkpoint>-<strings>.npy``, since encoding ZINC-250k with
an autoregressive encoder takes many CPU minutes. Strings are encoded in order of length
(less padding per batch), in chunks that report progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.scoring import score_many, strings_sha256
from grammar_ae.bo.targets import Target
from grammar_ae.data.datasets import resolve_input
from grammar_ae.data.readers import read_strings
from grammar_ae.errors import ConfigError
from grammar_ae.utils.download import cache_root
from grammar_ae.utils.files import atomic_write_npy

ENCODE_CHUNK = 5000  # strings per progress report while encoding
Report = Callable[[str], None]


def starting_strings(model: LatentModel, data: str | None) -> list[str]:
    """The model's training strings (``data`` None) or the strings of a named data set or file."""
    if data is None:
        return model.training_strings()
    return read_strings(resolve_input(data, model.grammar)).strings


def score_starting_strings(target: Target, strings: list[str]) -> np.ndarray:
    """The scores of ``strings`` (NaN where the target cannot score one); a ConfigError when
    fewer than 2 are scorable."""
    scores = score_many(target, strings)
    if np.isfinite(scores).sum() < 2:
        raise ConfigError(f"target {target.name!r} can score fewer than 2 of the {len(strings)} starting strings")
    return scores


def starting_record(
    data: str | None, strings: list[str], scores: np.ndarray, target: Target, worst: float, **split: int,
) -> dict:
    """What a run records of its starting data (``BOState.training``): the set, its ``split``,
    its best string over every scorable one and ``worst``, the score an invalid proposal gets."""
    scored = np.flatnonzero(np.isfinite(scores))
    best = int(scored[target.ranked(scores[scored].tolist())[0]])
    return {
        "data": data or "the model's training strings", "strings": len(strings), "unscorable": len(strings) - len(scored),
        **split, "best_score": float(scores[best]), "best_string": strings[best], "worst_score": worst,
    }


def latent_cache_path(model: LatentModel, strings: Sequence[str]) -> Path:
    return cache_root() / "bo_latents" / f"{model.checkpoint_sha256[:16]}-{strings_sha256(strings)[:32]}.npy"


def encode_cached(model: LatentModel, strings: Sequence[str], report: Report | None = None) -> Tensor:
    """(n, latent_dim) float64 latent means of ``strings``, from the cache when it holds them."""
    path = latent_cache_path(model, strings)
    if path.is_file():
        cached = np.load(path)
        if cached.shape == (len(strings), model.latent_dim):
            return torch.from_numpy(cached)
    latents = encode_by_length(model, strings, report)
    atomic_write_npy(path, latents.numpy())
    return latents


def encode_by_length(model: LatentModel, strings: Sequence[str], report: Report | None = None) -> Tensor:
    """(n, latent_dim) float64 latent means of ``strings``, encoded in order of length."""
    order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
    latents = np.empty((len(strings), model.latent_dim), dtype=np.float64)
    for start in range(0, len(order), ENCODE_CHUNK):
        if report is not None:
            report(f"encode {start:,}/{len(strings):,} strings")
        rows = order[start : start + ENCODE_CHUNK]
        latents[rows] = model.encode_means([strings[i] for i in rows]).double().numpy()
    return torch.from_numpy(latents)
