"""`grammar-ae train`, `evaluate`, `sample`, `encode` and `decode`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer

from grammar_ae.cli.commands_grammar import GRAMMAR_HELP
from grammar_ae.data.readers import read_text
from grammar_ae.errors import ConfigError, DataError
from grammar_ae.utils import distributed
from grammar_ae.utils.config_files import merge, parse_assignments, read_config_file

RUN_DIR = typer.Argument(..., help="Run directory (or checkpoint file) written by `grammar-ae train`, or a shipped model's name.")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda.")


def load_sequence_run(run: Path | str, device: str):
    """The sequence run at ``run`` (encode, decode and optimize work with sequence models only)."""
    from grammar_ae.models.loading import load_run
    from grammar_ae.models.sequence.model import FAMILY

    return load_run(run, device, family=FAMILY, progress=True)


def train(
    grammar: Optional[str] = typer.Option(None, "--grammar", "-g", help=GRAMMAR_HELP + " Trains a sequence model."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Image data set (digits, mnist, fashion-mnist, cifar10, svhn, celeba). Trains an image model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Sequence: gvae, cvae, gcvvae, grae, grae-gmm. Images: ae, ae-l2, vae, cvvae, wae, 2svae, rae, rae-l2, rae-gp, rae-sn, ar-elbo, trainable-sigma, gmm."),
    regularizer: Optional[str] = typer.Option(None, help="grae only: l2, gp or sn (default l2)."),
    decoder: Optional[str] = typer.Option(None, "--decoder", help="Sequence models: published (the grammar VAE's decoder), gru or transformer (autoregressive over folded grammar tokens). Default: the grammar's default."),
    data: Optional[str] = typer.Option(None, "--data", help="Sequence data: a file, a prepared directory or a named set (zinc250k, expressions, moses-sample, expressions-generated). Default: the published set."),
    split: Optional[str] = typer.Option(None, help="Images: 'test' trains on the test split alone (split again into train/validation)."),
    variant: Optional[str] = typer.Option(None, help="ar-elbo, trainable-sigma: iso-i, iso-d, diag-i or diag-d."),
    latent_norm: Optional[str] = typer.Option(None, "--latent-norm", help="Images: none, batch, spectral, layer or noise (with --set network.latent_noise_std=S) on the encoder's code."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Images: each convolution repeated N times, the strided one last (default 1)."),
    components: Optional[int] = typer.Option(None, help="gmm / grae-gmm: number of prior components."),
    limit: Optional[int] = typer.Option(None, help="Use a seeded random subset of this many items."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default: the published number)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (default: the published one)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when present), cpu or cuda."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML or YAML file with any of these settings plus [objective] / [network] tables."),
    settings: list[str] = typer.Option([], "--set", help="Override one setting, e.g. --set objective.beta=0.01 --set network.gru_hidden=128."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (checkpoints, metrics.csv, plots, summary.json)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out exactly where it stopped."),
    checkpoint_every: Optional[float] = typer.Option(None, "--checkpoint-every", help="Minutes between saves of an epoch in progress (default 10); Ctrl-C and SIGTERM also save one."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished or interrupted run in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a model; the resolved config, checkpoints and results go to --out."""
    objective_extras = {"variant": variant, "components": components}
    network_extras = {"decoder": decoder, "latent_norm": latent_norm, "depth": depth}
    cli = {
        "grammar": grammar, "dataset": dataset, "model": model, "regularizer": regularizer, "data": data,
        "split": split, "limit": limit, "epochs": epochs, "batch_size": batch_size, "seed": seed, "device": device,
        "checkpoint_every": checkpoint_every,
        "objective": {k: v for k, v in objective_extras.items() if v is not None},
        "network": {k: v for k, v in network_extras.items() if v is not None},
    }
    values = merge(read_config_file(config), parse_assignments(settings), cli)
    if values.get("grammar") and values.get("dataset"):
        raise ConfigError("give --grammar (sequence models) or --dataset (image models), not both")
    if values.get("dataset"):
        from grammar_ae.models.image.config import ImageRunConfig
        from grammar_ae.pipelines.train_images import train_image_model

        summary = train_image_model(ImageRunConfig.from_dict(values), out, resume=resume, overwrite=overwrite, quiet=quiet)
    else:
        from grammar_ae.models.sequence.config import SequenceRunConfig
        from grammar_ae.pipelines.train_sequence import train_sequence_model

        values.pop("dataset", None)
        values.pop("split", None)
        values.setdefault("grammar", "smiles")
        summary = train_sequence_model(SequenceRunConfig.from_dict(values), out, resume=resume, overwrite=overwrite, quiet=quiet)
    best, monitor = summary["best_validation_loss"], summary["config"]["monitor"]
    if distributed.launch_rank() > 0:
        return  # data-parallel training: rank 0 reports
    typer.echo(
        f"trained {summary['epochs_run']} epochs; best validation {monitor} {best:.4g} "
        f"at epoch {summary['best_epoch']}; run in {out}"
    )


