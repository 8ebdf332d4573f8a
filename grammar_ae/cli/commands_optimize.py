"""`grammar-ae optimize` (latent-space BO) and `grammar-ae benchmark bo` (optimizers side by side)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.retraining import RetrainingConfig
from grammar_ae.bo.targets import check_target_grammar, get_target, import_target_module
from grammar_ae.bo.trust_region import TrustRegionConfig
from grammar_ae.cli.commands_model import load_sequence_run
from grammar_ae.errors import ConfigError
from grammar_ae.utils.device import resolve_device

benchmark_app = typer.Typer(help="Benchmark protocols of the papers this toolkit reproduces.", no_args_is_help=True)

# options shared by both commands
TARGET = typer.Option(
    ..., "--target", "-t", help="Objective: logp, qed (molecules), expression, or one registered by --target-module.",
)
CHECKPOINT = typer.Option(..., "--checkpoint", "-c", help="Trained model directory, or a shipped model's name.")
DATA = typer.Option(
    None, "--data", help="Starting data: a named data set (moses-sample, zinc250k, expressions, ...) or a file "
    "(default: the model's training strings).",
)
ITERATIONS = typer.Option(None, help="Batches (default 5; with --budget, at most 4x the batches it needs).")
BATCH_SIZE = typer.Option(50, help="Points proposed per iteration (q); GA: children per generation.")
SAMPLES_PER_POINT = typer.Option(1, help="Decodes per point: 1 = greedy (argmax); more = Gumbel samples, the most "
                                 "frequent valid kept (the published loop: 500 molecules, 25 expressions).")
CANDIDATES_PER_POINT = typer.Option(
    4, help="Latent points acquired per place in the batch; the batch keeps first, in the acquisition's order, "
    "those decoding to valid strings not known yet (1: every point as acquired).",
)
ACQUISITION = typer.Option("thompson", help="Acquisition: thompson (batch Thompson sampling), ei (batch log-EI) or ucb.")
CANDIDATES = typer.Option(
    "latent", help="bo: latent (acquire latent points, decode them) or offspring (children of the best strings by "
    "the grammar's GA operators, encoded; Thompson sampling over their latent points picks the batch).",
)
THOMPSON_CANDIDATES = typer.Option(
    2000, help="Thompson sampling: the candidate latent points it chooses among (offspring: children bred).",
)
OFFSPRING_POPULATION = typer.Option(10_000, help="Offspring candidates: parents come from this many best strings.")
SURROGATE = typer.Option("local", help="GP: local (exact, on the --local-points points nearest the trust region's "
                         "centre), exact (all points, small sets) or sparse (variational, 500 inducing points).")
LOCAL_POINTS = typer.Option(500, help="Points the local GP is fitted on.")
MAX_TRAINING_POINTS = typer.Option(None, help="Subsample the GP's training set.")
TRUST_REGION = typer.Option(
    True, "--trust-region/--no-trust-region",
    help="Search each batch near the best point so far (adaptive box; see docs), or over the whole box of the data "
    "(latent candidates only).",
)
MIN_NEW_FRACTION = typer.Option(
    TrustRegionConfig.min_new_fraction,
    help="Trust region: a batch with no improvement and fewer new strings than this fraction widens the region "
    "at once (0: only a batch with nothing new).",
)
RESTART_AFTER = typer.Option(
    TrustRegionConfig.restart_after,
    help="Trust region: restart away from the centre after this many batches without improvement at the widest "
    "(0: never).",
)
RETRAIN_EVERY = typer.Option(
    RetrainingConfig.every, help="Weighted retraining: fine-tune the model on strings drawn by score rank before "
    "batch 1 and after every N objective calls on new strings (0: never; bo only).",
)
RETRAIN_SAMPLES = typer.Option(RetrainingConfig.samples, help="Weighted retraining: strings drawn per retraining.")
RETRAIN_RANK_WEIGHT = typer.Option(
    RetrainingConfig.rank_weight, help="Weighted retraining: k in the weight 1/(kN + rank); smaller favours the best.",
)
DEVICE = typer.Option("auto", help="auto, cpu or cuda[:N].")
TARGET_MODULE = typer.Option(None, help="Python module to import first; it registers user targets (register_target).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def _resolve(target: str, target_module: Optional[str], device: str) -> str:
    """Check the target (importing its module) and return the device's name, before any loading."""
    if target_module:
        import_target_module(target_module)
    get_target(target)
    return str(resolve_device(device))


