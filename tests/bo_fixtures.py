"""A small test-local latent model over real strings, for the BO tests (not shipped)."""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from grammar_ae.bo.loop import BOConfig
from grammar_ae.grammar.cfg import Grammar

DATA = Path(os.environ.get("GRAMMAR_AE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TARGET = "1 / 3 + x + sin( x * x )"
# the defaults at a small size: local GP (warm-started), Thompson sampling in the trust region, greedy decodes
DEFAULTS = BOConfig(target="expression", iterations=3, batch_size=4, local_points=100, thompson_candidates=200, seed=7)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test its own cache of encodings and scores (a module importing this uses it)."""
    monkeypatch.setenv("GRAMMAR_AE_CACHE", str(tmp_path / "cache"))


def sample_expressions(count: int, seed: int) -> list[str]:
    """A seeded random ``count`` of the published expressions."""
    with gzip.open(DATA / "equation2_15_dataset.txt.gz", "rt") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    return [lines[i] for i in np.random.default_rng(seed).choice(len(lines), count, replace=False)]


class Interrupted(Exception):
    """Stands for a crash in the middle of an iteration."""


class ProjectionModel:
    """Test fixture (not shipped): encode = a seeded random projection of the token counts
    (space-separated tokens for expressions, characters for SMILES); sampled decodes = one of
    the 3 nearest training strings, sometimes with one 'x' turned into '2' (a string the data
    may not contain), sometimes None (an unfinished derivation); the greedy decode = the
    nearest training string, the same way changed or None as a function of the point."""

    checkpoint_sha256 = "test-fixture-projection-model"

    def __init__(self, strings: list[str], latent_dim: int = 4, invalid_rate: float = 0.3, seed: int = 0,
                 grammar_name: str = "expressions"):
        self.grammar_name = grammar_name
        self.grammar = Grammar.load(grammar_name)
        self.strings = strings
        self.latent_dim = latent_dim
        self.invalid_rate = invalid_rate
        self.vocabulary = sorted({token for s in strings for token in self._tokens(s)})
        self.projection = np.random.default_rng(seed).normal(size=(len(self.vocabulary), latent_dim))
        self.latents = self._project(strings)
        self.decode_calls = 0
        self.fail_on_call: int | None = None

    def _tokens(self, string: str) -> list[str]:
        return string.split() if self.grammar_name == "expressions" else list(string)

    def _project(self, strings):
        counts = np.zeros((len(strings), len(self.vocabulary)))
        for row, string in enumerate(strings):
            for token in self._tokens(string):
                counts[row, self.vocabulary.index(token)] += 1
        return (counts @ self.projection).astype(np.float32)

    def training_strings(self) -> list[str]:
        return list(self.strings)

    def encode_means(self, strings):
        return torch.from_numpy(self._project(list(strings)))

    def can_encode(self, string: str) -> bool:
        return all(token in self.vocabulary for token in self._tokens(string))

    def _count_call(self) -> None:
        self.decode_calls += 1
        if self.decode_calls == self.fail_on_call:
            raise Interrupted

    def decode(self, z):
        self._count_call()
        distances = ((z.numpy()[:, None, :] - self.latents[None]) ** 2).sum(-1)
        decoded = []
        for point, nearest in zip(z.numpy(), distances.argmin(axis=1)):
            draw = (abs(float(point.sum())) * 1000) % 1  # a pseudo-random number fixed by the point
            string = self.strings[nearest]
            decoded.append(None if draw < self.invalid_rate else string.replace("x", "2", 1) if draw > 0.7 else string)
        return decoded

    def decode_samples(self, z, samples_per_point, seed):
        self._count_call()
        rng = np.random.default_rng(seed)
        distances = ((z.numpy()[:, None, :] - self.latents[None]) ** 2).sum(-1)
        decoded = []
        for nearest in np.argsort(distances, axis=1, kind="stable")[:, :3]:
            samples = []
            for _ in range(samples_per_point):
                if rng.random() < self.invalid_rate:
                    samples.append(None)
                    continue
                string = self.strings[nearest[rng.choice(3, p=[0.6, 0.3, 0.1])]]
                samples.append(string.replace("x", "2", 1) if rng.random() < 0.2 else string)
            decoded.append(samples)
        return decoded


def read_rows(out: Path) -> list[dict]:
    with open(out / "proposals.csv", newline="") as handle:
        return list(csv.DictReader(handle))
