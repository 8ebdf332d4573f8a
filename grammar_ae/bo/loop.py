"""The latent-space BO loop (PROTOCOLS 5): fit, acquire, decode, score, repeat; resumable.

``run_bo`` encodes the model's training strings (latent means), scores them with the
target (cached on disk), splits them 90/10 with the run's seed (the GP learns from the 90 %,
its accuracy on the 10 % goes into the summary) and then, for each iteration, refits the
surrogate on everything scored so far, picks a batch of latent points, decodes each point
``samples_per_point`` times and keeps its most frequent valid string. An invalid point
enters the surrogate with the worst training score.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from grammar_ae.bo.acquisition import AcquisitionConfig, propose
from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.results import compact, write_outputs
from grammar_ae.bo.scoring import score_many
from grammar_ae.bo.state import STATE_FILE, BOState, Proposal, load_state, stage_seed
from grammar_ae.bo.surrogate import SurrogateConfig, data_bounds, fit_surrogate
from grammar_ae.bo.targets import Target, check_target_grammar, get_target
from grammar_ae.bo.trust_region import TrustRegionConfig, TrustRegionState, trust_region_bounds
from grammar_ae.errors import CheckpointError, ConfigError, OutputError
from grammar_ae.utils.device import resolve_device
from grammar_ae.utils.output_lock import hold_output_lock
from grammar_ae.utils.progress import progress_bar

SAMPLES_PER_POINT = {"smiles": 500}  # any other grammar: DEFAULT_SAMPLES_PER_POINT
DEFAULT_SAMPLES_PER_POINT = 25
RESUMABLE_CHANGES = ("iterations", "device")  # config fields a resumed run may change


@dataclass
class BOConfig:
    """One BO run. ``bounds``: "data" (box of the training latents) or a margin, the fraction
    of the box's width added on each side. ``max_training_points`` subsamples the GP's
    training set (useful on CPU). ``trust_region`` searches each batch near the best point
    observed so far (see ``grammar_ae.bo.trust_region``)."""

    target: str
    iterations: int = 5
    batch_size: int = 50
    samples_per_point: int | None = None  # None: 500 for molecules, 25 otherwise
    acquisition: str = "ei"
    surrogate: str = "sparse"
    inducing_points: int = 500
    surrogate_epochs: int = SurrogateConfig.epochs
    acquisition_restarts: int = AcquisitionConfig.num_restarts
    acquisition_raw_samples: int = AcquisitionConfig.raw_samples
    seed: int = 0
    bounds: str | float = "data"
    train_fraction: float = 0.9
    max_training_points: int | None = None
    device: str = "cpu"  # where the GP is fitted and the acquisition optimized
    trust_region: bool = False
    trust_region_widths: TrustRegionConfig = field(default_factory=TrustRegionConfig)

    def validate(self) -> None:
        for name in ("iterations", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.samples_per_point is not None and self.samples_per_point < 1:
            raise ConfigError(f"samples_per_point must be at least 1, got {self.samples_per_point}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.bounds != "data" and (isinstance(self.bounds, str) or self.bounds < 0):
            raise ConfigError(f"bounds must be 'data' or a margin >= 0, got {self.bounds!r}")
        if self.max_training_points is not None and self.max_training_points < 2:
            raise ConfigError(f"max_training_points must be at least 2, got {self.max_training_points}")
        self.surrogate_config().validate()
        self.acquisition_config().validate()
        self.trust_region_widths.validate()

    def surrogate_config(self) -> SurrogateConfig:
        return SurrogateConfig(kind=self.surrogate, inducing_points=self.inducing_points, epochs=self.surrogate_epochs)

    def acquisition_config(self) -> AcquisitionConfig:
        return AcquisitionConfig(
            name=self.acquisition, num_restarts=self.acquisition_restarts, raw_samples=self.acquisition_raw_samples,
        )

    def samples_for(self, grammar_name: str) -> int:
        if self.samples_per_point is not None:
            return self.samples_per_point
        return SAMPLES_PER_POINT.get(grammar_name, DEFAULT_SAMPLES_PER_POINT)


@dataclass
class TrainingData:
    """The scored training set, split for the surrogate."""

    latents: Tensor  # (n, d) float64, the surrogate's training part
    scores: Tensor
    test_latents: Tensor
    test_scores: Tensor
    bounds: Tensor  # (2, d) search box
    spread: Tensor  # (d,) standard deviation of the training latents, the trust region's unit
    known: set[str]  # compact training strings, to flag rediscoveries
    worst: float


@contextmanager
def _timed(state: BOState, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    state.add_timing(stage, time.perf_counter() - start)


def prepare_training_data(model: LatentModel, target: Target, config: BOConfig, state: BOState) -> TrainingData:
    """Encode and score the training strings, split them with the run's seed."""
    strings = model.training_strings()
    with _timed(state, "encode"):
        latents = model.encode_means(strings).to(torch.float64)
    with _timed(state, "score_training"):
        scores = torch.from_numpy(score_many(target, strings))
    scorable = torch.isfinite(scores)
    if int(scorable.sum()) < 2:
        raise ConfigError(f"target {target.name!r} can score fewer than 2 of the model's {len(strings)} training strings")
    order = torch.from_numpy(np.random.default_rng(config.seed).permutation(len(strings)))
    n_train = round(config.train_fraction * len(strings))
    train = order[:n_train][scorable[order[:n_train]]]
    test = order[n_train:][scorable[order[n_train:]]]
    worst = target.worst(scores[train].tolist())
    best = target.best(scores[train].tolist())
    if config.max_training_points is not None and len(train) > config.max_training_points:
        train = train[: config.max_training_points]  # already a seeded random order
    margin = 0.0 if config.bounds == "data" else float(config.bounds)
    state.training = {
        "strings": len(strings), "unscorable": int((~scorable).sum()), "train_split": n_train,
        "surrogate_points": len(train), "test_points": len(test), "best_score": best, "worst_score": worst,
    }
    return TrainingData(
        latents[train], scores[train], latents[test], scores[test], data_bounds(latents, margin),
        latents[train].std(dim=0), {compact(s) for s in strings}, worst,
    )


