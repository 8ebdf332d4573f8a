"""`grammar-ae benchmark images`: the RAE paper's image table for several models on one data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

MODELS_HELP = (
    "Models to train and compare, space- or comma-separated (default: ae vae wae rae-l2 rae-gp gmm); "
    "any image objective (ae, ae-l2, vae, cvvae, wae, 2svae, rae, rae-l2, rae-gp, rae-sn, ar-elbo, gmm)."
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
    samples: Optional[int] = typer.Option(None, help="Generated images per FID (default: as many as validation images)."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="FID Inception TorchScript file (default: the cached one, else the fallback classifier)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when present), cpu or cuda."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one run folder per model, image_benchmark.{csv,md,json}."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train (or resume) each model, evaluate it, and write the table (Rec., samples N, samples GMM, Interp., precision / recall)."""
    from grammar_ae.pipelines.image_benchmark import BENCHMARK_MODELS, ImageBenchmarkConfig, run_image_benchmark

    names = [name for value in [*models, *ctx.args] for name in value.split(",") if name]
    settings = {"dataset": dataset, "split": split, "data": data, "epochs": epochs, "limit": limit,
                "batch_size": batch_size, "seed": seed, "device": device}
    network = {"latent_dim": latent_dim, "width": width}
    run = {**_given(settings), "network": _given(network)}
    evaluation = {"samples": samples, "inception": None if inception is None else str(inception), "seed": seed}
    config = ImageBenchmarkConfig(tuple(names) or BENCHMARK_MODELS, run, evaluation)
    table = run_image_benchmark(config, out, progress=not quiet)
    typer.echo((out / "image_benchmark.md").read_text(encoding="utf-8"))
    typer.echo(f"{len(table['rows'])} models; results in {out}")


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def register_benchmarks(benchmark_app: typer.Typer) -> None:
    """Add ``images`` to the ``benchmark`` command group."""
    benchmark_app.command("images", context_settings={"allow_extra_args": True})(benchmark_images)
