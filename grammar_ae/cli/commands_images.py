"""`grammar-ae benchmark images`: the image table for several models on one data set, optionally
over a grid of swept settings with FID plotted against the first."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from grammar_ae.errors import ConfigError
from grammar_ae.utils.config_files import merge, parse_assignments, read_config_file

MODELS_HELP = (
    "Models to train and compare, space- or comma-separated (default: ae vae wae rae-l2 rae-gp gmm); "
    "any image objective (ae, ae-l2, vae, cvvae, wae, 2svae, rae, rae-l2, rae-gp, rae-sn, ar-elbo, "
    "trainable-sigma, gmm) or a variant of the --config file."
)
CONFIG_HELP = (
    "TOML or YAML file: run settings shared by every model, plus optional 'models' (a list), "
    "'variants' (label -> run settings with a 'model') and 'sweep' (setting -> list of values)."
)


def benchmark_images(
    ctx: typer.Context,
    dataset: str = typer.Option(..., "--dataset", help="Image data set (digits, mnist, fashion-mnist, cifar10, svhn, celeba)."),
    models: list[str] = typer.Option([], "--models", "-m", help=MODELS_HELP),
    split: Optional[str] = typer.Option(None, help="'test' trains on the test split alone (split again into train/validation)."),
    data: Optional[str] = typer.Option(None, "--data", help="Folder (or archive) holding the data set's files."),
    epochs: Optional[int] = typer.Option(None, help="Epochs per model (default: the published number)."),
    limit: Optional[int] = typer.Option(None, help="Use a seeded random subset of this many images."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (default 100)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="Latent size (default: 16 MNIST-like, 128 CIFAR/SVHN, 64 CelebA)."),
    width: Optional[float] = typer.Option(None, help="Filter-count multiplier (default 1 on CUDA, 1/16 on CPU)."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Each convolution repeated N times, the strided one last (default 1)."),
    latent_norm: Optional[str] = typer.Option(None, "--latent-norm", help="none, batch, spectral, layer or noise (with --set network.latent_noise_std=S)."),
    sweep: list[str] = typer.Option([], "--sweep", help="Train every model at each value: KEY=V1,V2,... with KEY latent, width, depth or a dotted setting (objective.beta); repeat for a grid."),
    settings: list[str] = typer.Option([], "--set", help="Override one setting of every run, e.g. --set objective.reconstruction=bce."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
    samples: Optional[int] = typer.Option(None, help="Generated images per FID (default: as many as validation images)."),
    samplers: Optional[str] = typer.Option(None, "--samplers", help="Sample FIDs to compute, comma-separated (default all: prior, standard_normal, gaussian, gmm, gmm100, second_stage)."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="FID Inception TorchScript file (default: the cached one, else the fallback classifier)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when present), cpu or cuda."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one run folder per model (and sweep point), image_benchmark.{csv,md,json} (and .png with --sweep)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train (or resume) each model, evaluate it, and write the table (FIDs of reconstructions, of samples
    by sampler and of interpolations, precision / recall, decoder smoothness); with --sweep, FID against
    the first swept setting (image_benchmark.png)."""
    from grammar_ae.pipelines.image_benchmark import BENCHMARK_MODELS, ImageBenchmarkConfig, run_image_benchmark

    names = [name for value in [*models, *ctx.args] for name in value.split(",") if name]
    given = {"dataset": dataset, "split": split, "data": data, "epochs": epochs, "limit": limit,
             "batch_size": batch_size, "seed": seed, "device": device,
             "network": _given({"latent_dim": latent_dim, "width": width, "depth": depth, "latent_norm": latent_norm})}
    grid = read_config_file(config)
    variants, swept, listed = grid.pop("variants", {}), grid.pop("sweep", {}), grid.pop("models", [])
    run = merge(grid, parse_assignments(settings), given)
    swept = {**swept, **parse_sweeps(sweep)}
    evaluation = {"samples": samples, "inception": None if inception is None else str(inception), "seed": seed,
                  "samplers": None if samplers is None else [name for name in samplers.split(",") if name]}
    chosen = tuple(names or listed or variants or BENCHMARK_MODELS)
    table = run_image_benchmark(ImageBenchmarkConfig(chosen, run, evaluation, swept, variants), out, progress=not quiet)
    typer.echo((out / "image_benchmark.md").read_text(encoding="utf-8"))
    typer.echo(f"{len(table['rows'])} runs; results in {out}")


def parse_sweeps(assignments: list[str]) -> dict[str, list[Any]]:
    """``["latent=16,32,64"]`` -> ``{"latent": [16, 32, 64]}`` (values typed as YAML reads them)."""
    sweep = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key or not raw:
            raise ConfigError(f"--sweep {assignment!r}: expected KEY=V1,V2,... (e.g. latent=16,32,64)")
        sweep[key] = [parse_assignments([f"value={value}"])["value"] for value in raw.split(",")]
    return sweep


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def register_benchmarks(benchmark_app: typer.Typer) -> None:
    """Add ``images`` to the ``benchmark`` command group."""
    benchmark_app.command("images", context_settings={"allow_extra_args": True})(benchmark_images)
