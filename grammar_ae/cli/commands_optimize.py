"""`grammar-ae optimize` (latent-space BO) and `grammar-ae benchmark bo` (the multi-seed protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.targets import check_target_grammar, get_target, import_target_module
from grammar_ae.cli.commands_model import load_sequence_run
from grammar_ae.errors import ConfigError
from grammar_ae.utils.device import resolve_device

benchmark_app = typer.Typer(help="Benchmark protocols of the papers this toolkit reproduces.", no_args_is_help=True)

# options shared by both commands
TARGET = typer.Option(
    ..., "--target", "-t", help="Objective: logp, qed (molecules), expression, or one registered by --target-module.",
)
CHECKPOINT = typer.Option(..., "--checkpoint", "-c", help="Trained model directory, or a shipped model's name.")
ITERATIONS = typer.Option(5, help="BO iterations.")
BATCH_SIZE = typer.Option(50, help="Points proposed per iteration (q).")
SAMPLES_PER_POINT = typer.Option(None, help="Decodes per point (default: 500 molecules, 25 otherwise).")
ACQUISITION = typer.Option("ei", help="Acquisition: ei (batch log-EI), ucb or thompson.")
SURROGATE = typer.Option("sparse", help="GP: sparse (variational, 500 inducing points) or exact (small sets).")
MAX_TRAINING_POINTS = typer.Option(None, help="Subsample the GP's training set (useful on CPU).")
TRUST_REGION = typer.Option(
    False, "--trust-region", help="Search each batch near the best point so far (adaptive box; see docs).",
)
DEVICE = typer.Option("auto", help="auto, cpu or cuda[:N].")
TARGET_MODULE = typer.Option(None, help="Python module to import first; it registers user targets (register_target).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def _load(checkpoint: Path, target: str, target_module: Optional[str], device: str) -> tuple[LatentModel, str]:
    """Resolve the target (failing fast), then load the checkpoint and check their grammars agree."""
    if target_module:
        import_target_module(target_module)
    resolved = get_target(target)
    device_name = str(resolve_device(device))
    model = load_sequence_run(checkpoint, device_name)
    check_target_grammar(resolved, model.grammar_name)
    return model, device_name


def optimize(
    target: str = TARGET,
    checkpoint: Path = CHECKPOINT,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (proposals.csv, summary.json, plots)."),
    iterations: int = ITERATIONS,
    batch_size: int = BATCH_SIZE,
    samples_per_point: Optional[int] = SAMPLES_PER_POINT,
    acquisition: str = ACQUISITION,
    surrogate: str = SURROGATE,
    max_training_points: Optional[int] = MAX_TRAINING_POINTS,
    trust_region: bool = TRUST_REGION,
    seed: int = typer.Option(0, help="Random seed (split, GP, acquisition, decoding)."),
    device: str = DEVICE,
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    target_module: Optional[str] = TARGET_MODULE,
    quiet: bool = QUIET,
) -> None:
    """Latent-space Bayesian optimization of a target with a trained model."""
    from grammar_ae.bo.loop import BOConfig, run_bo

    model, device_name = _load(checkpoint, target, target_module, device)
    config = BOConfig(
        target, iterations=iterations, batch_size=batch_size, samples_per_point=samples_per_point,
        acquisition=acquisition, surrogate=surrogate, max_training_points=max_training_points, seed=seed,
        device=device_name, trust_region=trust_region,
    )
    summary = run_bo(model, config, out, resume=resume, progress=not quiet)
    average = summary["average_score"]
    typer.echo(
        f"valid {summary['valid']}/{summary['proposed']} ({summary['fraction_valid']:.2f}), "
        f"average score {'n/a' if average is None else f'{average:.4f}'}"
    )
    for rank, entry in enumerate(summary["top3"], 1):
        typer.echo(f"{rank}. {entry['score']:.4f}  {entry['string']}")
    typer.echo(f"results in {out}")


@benchmark_app.command("bo")
def benchmark_bo(
    target: str = TARGET,
    checkpoint: Path = CHECKPOINT,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (a folder per seed, bo_benchmark.{csv,md})."),
    seeds: int = typer.Option(5, help="Number of seeds: runs with seeds 0 .. N-1."),
    iterations: int = ITERATIONS,
    batch_size: int = BATCH_SIZE,
    samples_per_point: Optional[int] = SAMPLES_PER_POINT,
    acquisition: str = ACQUISITION,
    surrogate: str = SURROGATE,
    max_training_points: Optional[int] = MAX_TRAINING_POINTS,
    trust_region: bool = TRUST_REGION,
    label: Optional[str] = typer.Option(None, help="Model name in the table (default: the checkpoint folder's name)."),
    device: str = DEVICE,
    target_module: Optional[str] = TARGET_MODULE,
    quiet: bool = QUIET,
) -> None:
    """The BO protocol over several seeds: fraction valid, average score, best three (PROTOCOLS 6)."""
    from grammar_ae.bo.benchmark import run_bo_benchmark, table_markdown
    from grammar_ae.bo.loop import BOConfig

    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: need at least one seed")
    model, device_name = _load(checkpoint, target, target_module, device)
    config = BOConfig(
        target, iterations=iterations, batch_size=batch_size, samples_per_point=samples_per_point,
        acquisition=acquisition, surrogate=surrogate, max_training_points=max_training_points, device=device_name,
        trust_region=trust_region,
    )
    row = run_bo_benchmark(
        model, target, list(range(seeds)), config, out, label=label or checkpoint.resolve().name, progress=not quiet,
    )
    typer.echo(table_markdown(row), nl=False)


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
    app.add_typer(benchmark_app, name="benchmark")