def choose_string(samples: list[str | None], target: Target) -> tuple[str, float | None]:
    """The most frequent decode the target accepts, with its score; else the most frequent
    grammatical decode (or "") and None."""
    counts = Counter(sample for sample in samples if sample is not None)
    for string, _ in counts.most_common():
        if target.is_valid(string):
            score = target.score_one(string)
            if score is not None:
                return string, score
    return (counts.most_common(1)[0][0] if counts else ""), None


def _resumed_state(out_dir: Path, config: BOConfig, model: LatentModel, resume: bool) -> BOState:
    state = load_state(out_dir)
    if state is None:
        return BOState(config=asdict(config), checkpoint_sha256=model.checkpoint_sha256)
    if not resume:
        raise ConfigError(f"{out_dir} already holds a BO run; pass --resume to continue it or choose another --out")
    if state.checkpoint_sha256 != model.checkpoint_sha256:
        raise CheckpointError(f"{out_dir}: the run was started with checkpoint {state.checkpoint_sha256[:12]}, not this one")
    defaults = asdict(BOConfig(config.target))  # settings added since the run was saved take their defaults
    changed = [
        key for key, value in asdict(config).items()
        if key not in RESUMABLE_CHANGES and state.config.get(key, defaults[key]) != value
    ]
    if changed:
        raise ConfigError(f"{out_dir}: cannot resume with a different {', '.join(changed)} than the saved run")
    state.config = asdict(config)
    return state


