"""The resumable state of a BO run, saved atomically as ``OUT/state.json`` after every iteration.

Everything the next iteration needs that cannot be recomputed lives here: the proposals
(with their exact float64 latent points and the value each one entered the surrogate
with), the trust region, the retrainings (whose last weights lie beside the state), the last surrogate fit's hyperparameters (the next fit starts
from them), the held-out surrogate metrics and the timings. No random-generator state is
needed: every stage draws from a seed derived from (run seed, iteration, stage), so an
iteration run after a resume is the same as in an uninterrupted run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from grammar_ae.errors import CheckpointError
from grammar_ae.utils.files import atomic_write_json

STATE_FILE = "state.json"
STATE_FORMAT = 1
STAGES = {"fit": 0, "acquisition": 1, "decoding": 2, "retraining": 3, "offspring": 4}


def stage_seed(seed: int, iteration: int, stage: str) -> int:
    """A seed for one stage of one iteration, independent of everything run before it."""
    return int(np.random.SeedSequence([seed, iteration, STAGES[stage]]).generate_state(1)[0])


@dataclass
class Proposal:
    iteration: int
    index: int
    string: str  # the chosen decode; for an invalid point the most frequent grammatical one, or ""
    valid: bool
    score: float | None
    duplicate: bool
    observed: float  # the value the surrogate sees: the score, or the worst training score if invalid
    latent: list[float]


def objective_calls(proposals: list[Proposal]) -> int:
    """Calls of the objective on new strings: valid proposals not known before (neither in the
    starting data nor proposed earlier)."""
    return sum(p.valid and not p.duplicate for p in proposals)


@dataclass
class BOState:
    config: dict
    checkpoint_sha256: str
    completed_iterations: int = 0
    proposals: list[Proposal] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    surrogate_test: dict | None = None
    trust_region: dict | None = None  # TrustRegionState fields, for runs with a trust region
    surrogate_hyperparameters: dict | None = None  # the last fit's, to warm-start the next
    # per retraining: iteration, proposals and objective calls before it, loss, the weights' sha256
    retrainings: list[dict] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=dict)  # wall-clock seconds per stage
    cpu_timings: dict[str, list[float]] = field(default_factory=dict)  # CPU seconds of the process per stage

    def add_timing(self, stage: str, seconds: float, cpu_seconds: float) -> None:
        self.timings.setdefault(stage, []).append(round(seconds, 4))
        self.cpu_timings.setdefault(stage, []).append(round(cpu_seconds, 4))

    def save(self, out_dir: Path) -> None:
        atomic_write_json(out_dir / STATE_FILE, {"format": STATE_FORMAT, **asdict(self)})


def load_state(out_dir: Path) -> BOState | None:
    """The saved state in ``out_dir``, None if there is none."""
    path = out_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        if raw.pop("format") != STATE_FORMAT:
            raise ValueError("unsupported state format")
        raw["proposals"] = [Proposal(**proposal) for proposal in raw["proposals"]]
        return BOState(**raw)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: not a readable BO state ({error}); remove it to start over") from error
