"""Weighted retraining (Tripp, Daxberger and Hernandez-Lobato, NeurIPS 2020): during the search
the model is fine-tuned on strings drawn by score rank, so that its latent space gives more
room to high-scoring strings, and the search goes on in the new latent space.

Before batch 1, and before the first batch after every ``every`` objective calls on new
strings since the last retraining (Tripp et al. retrain every 50 new points), ``samples``
strings are drawn with replacement from the surrogate's starting strings and the valid new
proposals so far, string i with probability proportional to 1 / (k N + rank_i) (rank 0 the
best of the N strings, k = ``rank_weight``: a small k concentrates the draw on the best). A
copy of the current model is trained one pass over them (batches of ``batch_size`` strings
of similar length, Adam at ``learning_rate``, a fresh optimizer each time) and saved in the
run's folder, so that a resumed run goes on with the same weights. The surrogate then sees
the ``surrogate_points`` best starting strings and every valid new proposal (that the model
can read), encoded by the new model; the trust region and the surrogate's warm start begin
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from grammar_ae.bo.latent_model import RetrainableModel
from grammar_ae.errors import ConfigError, require_counts

WEIGHTS_FILE = "retrained-{count}.pt"


@dataclass
class RetrainingConfig:
    """``every``: objective calls on new strings between retrainings (0: never retrain)."""

    every: int = 0
    samples: int = 2000
    rank_weight: float = 1e-3
    learning_rate: float = 3e-4
    batch_size: int = 64
    surrogate_points: int = 5000

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ConfigError(f"retraining every must be 0 (never) or at least 1, got {self.every}")
        require_counts(self, ("samples", "batch_size", "surrogate_points"), "retraining ")
        for name in ("rank_weight", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"retraining {name} must be positive, got {getattr(self, name)}")

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def due(self, calls: int, calls_at_last: int | None) -> bool:
        """Whether the model is retrained before the next batch, after ``calls`` objective calls
        on new strings, ``calls_at_last`` of them before the last retraining (None: none yet)."""
        return self.enabled and (calls_at_last is None or calls - calls_at_last >= self.every)


def rank_probabilities(scores: Sequence[float], rank_weight: float, maximize: bool) -> np.ndarray:
    """Each score's probability of being drawn: proportional to 1 / (k N + rank), rank 0 the best
    (ties in order of appearance)."""
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values if maximize else values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    weights = 1.0 / (rank_weight * len(values) + ranks)
    return weights / weights.sum()


def retrain(
    model: RetrainableModel, strings: Sequence[str], scores: Sequence[float], config: RetrainingConfig,
    maximize: bool, seed: int,
) -> tuple[RetrainableModel, float]:
    """A copy of ``model`` fine-tuned on ``config.samples`` of ``strings`` drawn by the rank of
    their ``scores``, and its mean training loss."""
    rows = np.random.default_rng(seed).choice(
        len(strings), size=config.samples, p=rank_probabilities(scores, config.rank_weight, maximize))
    return model.fine_tuned([strings[i] for i in rows], config.learning_rate, config.batch_size, seed)


def weights_path(out_dir: Path, count: int) -> Path:
    """Where a run keeps the weights of its ``count``-th retraining."""
    return out_dir / WEIGHTS_FILE.format(count=count)