def run_bo(model: LatentModel, config: BOConfig, out_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Run (or resume) latent-space BO and return the summary; see the module docstring.
    ``out_dir`` is locked while the run writes it."""
    config.validate()
    target = get_target(config.target)
    check_target_grammar(target, model.grammar_name)
    device = resolve_device(config.device)
    out_dir = Path(out_dir)
    with hold_output_lock(out_dir):
        state = _resumed_state(out_dir, config, model, resume)
        if state.completed_iterations >= config.iterations:
            summary_path = out_dir / "summary.json"
            return json.loads(summary_path.read_text()) if summary_path.is_file() else write_outputs(out_dir, state, target)
        return _iterate(model, target, config, state, out_dir, device, progress)


def _iterate(
    model: LatentModel, target: Target, config: BOConfig, state: BOState, out_dir: Path, device: torch.device,
    progress: bool,
) -> dict:
    """The remaining iterations, saving the state and the outputs after each."""
    unit_box = torch.stack([torch.zeros(model.latent_dim), torch.ones(model.latent_dim)]).to(device, torch.float64)
    with progress_bar("BO iterations", config.iterations, enabled=progress) as advance:
        advance(state.completed_iterations, status=f"encoding and scoring the training strings ({target.name})")
        data = prepare_training_data(model, target, config, state)
        summary: dict = {}
        best = "-"
        for iteration in range(state.completed_iterations + 1, config.iterations + 1):
            advance(0, status=f"best so far {best} | iteration {iteration}: fit, acquire, decode, score")
            _run_iteration(iteration, model, target, config, data, state, unit_box, device)
            state.completed_iterations = iteration
            try:
                state.save(out_dir)
                summary = write_outputs(out_dir, state, target)
            except OSError as error:
                saved = load_state(out_dir)
                raise OutputError(
                    f"writing to {out_dir} failed ({error.strerror or error}); {STATE_FILE} holds "
                    f"{saved.completed_iterations if saved else 0} iterations: make room, then continue with --resume"
                ) from None
            best = "-" if summary["best_so_far"][-1] is None else f"{summary['best_so_far'][-1]:.4f}"
            advance(1, status=f"best so far {best}")
    return summary


def _run_iteration(
    iteration: int, model: LatentModel, target: Target, config: BOConfig, data: TrainingData,
    state: BOState, unit_box: Tensor, device: torch.device,
) -> None:
    proposed = torch.tensor([p.latent for p in state.proposals], dtype=torch.float64).reshape(-1, model.latent_dim)
    observed = torch.tensor([p.observed for p in state.proposals], dtype=torch.float64)
    latents, scores = torch.cat([data.latents, proposed]), torch.cat([data.scores, observed])
    with _timed(state, "fit"):
        surrogate = fit_surrogate(
            latents, scores, data.bounds, target.maximize, config.surrogate_config(),
            stage_seed(config.seed, iteration, "fit"), device,
        )
    if state.surrogate_test is None and len(data.test_scores):
        with _timed(state, "surrogate_test"):
            state.surrogate_test = surrogate.test_metrics(data.test_latents, data.test_scores)
    region, search_box = None, unit_box
    if config.trust_region:
        region = _current_region(state, config)
        incumbent = target.ranked(scores.tolist())[0]
        box = trust_region_bounds(latents[incumbent], data.spread, region.half_width, data.bounds)
        search_box = surrogate.to_unit(box.to(device)).clamp(0, 1)
    with _timed(state, "acquisition"):
        unit = propose(
            surrogate.model, surrogate.best_f, search_box, config.batch_size, config.acquisition_config(),
            stage_seed(config.seed, iteration, "acquisition"),
        )
        points = surrogate.from_unit(unit).cpu()
    with _timed(state, "decoding"):
        decoded = model.decode_samples(
            points.float(), config.samples_for(model.grammar_name), stage_seed(config.seed, iteration, "decoding"),
        )
    with _timed(state, "scoring"):
        seen = data.known | {compact(p.string) for p in state.proposals if p.valid}
        for index, (latent, samples) in enumerate(zip(points, decoded)):
            string, score = choose_string(samples, target)
            valid = score is not None
            duplicate = valid and compact(string) in seen
            if valid:
                seen.add(compact(string))
            state.proposals.append(Proposal(
                iteration, index, string, valid, score, duplicate,
                observed=score if valid else data.worst, latent=latent.tolist(),
            ))
    if region is not None:
        _adapt_region(region, state.proposals[-len(points):], float(scores[incumbent]), target, config)
        state.trust_region = asdict(region)


def _current_region(state: BOState, config: BOConfig) -> TrustRegionState:
    """The saved trust region (or a new one), with this iteration's width recorded."""
    region = TrustRegionState(**state.trust_region) if state.trust_region else TrustRegionState(
        config.trust_region_widths.initial)
    region.widths_used.append(region.half_width)
    return region


def _adapt_region(
    region: TrustRegionState, batch: list[Proposal], best_before: float, target: Target, config: BOConfig,
) -> None:
    """Resize the region after ``batch``: did it beat ``best_before``, did it find any new string?"""
    valid = [p for p in batch if p.valid]
    improved = bool(valid) and target.best([*(p.score for p in valid), best_before]) != best_before
    region.update(improved, any(not p.duplicate for p in valid), config.trust_region_widths)