def _load(checkpoint: Path, target: str, device_name: str) -> LatentModel:
    """Load the checkpoint and check that the target scores its grammar's strings."""
    model = load_sequence_run(checkpoint, device_name)
    check_target_grammar(get_target(target), model.grammar_name)
    return model


def _widths(min_new_fraction: float, restart_after: int) -> TrustRegionConfig:
    return TrustRegionConfig(min_new_fraction=min_new_fraction, restart_after=restart_after)


def _retraining(every: int, samples: int, rank_weight: float) -> RetrainingConfig:
    return RetrainingConfig(every=every, samples=samples, rank_weight=rank_weight)


def _entry(entry: dict) -> str:
    atoms = f"  ({entry['heavy_atoms']} heavy atoms)" if entry.get("heavy_atoms") is not None else ""
    return f"{entry['score']:.4f}  {entry['string']}{atoms}"


def optimize(
    target: str = TARGET,
    checkpoint: Path = CHECKPOINT,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (proposals.csv, summary.json, plots)."),
    data: Optional[str] = DATA,
    iterations: Optional[int] = ITERATIONS,
    batch_size: int = BATCH_SIZE,
    budget: Optional[int] = typer.Option(None, help="Stop after this many objective calls on new strings."),
    samples_per_point: int = SAMPLES_PER_POINT,
    candidates_per_point: int = CANDIDATES_PER_POINT,
    acquisition: str = ACQUISITION,
    thompson_candidates: int = THOMPSON_CANDIDATES,
    candidates: str = CANDIDATES,
    offspring_population: int = OFFSPRING_POPULATION,
    surrogate: str = SURROGATE,
    local_points: int = LOCAL_POINTS,
    max_training_points: Optional[int] = MAX_TRAINING_POINTS,
    trust_region: bool = TRUST_REGION,
    min_new_fraction: float = MIN_NEW_FRACTION,
    restart_after: int = RESTART_AFTER,
    retrain_every: int = RETRAIN_EVERY,
    retrain_samples: int = RETRAIN_SAMPLES,
    retrain_rank_weight: float = RETRAIN_RANK_WEIGHT,
    seed: int = typer.Option(0, help="Random seed (split, GP, acquisition, decoding)."),
    device: str = DEVICE,
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    target_module: Optional[str] = TARGET_MODULE,
    quiet: bool = QUIET,
) -> None:
    """Latent-space Bayesian optimization of a target with a trained model."""
    from grammar_ae.bo.loop import BOConfig, run_bo
    from grammar_ae.bo.results import format_score

    device_name = _resolve(target, target_module, device)
    config = BOConfig(
        target, iterations=iterations, batch_size=batch_size, budget=budget, samples_per_point=samples_per_point,
        candidates_per_point=candidates_per_point, acquisition=acquisition, thompson_candidates=thompson_candidates,
        candidates=candidates,
        offspring_population=offspring_population, surrogate=surrogate,
        local_points=local_points, max_training_points=max_training_points, seed=seed, data=data,
        trust_region=trust_region, trust_region_widths=_widths(min_new_fraction, restart_after),
        retraining=_retraining(retrain_every, retrain_samples, retrain_rank_weight), device=device_name,
    )
    summary = run_bo(_load(checkpoint, target, device_name), config, out, resume=resume, progress=not quiet)
    average = summary["average_score"]
    training = summary["training"]
    typer.echo(
        f"valid {summary['valid']}/{summary['proposed']} ({summary['fraction_valid']:.2f}), "
        f"average score {format_score(average)}, {summary['objective_calls']} objective calls on new strings"
    )
    typer.echo(f"starting data's best ({training['data']}): "
               f"{_entry({'score': training['best_score'], 'string': training['best_string']})}")
    for title, key in (("best found", "top3"), ("best new (in neither the data nor an earlier proposal)", "top3_new")):
        typer.echo(f"{title}:")
        for rank, entry in enumerate(summary[key], 1):
            typer.echo(f"{rank}. {_entry(entry)}")
    typer.echo(f"results in {out}")


