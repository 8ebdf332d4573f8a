"""A trust region for the acquisition: search near the best point found so far (TuRBO-style).

Eriksson et al. (2019) optimise the acquisition in a box around the incumbent whose size
adapts to progress. Here the box is centred on the best observed point (training data and
proposals) with half-width ``half_width`` times the per-dimension standard deviation of the
encoded training data, clipped to the search bounds. After each batch the half-width is
doubled after ``success_tolerance`` consecutive batches that improved the best score and
halved after ``failure_tolerance`` consecutive batches that found new strings but no better
one, within [``minimum``, ``maximum``]. A batch without improvement in which fewer than
``min_new_fraction`` of the strings are new (most decode to strings already known) doubles
it at once: the box has become smaller than what the decoder resolves, and shrinking
further would only re-propose known strings (TuRBO's continuous objectives have no such
floor). Widths are measured in data standard deviations, not as TuRBO's
fraction of the unit cube, because encoded data fill only the centre of their bounding box:
in 25 dimensions the box is almost all empty corners, where decodes are poor.

A region that has not improved for ``restart_after`` batches at its maximum width restarts
(TuRBO restarts a region that has collapsed): its centre is abandoned, and the next region,
at the initial width, is centred on the best observed point outside the maximum-width boxes
of every abandoned centre (the best point when there is none). 0 never restarts. A batch
improves when it beats the score of its region's centre.

The local surrogate (TuRBO / LOL-BO style) is fitted on the region's local data: the
scored points nearest its centre (``local_points``), in the same standardised units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from grammar_ae.errors import ConfigError, require_counts

ROWS_PER_CHECK = 4096  # rows compared with the abandoned centres at once
QUERIES_PER_SEARCH = 256  # nearest-row queries at once (a 256 x n distance matrix)


@dataclass
class TrustRegionConfig:
    initial: float = 0.5
    minimum: float = 0.125
    maximum: float = 2.0
    success_tolerance: int = 3
    failure_tolerance: int = 1
    min_new_fraction: float = 0.5
    restart_after: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.initial <= self.maximum:
            raise ConfigError(
                f"trust region widths need 0 < minimum <= initial <= maximum, got "
                f"{self.minimum}, {self.initial}, {self.maximum}"
            )
        require_counts(self, ("success_tolerance", "failure_tolerance"), "trust region ")
        if not 0 <= self.min_new_fraction <= 1:
            raise ConfigError(f"trust region min_new_fraction must be in [0, 1], got {self.min_new_fraction}")
        if self.restart_after < 0:
            raise ConfigError(f"trust region restart_after must be at least 0, got {self.restart_after}")


@dataclass
class TrustRegionState:
    """The current half-width, the run of successes or failures since it last changed, the
    batches without improvement at the maximum width, and the centres of abandoned regions."""

    half_width: float
    successes: int = 0
    failures: int = 0
    stalls: int = 0
    abandoned: list[dict] = field(default_factory=list)  # {"iteration": after which, "centre": latent}
    widths_used: list[float] = field(default_factory=list)  # one per iteration

    def update(self, improved: bool, new_fraction: float, config: TrustRegionConfig) -> None:
        """Record one batch: did it improve the best score, what fraction of it was new strings?"""
        self.stalls = 0 if improved or self.half_width < config.maximum else self.stalls + 1
        if improved:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= config.success_tolerance:
                self.half_width, self.successes = min(2 * self.half_width, config.maximum), 0
        elif new_fraction == 0 or new_fraction < config.min_new_fraction:
            self.half_width, self.successes, self.failures = min(2 * self.half_width, config.maximum), 0, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= config.failure_tolerance:
                self.half_width, self.failures = max(self.half_width / 2, config.minimum), 0

    def restart_if_stalled(self, centre: Tensor, iteration: int, config: TrustRegionConfig) -> bool:
        """Abandon ``centre`` and start a region at the initial width after ``restart_after``
        stalled batches; True when it did."""
        if not config.restart_after or self.stalls < config.restart_after:
            return False
        self.abandoned.append({"iteration": iteration, "centre": centre.tolist()})
        self.half_width, self.successes, self.failures, self.stalls = config.initial, 0, 0, 0
        return True


def region_centre(
    latents: Tensor, ranked: Sequence[int] | Tensor, abandoned: list[dict], scale: Tensor, half_width: float,
) -> int:
    """The first row of ``ranked`` (row indices, best first) outside the boxes ``centre +-
    half_width * scale`` of every abandoned centre; the best row when every row is inside one."""
    if not abandoned:
        return int(ranked[0])
    centres = torch.tensor([a["centre"] for a in abandoned], dtype=latents.dtype)
    for rows in torch.as_tensor(ranked).split(ROWS_PER_CHECK):  # the best rows first; most searches stop in the first chunk
        inside = ((latents[rows, None, :] - centres).abs() <= half_width * scale).all(dim=-1).any(dim=-1)
        outside = (~inside).nonzero()
        if len(outside):
            return int(rows[outside[0, 0]])
    return int(ranked[0])


def trust_region_bounds(centre: Tensor, scale: Tensor, half_width: float, bounds: Tensor) -> Tensor:
    """(2, d) box ``centre +- half_width * scale`` clipped to ``bounds`` (2, d)."""
    lower = (centre - half_width * scale).clamp(bounds[0], bounds[1])
    upper = (centre + half_width * scale).clamp(bounds[0], bounds[1])
    return torch.stack([lower, upper])


def local_points(latents: Tensor, centre: Tensor, scale: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` rows of ``latents`` nearest ``centre`` in units of ``scale``
    (all rows when there are fewer), nearest first."""
    distances = ((latents - centre) / scale.clamp_min(1e-12)).square().sum(dim=-1)
    return torch.topk(distances, min(count, len(latents)), largest=False).indices


def nearest_rows(latents: Tensor, queries: Tensor, scale: Tensor) -> Tensor:
    """For each row of ``queries``, the index of the nearest row of ``latents`` in units of
    ``scale`` (none when ``latents`` has no rows)."""
    if not len(latents):
        return torch.zeros(0, dtype=torch.long)
    scaled = latents / scale.clamp_min(1e-12)
    return torch.cat([
        torch.cdist(chunk / scale.clamp_min(1e-12), scaled).argmin(dim=1) for chunk in queries.split(QUERIES_PER_SEARCH)
    ])