def evaluate(
    run: Path = RUN_DIR,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on the last line."),
    items: int = typer.Option(1000, help="Held-out items for reconstruction."),
    encode_samples: int = typer.Option(10, help="Stochastic encoders: encodings per item."),
    decode_samples: int = typer.Option(100, help="Stochastic encoders: decodes per encoding."),
    prior_samples: int = typer.Option(1000, help="Latent samples for validity."),
    seed: int = typer.Option(0, help="Random seed."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Molecule runs: SMILES file the MOSES metrics (FCD, SNN, Frag, Scaf) compare the samples with (default: the run's held-out molecules)."),
    moses: bool = typer.Option(True, "--moses/--no-moses", help="Molecule runs: compute the MOSES metrics of the prior samples."),
    inception: Optional[Path] = typer.Option(None, "--inception", help="Image runs: the FID Inception TorchScript file (default: the cached one, else the fallback classifier)."),
    device: str = DEVICE,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Sequence runs: reconstruction accuracy, prior / Gaussian / GMM validity, uniqueness and novelty.
    Image runs: reconstruction, sample (prior or Gaussian, GMM) and interpolation FID, precision / recall."""
    from grammar_ae.evaluation.run import evaluate_run

    result = evaluate_run(
        run, device=device, progress=not quiet,
        options={"items": items, "encode_samples": encode_samples, "decode_samples": decode_samples,
                 "prior_samples": prior_samples, "seed": seed, "inception": None if inception is None else str(inception),
                 "reference": None if reference is None else str(reference), "moses": moses},
    )
    if json_output:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        if not isinstance(value, dict):
            typer.echo(f"{key:<28} {value:.4f}" if isinstance(value, float) else f"{key:<28} {value}")


def sample(
    run: Path = RUN_DIR,
    n: int = typer.Option(10, "--count", "-n", help="Number of samples."),
    sampler: str = typer.Option("prior", help="prior (the model's prior; a fitted Gaussian if it has none), standard-normal, or an ex-post density fitted on training latents: gaussian, gmm, kde (training codes plus noise; closest to the data), two-stage (image runs)."),
    bandwidth: Optional[float] = typer.Option(None, help="kde: the noise's standard deviation in latent units (default 0.2); smaller is closer to the training items and less novel."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = DEVICE,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Image runs: write the N samples as a PNG grid here."),
) -> None:
    """Print N decoded samples, one per line (an empty line for an invalid decode); image runs: a PNG grid."""
    from grammar_ae.models.image.run import TrainedImageModel
    from grammar_ae.models.loading import load_run
    from grammar_ae.objectives.density import KernelDensitySampler, check_bandwidth

    if bandwidth is not None and sampler != KernelDensitySampler.kind:
        raise ConfigError(f"--bandwidth applies to --sampler kde only (got --sampler {sampler})")
    fit = {} if bandwidth is None else {"bandwidth": check_bandwidth(bandwidth)}  # checked before loading
    loaded = load_run(run, device, progress=True)
    if isinstance(loaded, TrainedImageModel):
        from grammar_ae.models.image.figures import write_sample_grid

        typer.echo(write_sample_grid(loaded, out, n, sampler, seed, fit))
        return
    if out is not None:
        raise ConfigError("--out (a PNG grid of samples) applies to image runs only")
    z = loaded.sampler(sampler, **fit).sample(n, torch.Generator().manual_seed(seed))
    for text in loaded.decode(z):
        typer.echo(text or "")


def encode(
    run: Path = RUN_DIR,
    strings: list[str] = typer.Argument(None, help="Strings to encode."),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="File with one string per line ('-' for stdin)."),
    device: str = DEVICE,
) -> None:
    """Print the latent mean of each string, one line of space-separated numbers each."""
    from grammar_ae.cli.commands_grammar import _lines

    latents = load_sequence_run(run, device).encode_means(_lines(strings or [], input_file))
    for row in latents.numpy():
        typer.echo(" ".join(f"{v:.8g}" for v in row))


def decode(
    run: Path = RUN_DIR,
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="Latents, one per line (default: stdin)."),
    device: str = DEVICE,
) -> None:
    """Decode latent vectors (one per line) to strings; an empty line for an invalid decode."""
    loaded = load_sequence_run(run, device)
    text = sys.stdin.read() if input_file is None or str(input_file) == "-" else read_text(input_file)
    rows = [line.split() for line in text.splitlines() if line.strip()]
    try:
        z = torch.tensor(np.array(rows, dtype=np.float32))
    except ValueError:
        raise DataError("latents must be lines of numbers, all of the same length") from None
    if z.ndim != 2 or z.shape[1] != loaded.latent_dim:
        raise DataError(f"latents have {z.shape[-1] if z.ndim == 2 else '?'} values per line; the model's latent size is {loaded.latent_dim}")
    for out in loaded.decode(z):
        typer.echo(out or "")


def models(
    json_output: bool = typer.Option(False, "--json", help="Print the cards as one JSON object."),
) -> None:
    """List the pretrained models shipped with grammar-ae (use a name wherever a run is expected)."""
    from grammar_ae.models.shipped import SHIPPED_MODELS

    cards = {name: model.card for name, model in sorted(SHIPPED_MODELS.items())}
    if json_output:
        typer.echo(json.dumps(cards))
        return
    for name, card in cards.items():
        typer.echo(f"{name}: {card.get('description', '')}")
        for key in ("trained_with", "data", "training", "metrics"):
            value = card.get(key)
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
            if value:
                typer.echo(f"  {key.replace('_', ' ')}: {value}")


def register(app: typer.Typer) -> None:
    for command in (train, evaluate, sample, encode, decode, models):
        app.command()(command)