@benchmark_app.command("bo")
def benchmark_bo(
    target: str = TARGET,
    checkpoint: Path = CHECKPOINT,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (a folder per method and seed, "
                             "bo_benchmark.{csv,md,json}, best_so_far.png)."),
    methods: list[str] = typer.Option(
        ["bo"], "--method", "-m", help="bo, bo-offspring (bo with --candidates offspring), random or ga; repeat the option or "
        "separate by commas for several.",
    ),
    seeds: int = typer.Option(5, help="Number of seeds: runs with seeds 0 .. N-1."),
    budget: int = typer.Option(250, help="Objective calls on new strings per run, the same for every method."),
    threshold: Optional[float] = typer.Option(None, help="Also count the seeds whose best score beats this value."),
    data: Optional[str] = DATA,
    iterations: Optional[int] = ITERATIONS,
    batch_size: int = BATCH_SIZE,
    samples_per_point: int = SAMPLES_PER_POINT,
    candidates_per_point: int = CANDIDATES_PER_POINT,
    acquisition: str = ACQUISITION,
    thompson_candidates: int = THOMPSON_CANDIDATES,
    surrogate: str = SURROGATE,
    local_points: int = LOCAL_POINTS,
    max_training_points: Optional[int] = MAX_TRAINING_POINTS,
    trust_region: bool = TRUST_REGION,
    min_new_fraction: float = MIN_NEW_FRACTION,
    restart_after: int = RESTART_AFTER,
    retrain_every: int = RETRAIN_EVERY,
    retrain_samples: int = RETRAIN_SAMPLES,
    retrain_rank_weight: float = RETRAIN_RANK_WEIGHT,
    random_points: str = typer.Option("gaussian", help="random method: gaussian (fitted to the data) or box."),
    label: Optional[str] = typer.Option(None, help="Model name in the table (default: the checkpoint folder's name)."),
    device: str = DEVICE,
    target_module: Optional[str] = TARGET_MODULE,
    quiet: bool = QUIET,
) -> None:
    """Optimizers side by side over several seeds with one budget of objective calls (PROTOCOLS 6)."""
    from grammar_ae.bo.benchmark import check_methods, run_bo_benchmark, table_markdown
    from grammar_ae.bo.loop import BOConfig

    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: need at least one seed")
    chosen = [name.strip() for value in methods for name in value.split(",") if name.strip()]
    check_methods(chosen)
    device_name = _resolve(target, target_module, device)
    config = BOConfig(
        target, iterations=iterations, batch_size=batch_size, budget=budget, samples_per_point=samples_per_point,
        candidates_per_point=candidates_per_point, acquisition=acquisition, thompson_candidates=thompson_candidates,
        surrogate=surrogate,
        local_points=local_points, max_training_points=max_training_points, data=data, trust_region=trust_region,
        trust_region_widths=_widths(min_new_fraction, restart_after), random_points=random_points,
        retraining=_retraining(retrain_every, retrain_samples, retrain_rank_weight), device=device_name,
    )
    rows = run_bo_benchmark(
        _load(checkpoint, target, device_name), target, list(range(seeds)), config, out,
        label=label or checkpoint.resolve().name, progress=not quiet, methods=chosen, threshold=threshold,
    )
    typer.echo(table_markdown(rows), nl=False)


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
    app.add_typer(benchmark_app, name="benchmark")
