"""The latent-space search loop (PROTOCOLS 5): propose, decode, score, repeat; resumable.

``run_bo`` encodes the starting strings (the model's training strings, or the data set
``data`` names; latent means, cached), scores them with the target (cached), splits them
90/10 with the run's seed (the surrogate learns from the 90 %, its accuracy on the 10 %
goes into the summary) and then proposes one batch of latent points per iteration:

- ``method="bo"``: fit the surrogate on everything scored so far (``local``: an exact GP
  on the ``local_points`` points nearest the trust region's centre, started from the last
  fit's hyperparameters; ``exact`` or ``sparse``: on all of them) and pick the batch with
  the acquisition, inside the trust region when there is one;
- ``method="random"``: random latent points from the Gaussian fitted to the starting
  latents (``random_points="gaussian"``) or uniform in their box (``"box"``).

Each point is decoded greedily (``samples_per_point=1``: the decoder's argmax, one
deterministic string per point) or ``samples_per_point`` times by Gumbel sampling, keeping
the most frequent valid string. The acquisition (or the random draw) picks
``candidates_per_point`` points per place in the batch, in its order of preference; all are
decoded, and the batch takes first those whose decodes are valid strings not known yet
(neither starting data nor earlier proposals, each once), then the rest in order. Strings
are compared by the target's key (``Target.key``): for molecules the canonical SMILES, so a
known molecule written with other ring digits or atom order is no new one.
Near a well-sampled optimum most latent points decode to known strings, and without this
a batch spends its places re-proposing them. The check uses the target's validity test
only: the objective is called on the chosen batch alone. An invalid point enters the
surrogate with the worst training score. A ``budget`` counts calls of the objective on new strings (valid
proposals whose key is neither in the starting data nor proposed before): the run stops once it is
spent, each batch shortened to what is left, or after ``iterations`` batches.

With ``candidates="offspring"`` (method "bo", Thompson sampling) the batch is not decoded from
latent points: the grammar's genetic operators (``grammar_ae.bo.offspring``, those of the GA
peer) make ``thompson_candidates`` children of parents drawn from the ``offspring_population``
best strings scored so far; the children that are valid, new and readable by the model are
encoded, the surrogate is fitted on the scored point nearest each child's latent point and
the ``local_points`` best scored points, and batch Thompson sampling over the children's
latent points picks the batch. The model's latent space is still where the surrogate learns and chooses;
the children let a batch leave the decoder's neighbourhood of the data (larger molecules,
for one), which decoding latent points rarely does. The trust region is not used.

With ``retraining.every`` set (method "bo"), the model itself is fine-tuned during the search
on the best strings found so far (weighted retraining, ``grammar_ae.bo.retraining``), and
each batch is proposed and decoded by the latest model.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from grammar_ae.bo.acquisition import AcquisitionConfig, propose, thompson_choice
from grammar_ae.bo.latent_model import LatentModel, RetrainableModel
from grammar_ae.bo.offspring import check_ga_grammar, offspring_of
from grammar_ae.bo.results import format_score, write_outputs
from grammar_ae.bo.retraining import RetrainingConfig, retrain, weights_path
from grammar_ae.bo.scoring import key_many
from grammar_ae.bo.starting_data import (
    encode_by_length, encode_cached, score_starting_strings, starting_record, starting_strings,
)
from grammar_ae.bo.state import STATE_FILE, BOState, Proposal, load_state, objective_calls, stage_seed
from grammar_ae.bo.surrogate import Surrogate, SurrogateConfig, data_bounds, fit_surrogate
from grammar_ae.bo.targets import Target, check_target_grammar, get_target
from grammar_ae.bo.trust_region import (
    TrustRegionConfig, TrustRegionState, local_points, nearest_rows, region_centre, trust_region_bounds,
)
from grammar_ae.errors import CheckpointError, ConfigError, OutputError, require_counts
from grammar_ae.utils.device import resolve_device
from grammar_ae.utils.output_lock import hold_output_lock
from grammar_ae.utils.progress import progress_bar

METHODS = ("bo", "random")
CANDIDATES = ("latent", "offspring")
SURROGATES = ("local", "exact", "sparse")
RANDOM_POINTS = ("gaussian", "box")
ITERATIONS_WITHOUT_BUDGET = 5
ITERATIONS_PER_BUDGET_BATCH = 4  # with a budget, at most 4x the batches it needs when every string is new
RESUMABLE_CHANGES = ("iterations", "budget", "device")  # config fields a resumed run may change
# how a run saved before a setting existed behaved (a dict: settings added inside a nested config)
SETTINGS_BEFORE_ADDED = {
    "candidates_per_point": 1, "trust_region_widths": {"min_new_fraction": 0.0, "restart_after": 0},
    "retraining": {"every": 0}, "candidates": "latent", "offspring_population": 10_000,
}
RETRAINED_TEST_POINTS = 1000  # held-out strings re-encoded after a retraining, for the surrogate's test
Report = Callable[[str], None]


@dataclass
class BOConfig:
    """One run. ``data``: the starting strings (None: the model's training strings).
    ``bounds``: "data" (box of the starting latents) or a margin, the fraction of the box's
    width added on each side. ``max_training_points`` subsamples the surrogate's training
    set. ``trust_region`` searches each batch near the best point observed so far (see
    ``grammar_ae.bo.trust_region``). ``iterations`` None: 5, or with a budget 4x the
    batches the budget needs. ``retraining`` fine-tunes the model during the search (see
    ``grammar_ae.bo.retraining``; method "bo" only). ``candidates`` "offspring" proposes
    children of the ``offspring_population`` best strings instead of decoded latent points
    (see the module docstring; ``thompson_candidates`` children per batch; no trust region)."""

    target: str
    iterations: int | None = None
    batch_size: int = 50
    budget: int | None = None
    method: str = "bo"
    samples_per_point: int = 1
    candidates_per_point: int = 4
    acquisition: str = AcquisitionConfig.name
    candidates: str = "latent"
    offspring_population: int = 10_000
    surrogate: str = "local"
    local_points: int = 500
    fit_iterations: int = SurrogateConfig.fit_iterations
    warm_start: bool = True
    inducing_points: int = SurrogateConfig.inducing_points
    surrogate_epochs: int = SurrogateConfig.epochs
    acquisition_restarts: int = AcquisitionConfig.num_restarts
    acquisition_raw_samples: int = AcquisitionConfig.raw_samples
    thompson_candidates: int = AcquisitionConfig.thompson_candidates
    random_points: str = "gaussian"
    seed: int = 0
    data: str | None = None
    bounds: str | float = "data"
    train_fraction: float = 0.9
    max_training_points: int | None = None
    device: str = "cpu"  # where the GP is fitted and the acquisition optimized
    trust_region: bool = True
    trust_region_widths: TrustRegionConfig = field(default_factory=TrustRegionConfig)
    retraining: RetrainingConfig = field(default_factory=RetrainingConfig)

    def __post_init__(self) -> None:
        if isinstance(self.trust_region_widths, dict):
            self.trust_region_widths = TrustRegionConfig(**self.trust_region_widths)
        if isinstance(self.retraining, dict):
            self.retraining = RetrainingConfig(**self.retraining)
        for name, allowed in (("method", METHODS), ("surrogate", SURROGATES), ("random_points", RANDOM_POINTS),
                              ("candidates", CANDIDATES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        require_counts(self, ("batch_size", "samples_per_point", "candidates_per_point", "local_points", "budget",
                             "iterations", "offspring_population"))
        if self.iterations is None:
            self.iterations = ITERATIONS_WITHOUT_BUDGET if self.budget is None else (
                ITERATIONS_PER_BUDGET_BATCH * math.ceil(self.budget / self.batch_size))
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.bounds != "data" and (isinstance(self.bounds, str) or self.bounds < 0):
            raise ConfigError(f"bounds must be 'data' or a margin >= 0, got {self.bounds!r}")
        if self.retraining.enabled and self.method != "bo":
            raise ConfigError(f"retraining is for method 'bo', not {self.method!r}")
        if self.candidates == "offspring" and (self.method != "bo" or self.acquisition != "thompson"):
            raise ConfigError(f"offspring candidates are for method 'bo' with the thompson acquisition, not "
                              f"method {self.method!r} with {self.acquisition!r}")
        if self.candidates == "offspring" and self.local_points < 2:
            raise ConfigError(f"offspring candidates fit the GP on at least 2 best points: local_points "
                              f"{self.local_points} is too few")
        if self.max_training_points is not None and self.max_training_points < 2:
            raise ConfigError(f"max_training_points must be at least 2, got {self.max_training_points}")
        self.surrogate_config()
        self.acquisition_config()

    def surrogate_config(self) -> SurrogateConfig:
        return SurrogateConfig(
            kind="sparse" if self.surrogate == "sparse" else "exact", fit_iterations=self.fit_iterations,
            inducing_points=self.inducing_points, epochs=self.surrogate_epochs,
        )

    def acquisition_config(self) -> AcquisitionConfig:
        return AcquisitionConfig(
            name=self.acquisition, num_restarts=self.acquisition_restarts, raw_samples=self.acquisition_raw_samples,
            thompson_candidates=self.thompson_candidates,
        )

    def search_box(self, latents: Tensor) -> Tensor:
        """The (2, d) search box around ``latents``: their box, widened by the ``bounds`` margin."""
        return data_bounds(latents, 0.0 if self.bounds == "data" else float(self.bounds))

    def decoding(self) -> str:
        return "greedy" if self.samples_per_point == 1 else f"{self.samples_per_point} samples each"


@dataclass
class TrainingData:
    """The scored starting set, split for the surrogate."""

    latents: Tensor  # (n, d) float64, the surrogate's training part
    scores: Tensor
    test_latents: Tensor
    test_scores: Tensor
    bounds: Tensor  # (2, d) search box
    spread: Tensor  # (d,) standard deviation of the training latents, the trust region's unit
    known: set[str]  # the target's keys of the starting strings, to flag rediscoveries
    worst: float
    strings: list[str]  # of the training part, row by row
    test_strings: list[str]
    proposals_included: int = 0  # the first proposals, re-encoded into ``latents`` after a retraining


@contextmanager
def _timed(state: BOState, stage: str) -> Iterator[None]:
    start, cpu_start = time.perf_counter(), time.process_time()
    yield
    state.add_timing(stage, time.perf_counter() - start, time.process_time() - cpu_start)


def prepare_training_data(
    model: LatentModel, target: Target, config: BOConfig, state: BOState, report: Report = lambda status: None,
) -> TrainingData:
    """Encode and score the starting strings, split them with the run's seed."""
    strings = starting_strings(model, config.data)
    with _timed(state, "encode"):
        latents = encode_cached(model, strings, report)
    report(f"score {len(strings):,} starting strings ({target.name})")
    with _timed(state, "score_training"):
        scores = torch.from_numpy(score_starting_strings(target, strings))
    scorable = torch.isfinite(scores)
    order = torch.from_numpy(np.random.default_rng(config.seed).permutation(len(strings)))
    n_train = round(config.train_fraction * len(strings))
    train = order[:n_train][scorable[order[:n_train]]]
    test = order[n_train:][scorable[order[n_train:]]]
    worst = target.worst(scores[train].tolist())
    if config.max_training_points is not None and len(train) > config.max_training_points:
        train = train[: config.max_training_points]  # already a seeded random order
    state.training = starting_record(
        config.data, strings, scores.numpy(), target, worst, train_split=n_train, surrogate_points=len(train),
        test_points=len(test),
    )
    return TrainingData(
        latents[train], scores[train], latents[test], scores[test], config.search_box(latents),
        latents[train].std(dim=0), set(key_many(target, strings)), worst,
        [strings[i] for i in train.tolist()], [strings[i] for i in test.tolist()],
    )


def retrained_data(
    model: LatentModel, base: TrainingData, state: BOState, target: Target, config: BOConfig, report: Report,
) -> TrainingData:
    """The surrogate's data after the last retraining: the ``surrogate_points`` best strings of
    the starting data's training part and every valid new proposal made before it, encoded by
    ``model`` (later proposals enter with their latent points, as in a run never resumed). The
    held-out strings are encoded only while the surrogate's test is still to be made."""
    proposals = state.proposals[: state.retrainings[-1]["proposals"]]
    rows = target.ranked(base.scores.tolist())[: config.retraining.surrogate_points]
    new = [p for p in proposals if p.valid and not p.duplicate and model.can_encode(p.string)]
    strings = [base.strings[i] for i in rows] + [p.string for p in new]
    scores = torch.cat([base.scores[rows], torch.tensor([p.score for p in new], dtype=torch.float64)])
    test_strings = base.test_strings[:RETRAINED_TEST_POINTS] if state.surrogate_test is None else []
    with _timed(state, "reencode"):
        latents = encode_by_length(model, strings + test_strings, report)
    train, test = latents[: len(strings)], latents[len(strings) :]
    return TrainingData(
        train, scores, test, base.test_scores[: len(test_strings)], config.search_box(train), train.std(dim=0),
        base.known, base.worst, strings, test_strings, proposals_included=len(proposals),
    )


def choose_string(samples: list[str | None], target: Target) -> tuple[str, bool]:
    """The most frequent decode the target accepts and True; else the most frequent
    grammatical decode (or "") and False."""
    counts = Counter(sample for sample in samples if sample is not None)
    for string, _ in counts.most_common():
        if target.is_valid(string):
            return string, True
    return (counts.most_common(1)[0][0] if counts else ""), False


def prefer_new(choices: list[tuple[str, bool]], keys: list[str], seen: set[str], count: int) -> list[int]:
    """Indices of ``count`` of ``choices`` (string, valid), in order: first the valid ones
    whose ``keys`` (the target's, one per choice) are not in ``seen`` (the first of each key),
    then the rest."""
    new, rest, fresh = [], [], set()
    for index, ((_, valid), key) in enumerate(zip(choices, keys, strict=True)):
        if valid and key not in seen and key not in fresh:
            fresh.add(key)
            new.append(index)
        else:
            rest.append(index)
    return (new + rest)[:count]


def decode_points(model: LatentModel, points: Tensor, samples_per_point: int, seed: int) -> list[list[str | None]]:
    """Per point, its greedy decode (``samples_per_point`` 1) or that many sampled decodes."""
    if samples_per_point == 1:
        return [[string] for string in model.decode(points)]
    return model.decode_samples(points, samples_per_point, seed)


def _resumed_state(out_dir: Path, config: BOConfig, model: LatentModel, resume: bool) -> BOState:
    state = load_state(out_dir)
    if state is None:
        return BOState(config=asdict(config), checkpoint_sha256=model.checkpoint_sha256)
    if not resume:
        raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    if state.checkpoint_sha256 != model.checkpoint_sha256:
        raise CheckpointError(f"{out_dir}: the run was started with checkpoint {state.checkpoint_sha256[:12]}, not this one")
    weights = weights_path(out_dir, len(state.retrainings))
    if state.retrainings and not weights.is_file():
        raise CheckpointError(f"{weights}: missing; the run cannot resume without it")
    saved = _as_saved(state.config, config.target)
    changed = [key for key, value in asdict(config).items() if key not in RESUMABLE_CHANGES and saved[key] != value]
    if changed:
        raise ConfigError(f"{out_dir}: cannot resume with a different {', '.join(changed)} than the saved run")
    state.config = asdict(config)
    return state


def _as_saved(saved: dict, target: str) -> dict:
    """The saved config with every setting added since filled in as the run behaved then."""
    defaults = asdict(BOConfig(target))
    filled = {**defaults, **SETTINGS_BEFORE_ADDED, **saved}
    for key, before in SETTINGS_BEFORE_ADDED.items():
        if isinstance(before, dict):
            filled[key] = {**defaults[key], **before, **saved.get(key, {})}
    return filled


def finished(config: BOConfig, state: BOState) -> bool:
    spent = config.budget is not None and objective_calls(state.proposals) >= config.budget
    return spent or state.completed_iterations >= config.iterations


def run_bo(model: LatentModel, config: BOConfig, out_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Run (or resume) the search and return the summary; see the module docstring.
    ``out_dir`` is locked while the run writes it."""
    target = get_target(config.target)
    check_target_grammar(target, model.grammar_name)
    device = resolve_device(config.device)
    if config.candidates == "offspring":
        check_ga_grammar(model.grammar_name)
    if config.retraining.enabled and not isinstance(model, RetrainableModel):
        raise ConfigError(f"retraining: the model ({type(model).__name__}) cannot be fine-tuned")
    out_dir = Path(out_dir)
    with hold_output_lock(out_dir):
        state = _resumed_state(out_dir, config, model, resume)
        if finished(config, state):
            summary_path = out_dir / "summary.json"
            return json.loads(summary_path.read_text()) if summary_path.is_file() else write_outputs(out_dir, state, target)
        return _iterate(model, target, config, state, out_dir, device, progress)


def _progress_count(config: BOConfig, state: BOState) -> int:
    return objective_calls(state.proposals) if config.budget is not None else state.completed_iterations


def _iterate(
    model: LatentModel, target: Target, config: BOConfig, state: BOState, out_dir: Path, device: torch.device,
    progress: bool,
) -> dict:
    """The remaining iterations, saving the state and the outputs after each."""
    name = "BO" if config.method == "bo" else "random search"
    unit = "objective calls on new strings" if config.budget is not None else "iterations"
    with progress_bar(f"{name} ({unit})", config.budget or config.iterations, enabled=progress) as advance:
        def report(status: str) -> None:
            advance(0, status=status)

        done = _progress_count(config, state)
        advance(done)
        base = data = prepare_training_data(model, target, config, state, report)
        if state.retrainings:
            model = _retrained_model(model, out_dir, state)
            data = retrained_data(model, base, state, target, config, report)
        summary: dict = {}
        while not finished(config, state):
            iteration = state.completed_iterations + 1
            last = state.retrainings[-1]["calls"] if state.retrainings else None
            if config.retraining.due(objective_calls(state.proposals), last):
                model = _retrain(iteration, model, base, target, config, state, out_dir, report)
                data = retrained_data(model, base, state, target, config, report)
            _run_iteration(iteration, model, target, config, data, state, device, report)
            state.completed_iterations = iteration
            try:
                state.save(out_dir)
                _remove_stale_weights(out_dir, len(state.retrainings))
                summary = write_outputs(out_dir, state, target)
            except OSError as error:
                saved = load_state(out_dir)
                raise OutputError(
                    f"writing to {out_dir} failed ({error.strerror or error}); {STATE_FILE} holds "
                    f"{saved.completed_iterations if saved else 0} iterations: make room, then continue with --resume"
                ) from None
            now = _progress_count(config, state)
            advance(now - done, status=_standing(summary, state))
            done = now
    return summary


def _retrain(
    iteration: int, model: RetrainableModel, base: TrainingData, target: Target, config: BOConfig, state: BOState,
    out_dir: Path, report: Report,
) -> RetrainableModel:
    """Fine-tune ``model`` on the starting data and the proposals so far, save its weights and
    start the trust region and the surrogate's warm start again."""
    new = [p for p in state.proposals if p.valid and not p.duplicate and model.can_train_on(p.string)]
    strings, scores = base.strings + [p.string for p in new], base.scores.tolist() + [p.score for p in new]
    report(f"iteration {iteration}/{config.iterations}: retrain the model on {config.retraining.samples:,} strings "
           f"drawn by rank from {len(strings):,}")
    with _timed(state, "retraining"):
        model, loss = retrain(model, strings, scores, config.retraining, target.maximize,
                              stage_seed(config.seed, iteration, "retraining"))
    count = len(state.retrainings) + 1
    model.save_weights(weights_path(out_dir, count))
    state.retrainings.append(
        {"iteration": iteration, "proposals": len(state.proposals), "calls": objective_calls(state.proposals),
         "loss": loss, "sha256": model.checkpoint_sha256})
    state.trust_region = state.surrogate_hyperparameters = None
    return model


def _retrained_model(model: RetrainableModel, out_dir: Path, state: BOState) -> RetrainableModel:
    """The model of the run's last retraining, from its saved weights."""
    path = weights_path(out_dir, len(state.retrainings))
    retrained = model.with_weights(path)
    if retrained.checkpoint_sha256 != state.retrainings[-1]["sha256"]:
        raise CheckpointError(f"{path}: not the weights the run saved; remove the run folder to start over")
    return retrained


def _remove_stale_weights(out_dir: Path, count: int) -> None:
    """Remove the weights of every retraining before the last one the state counts."""
    for earlier in range(1, count):
        weights_path(out_dir, earlier).unlink(missing_ok=True)


def _standing(summary: dict, state: BOState) -> str:
    """The console's line after an iteration: best found, best new, the data's best, calls."""
    best = summary["best_so_far"][-1]
    new = summary["top3_new"][0]["score"] if summary["top3_new"] else None
    return (
        f"iteration {state.completed_iterations}: best found {format_score(best)} (new {format_score(new)}), "
        f"data's best {format_score(state.training['best_score'])}, "
        f"{objective_calls(state.proposals)} objective calls on new strings"
    )


def _batch_size(config: BOConfig, state: BOState) -> int:
    if config.budget is None:
        return config.batch_size
    return min(config.batch_size, config.budget - objective_calls(state.proposals))


def _run_iteration(
    iteration: int, model: LatentModel, target: Target, config: BOConfig, data: TrainingData,
    state: BOState, device: torch.device, report: Report,
) -> None:
    since = state.proposals[data.proposals_included :]  # the earlier ones are in ``data``, re-encoded
    proposed = torch.tensor([p.latent for p in since], dtype=torch.float64).reshape(-1, model.latent_dim)
    observed = torch.tensor([p.observed for p in since], dtype=torch.float64)
    latents, scores = torch.cat([data.latents, proposed]), torch.cat([data.scores, observed])
    q = _batch_size(config, state)
    candidates = q * config.candidates_per_point
    stage = f"iteration {iteration}/{config.iterations}:"
    ranked = target.ranked(scores.tolist())
    region, incumbent = None, ranked[0]
    seen = data.known | {target.key(p.string) for p in state.proposals if p.valid}
    if config.candidates == "offspring":
        strings = data.strings + [p.string if p.valid else None for p in since]
        children, keys, points = _offspring_batch(
            iteration, stage, model, target, config, data, latents, scores, strings, seen, q, state, device, report)
        choices = [(child, True) for child in children]
    else:
        if config.method == "random":
            report(f"{stage} draw {candidates} random latent points ({config.random_points})")
            with _timed(state, "acquisition"):
                points = random_points(
                    data, config.random_points, candidates, stage_seed(config.seed, iteration, "acquisition"))
        else:
            if config.trust_region:
                region = _current_region(state, config)
                incumbent = region_centre(
                    latents, ranked, region.abandoned, data.spread, config.trust_region_widths.maximum)
            points = _acquire(
                iteration, stage, latents, scores, incumbent, region, candidates, target, config, data, state, device,
                report)
        report(f"{stage} decode {len(points)} points ({config.decoding()})")
        with _timed(state, "decoding"):
            decoded = decode_points(
                model, points.float(), config.samples_per_point, stage_seed(config.seed, iteration, "decoding"))
            choices = [choose_string(samples, target) for samples in decoded]
            keys = [target.key(string) for string, _ in choices]
    chosen = prefer_new(choices, keys, seen, q)
    report(f"{stage} score {len(chosen)} strings ({target.name})")
    with _timed(state, "scoring"):
        for index, candidate in enumerate(chosen):
            string, valid = choices[candidate]
            score = target.score_one(string) if valid else None
            valid = score is not None
            duplicate = valid and keys[candidate] in seen
            if valid:
                seen.add(keys[candidate])
            state.proposals.append(Proposal(
                iteration, index, string, valid, score, duplicate,
                observed=score if valid else data.worst, latent=points[candidate].tolist(),
            ))
    if region is not None:
        _adapt_region(region, state.proposals[-len(chosen):], float(scores[incumbent]), target, config)
        if region.restart_if_stalled(latents[incumbent], iteration, config.trust_region_widths):
            report(f"{stage} no improvement in {config.trust_region_widths.restart_after} batches at the widest: "
                   f"the trust region restarts away from this centre")
        state.trust_region = asdict(region)


def _fit(
    iteration: int, stage: str, latents: Tensor, scores: Tensor, bounds: Tensor, data: TrainingData,
    test_rows: Callable[[Tensor], Tensor], target: Target, config: BOConfig, state: BOState, device: torch.device,
    report: Report,
) -> Surrogate:
    """The surrogate fitted on (``latents``, ``scores``) with inputs scaled from ``bounds``;
    the first time, judged on the held-out points ``test_rows(data.test_latents)`` picks
    (where it is used)."""
    report(f"{stage} fit the {config.surrogate} GP on {len(latents):,} points")
    warm = state.surrogate_hyperparameters if config.warm_start else None
    with _timed(state, "fit"):
        surrogate = fit_surrogate(
            latents, scores, bounds, target.maximize, config.surrogate_config(),
            stage_seed(config.seed, iteration, "fit"), device, warm_start=warm,
        )
    if config.warm_start and config.surrogate != "sparse":
        state.surrogate_hyperparameters = surrogate.hyperparameters()
    if state.surrogate_test is None and len(data.test_scores):
        rows = test_rows(data.test_latents)
        with _timed(state, "surrogate_test"):
            state.surrogate_test = surrogate.test_metrics(data.test_latents[rows].to(device), data.test_scores[rows])
    return surrogate


def _acquire(
    iteration: int, stage: str, latents: Tensor, scores: Tensor, incumbent: int, region: TrustRegionState | None,
    q: int, target: Target, config: BOConfig, data: TrainingData, state: BOState, device: torch.device,
    report: Report,
) -> Tensor:
    """Fit the surrogate and return the acquisition's q latent points (CPU, float64)."""
    centre = latents[incumbent]
    box = data.bounds
    if region is not None:
        box = trust_region_bounds(centre, data.spread, region.half_width, data.bounds)
    def nearest_centre(points: Tensor) -> Tensor:
        return local_points(points, centre, data.spread, config.local_points)

    fit_latents, fit_scores = latents, scores
    if config.surrogate == "local":  # fitted and judged where it is used: the points nearest the centre
        rows = nearest_centre(latents)
        fit_latents, fit_scores = latents[rows], scores[rows]
    surrogate = _fit(iteration, stage, fit_latents, fit_scores, data.bounds, data,
                     nearest_centre if config.surrogate == "local" else _every_row, target, config, state, device, report)
    report(f"{stage} acquire {q} points ({config.acquisition}"
           f"{', trust region' if region is not None else ''})")
    with _timed(state, "acquisition"):
        points = propose(
            surrogate.model, surrogate.best_f, box.to(device), q, config.acquisition_config(),
            stage_seed(config.seed, iteration, "acquisition"), centre=centre.to(device) if region is not None else None,
        )
    return points.cpu().to(torch.float64)


def _offspring_batch(
    iteration: int, stage: str, model: LatentModel, target: Target, config: BOConfig, data: TrainingData,
    latents: Tensor, scores: Tensor, strings: list[str | None], seen: set[str], q: int, state: BOState,
    device: torch.device, report: Report,
) -> tuple[list[str], list[str], Tensor]:
    """Up to q children of the best strings so far (``strings``: one per row of ``latents``,
    None where invalid), chosen by Thompson sampling over their latent points, with their keys
    and those points."""
    sign = 1.0 if target.maximize else -1.0
    best = [row for row in target.ranked(scores.tolist()) if strings[row] is not None][: config.offspring_population]
    report(f"{stage} breed {config.thompson_candidates:,} children of the {len(best):,} best strings")
    with _timed(state, "offspring"):
        children = offspring_of(
            model.grammar_name, model.grammar, [(sign * float(scores[row]), strings[row]) for row in best],
            config.thompson_candidates, stage_seed(config.seed, iteration, "offspring"))
        fresh: dict[str, str] = {}  # key -> the first child with it
        for child in children:
            if target.is_valid(child) and (key := target.key(child)) not in seen and key not in fresh:
                if model.can_encode(child):
                    fresh[key] = child
        keys, children = list(fresh), list(fresh.values())
    if not children:
        return [], [], torch.empty(0, model.latent_dim, dtype=torch.float64)
    report(f"{stage} encode {len(children):,} new children")
    with _timed(state, "encode_children"):
        points = model.encode_means(children).to(torch.float64)
    def nearest_children(candidates: Tensor) -> Tensor:
        return nearest_rows(candidates, points, data.spread).unique()

    rows = torch.cat([nearest_children(latents), torch.tensor(best[: config.local_points])]).unique()
    spanned = torch.cat([data.bounds, latents[rows], points])  # children and proposals may lie outside the data's box
    surrogate = _fit(iteration, stage, latents[rows], scores[rows], data_bounds(spanned, 0.0), data, nearest_children,
                     target, config, state, device, report)
    report(f"{stage} choose {q} of the children (thompson)")
    with _timed(state, "acquisition"):
        chosen = thompson_choice(
            surrogate.model, points.to(device), q, stage_seed(config.seed, iteration, "acquisition")).cpu()
    return [children[i] for i in chosen.tolist()], [keys[i] for i in chosen.tolist()], points[chosen]


def _every_row(points: Tensor) -> Tensor:
    return torch.arange(len(points))


def random_points(data: TrainingData, kind: str, count: int, seed: int) -> Tensor:
    """``count`` latent points from the Gaussian fitted to the training latents, or uniform in the box."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "box":
        lower, upper = data.bounds
        return lower + torch.rand(count, len(lower), generator=generator, dtype=torch.float64) * (upper - lower)
    mean = data.latents.mean(dim=0)
    covariance = torch.cov(data.latents.T) + 1e-9 * torch.eye(len(mean), dtype=torch.float64)
    factor = torch.linalg.cholesky(covariance)
    return mean + torch.randn(count, len(mean), generator=generator, dtype=torch.float64) @ factor.T


def _current_region(state: BOState, config: BOConfig) -> TrustRegionState:
    """The saved trust region (or a new one), with this iteration's width recorded."""
    region = TrustRegionState(**state.trust_region) if state.trust_region else TrustRegionState(
        config.trust_region_widths.initial)
    region.widths_used.append(region.half_width)
    return region


def _adapt_region(
    region: TrustRegionState, batch: list[Proposal], best_before: float, target: Target, config: BOConfig,
) -> None:
    """Resize the region after ``batch``: did it beat ``best_before``, how much of it was new?"""
    valid = [p for p in batch if p.valid]
    improved = bool(valid) and target.best([*(p.score for p in valid), best_before]) != best_before
    new_fraction = sum(not p.duplicate for p in valid) / len(batch)
    region.update(improved, new_fraction, config.trust_region_widths)
