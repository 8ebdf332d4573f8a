"""A trained run loaded for use: its checkpoint, the model in eval mode, the device, and the
latent samplers of every family (the training prior, or ex-post densities fitted on training
codes and cached in the run directory)."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import Tensor

from grammar_ae.errors import CheckpointError, ConfigError
from grammar_ae.models.base import AutoEncoder
from grammar_ae.objectives import (
    FITTED_KINDS,
    LatentSampler,
    StandardNormalSampler,
    fit_sampler,
    load_sampler,
    save_sampler,
)
from grammar_ae.utils.device import resolve_device
from grammar_ae.utils.files import sha256_file
from grammar_ae.utils.progress import progress_bar

CHECKPOINT_NAMES = ("best.pt", "last.pt")
SAMPLER_LATENTS = 20_000
"""Training codes (at most; a seeded subset of larger sets) that ex-post densities are fitted on."""
SAMPLER_KINDS = ("prior", StandardNormalSampler.kind, *FITTED_KINDS)
SAMPLER_FILE = "sampler_{kind}_{digest}.pt"
"""The file a fitted sampler is cached in, in a run directory."""
SAMPLER_FILES = SAMPLER_FILE.format(kind="*", digest="*")
LATENT_CHUNK = 1_000
"""Training items encoded per progress step when fitting densities."""


def checkpoint_path(path: str | Path) -> Path:
    """The checkpoint file of a run directory (best.pt, else last.pt) or the file itself."""
    path = Path(path)
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no checkpoint (best.pt or last.pt) in this directory")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    return path


def sampler_subset(items: Sequence | np.ndarray) -> Sequence | np.ndarray:
    """At most ``SAMPLER_LATENTS`` of ``items`` (a list or an array): a seeded random subset, in order."""
    if len(items) <= SAMPLER_LATENTS:
        return items
    rows = np.sort(np.random.default_rng(0).choice(len(items), SAMPLER_LATENTS, replace=False))
    return items[rows] if isinstance(items, np.ndarray) else [items[i] for i in rows]


class TrainedRun(ABC):
    """A run's model in eval mode, built from a checkpoint ``state`` read from ``checkpoint_file``
    (``grammar_ae.models.loading.load_run`` reads it); subclasses say how a spec becomes a
    model and what the training items are. ``progress`` shows the slow steps (reading the
    data set, encoding training items for a density) on stderr."""

    family: ClassVar[str]

    def __init__(self, checkpoint_file: Path, state: dict, device: str = "auto", progress: bool = False):
        self.checkpoint_file = Path(checkpoint_file)
        self.progress = progress
        self.run_dir = self.checkpoint_file.parent
        self.device = resolve_device(device)
        self.state = state
        self.record = state.get("record", {})
        self.epoch = state.get("epoch")
        self.model = self.build_model(state["model_spec"])
        try:
            self.model.load_state_dict(state["model_state"])
        except (RuntimeError, KeyError) as error:
            raise CheckpointError(f"{self.checkpoint_file}: weights do not fit the model it describes ({error})") from None
        self.model.to(self.device).eval()
        self._samplers: dict[tuple[str, str], LatentSampler] = {}

    @abstractmethod
    def build_model(self, spec: dict) -> AutoEncoder:
        """The model the stored spec describes."""

    @abstractmethod
    def training_items(self) -> Sequence | np.ndarray:
        """The items the model was trained on (strings, images)."""

    @abstractmethod
    def encode_items(self, items: Sequence | np.ndarray) -> Tensor:
        """Latent means (N, d) on the CPU of items like the training items."""

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @cached_property
    def checkpoint_sha256(self) -> str:
        return sha256_file(self.checkpoint_file)

    @cached_property
    def training_latents(self) -> Tensor:
        """Codes of (at most ``SAMPLER_LATENTS``, seeded) training items, for ex-post densities."""
        items = sampler_subset(self.training_items())
        codes = []
        with progress_bar(f"encoding {len(items):,} training items for a latent density", len(items),
                          enabled=self.progress) as advance:
            for start in range(0, len(items), LATENT_CHUNK):
                codes.append(self.encode_items(items[start : start + LATENT_CHUNK]))
                advance(len(codes[-1]))
        return torch.cat(codes)

    def prior_sampler(self) -> LatentSampler | None:
        """The training prior, or None for models without one."""
        return self.model.objective.prior_sampler(self.latent_dim)

    def prior_name(self) -> str:
        """What the "prior" sampler is: the training prior's kind, or the fitted Gaussian."""
        prior = self.prior_sampler()
        return f"prior ({prior.kind})" if prior is not None else "fitted gaussian"

    def sampler(self, kind: str, **options: Any) -> LatentSampler:
        """``prior`` (the training prior; a fitted Gaussian for models without one), ``standard-normal``
        (N(0, I), for any model), or an ex-post ``gaussian``, ``gmm`` or ``two-stage`` density fitted
        on training codes (``options`` go to its fitter). Fitted samplers are cached in the run
        directory per checkpoint and options."""
        if kind == "prior":
            prior = self.prior_sampler()
            return prior if prior is not None else self.sampler("gaussian")
        if kind == StandardNormalSampler.kind:
            return StandardNormalSampler(self.latent_dim)
        if kind not in SAMPLER_KINDS:
            raise ConfigError(f"sampler {kind!r} is unknown; expected one of {', '.join(SAMPLER_KINDS)}")
        key = (kind, json.dumps(options, sort_keys=True))
        if key not in self._samplers:
            digest = hashlib.sha256(f"{self.checkpoint_sha256} {key[1]}".encode()).hexdigest()[:12]
            path = self.run_dir / SAMPLER_FILE.format(kind=kind, digest=digest)
            try:
                self._samplers[key] = load_sampler(path)
            except CheckpointError:  # absent or damaged: fitted now
                self._samplers[key] = fit_sampler(kind, self.training_latents, **options)
                save_sampler(path, self._samplers[key])
        return self._samplers[key]
