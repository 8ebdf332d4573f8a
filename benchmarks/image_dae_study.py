"""The study of deterministic autoencoders without extra terms ("autoencoders without the
variation") on the MNIST test split, on a CPU: FID against latent size for two widths.

    OMP_NUM_THREADS=1 python benchmarks/image_dae_study.py     # about an hour on one free core
    OMP_NUM_THREADS=1 python benchmarks/image_dae_study.py --models ae vae --report-only   # the part run here

Grid: AE, VAE (beta 1) and VAE with beta 0.01, all with the binary cross-entropy as REC, at
latent sizes 16, 32, 64 and widths 1/32 and 1/16 (8 epochs each); then, at width 1/32, the AE
with the mean squared error and the AE with a batch-normalised code. Every run is sampled from
N(0, I), a fitted full-covariance Gaussian (MVG) and a fitted 10-component GMM (and its prior).
The same grid from the command line (one folder):

    grammar-ae benchmark images --dataset mnist --split test --data $GRAMMAR_AE_DATA/mnist --epochs 8 \\
        --device cpu --config grid.toml --sweep latent=16,32,64 --sweep width=0.03125,0.0625 \\
        --samplers prior,standard_normal,gaussian,gmm --out runs/dae

Runs go to benchmarks/runs/images_dae_study/ and images_dae_study_extra/ (resumed if interrupted);
results to benchmarks/results/images_dae_study.{json,md,csv,png} and images_dae_study_samples_<model>.png.
``--report-only`` builds them from the runs already trained and evaluated.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS  # noqa: E402
from image_common import (  # noqa: E402
    RUNS,
    finish,
    markdown_table,
    mnist_settings,
    orderings_markdown,
    run_study,
    stored_study,
    study_arguments,
)

BCE = {"reconstruction": "bce"}
VARIANTS = {
    "ae": {"model": "ae", "objective": BCE},
    "vae": {"model": "vae", "objective": BCE},
    "vae-b0.01": {"model": "vae", "objective": {**BCE, "beta": 0.01}},
}
EXTRA = {
    "ae-mse": {"model": "ae"},
    "ae-batchnorm": {"model": "ae", "objective": BCE, "network": {"latent_norm": "batch"}},
}
SAMPLERS = ["prior", "standard_normal", "gaussian", "gmm"]
COLUMNS = [
    ("reconstruction_mse", "MSE"),
    ("sample_fid_standard_normal", "FID N(0, I)"),
    ("sample_fid_gaussian", "FID MVG"),
    ("sample_fid_gmm", "FID GMM-10"),
    ("reconstruction_fid", "FID rec."),
    ("els", "ELS"),
]


def check_orderings(rows: list[dict], widths: list[float]) -> dict:
    """The study's orderings, each computed over the whole grid (those whose models were trained)."""
    at = {(row["model"], row["latent"], row["width"]): row for row in rows}
    models = {row["model"] for row in rows}
    points = sorted({(row["latent"], row["width"]) for row in rows})
    best = {key: min(row["sample_fid_standard_normal"], row["sample_fid_gaussian"], row["sample_fid_gmm"]) for key, row in at.items()}
    orderings: dict[str, bool | dict[str, bool]] = {}
    if "ae" in models:
        orderings["ae_gmm_beats_mvg_beats_standard_normal"] = all(
            at["ae", *p]["sample_fid_gmm"] <= at["ae", *p]["sample_fid_gaussian"] <= at["ae", *p]["sample_fid_standard_normal"]
            for p in points
        )
    for first, second in (("ae", "vae"), ("ae", "vae-b0.01"), ("vae-b0.01", "vae")):
        if {first, second} <= models:
            orderings[f"{first}_best_sampler_beats_{second}_best_sampler"] = all(best[first, *p] < best[second, *p] for p in points)
    orderings["wider_is_better_gmm_fid"] = {
        model: all(at[model, latent, widths[1]]["sample_fid_gmm"] < at[model, latent, widths[0]]["sample_fid_gmm"]
                   for latent in sorted({p[0] for p in points}))
        for model in sorted(models)
    }
    return orderings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    study_arguments(parser, epochs=8)
    parser.add_argument("--latents", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--widths", type=float, nargs=2, default=[1 / 32, 1 / 16])
    parser.add_argument("--models", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--no-extra", action="store_true", help="skip the AE with MSE and with a batch-normalised code")
    parser.add_argument("--report-only", action="store_true", help="the tables and plot of the runs already trained and evaluated")
    args = parser.parse_args()
    name = f"images_dae_study{args.tag}"

    evaluation = {"samplers": SAMPLERS, "seed": 0}
    sweep = {"latent": args.latents, "width": args.widths}
    run = mnist_settings(args.epochs, args.widths[0], args.latents[0], args.limit)
    variants = {model: VARIANTS[model] for model in args.models}
    if args.report_only:
        grid, extra = stored_study(name, variants, run, sweep), None
    else:
        grid = run_study(name, variants, run, evaluation, sweep, args.quiet)
        extra = None if args.no_extra else run_study(f"{name}_extra", EXTRA, run, evaluation, {"latent": args.latents}, args.quiet)
    orderings = check_orderings(grid["rows"], args.widths)
    first = f"latent{args.latents[0]}-width{args.widths[1]:g}"
    figures = [f"{name}_samples_{model}.png" for model in args.models]
    for model, figure in zip(args.models, figures):  # the run's own grid: one row per sampler
        shutil.copyfile(RUNS / name / f"{model}-{first}" / "samples.png", RESULTS / figure)
    result = {"grid": grid, "extra": extra, "orderings": orderings}
    minutes = sum(part["compute_seconds"] for part in (grid, extra) if part) / 60
    markdown = [
        "# Autoencoders without the variation: MNIST test split, CPU",
        "",
        f"FID (lower is better; features `{grid['feature_extractor']}`, 1,000 generated vs 1,000 held-out digits),",
        f"{args.epochs} epochs, batch 100, REC binary cross-entropy unless named; MSE per pixel of reconstructions.",
        f"Compute time {minutes:.1f} min (training and evaluation, summed over the runs). Plot: [{name}.png]({name}.png); samples (N(0, I), MVG, GMM-10) at {first}:",
        ", ".join(f"[{figure}]({figure})" for figure in figures) + ".",
        "",
    ]
    for width in args.widths:
        rows = [{**row, "model": f"{row['model']} (latent {row['latent']})"} for row in grid["rows"] if row["width"] == width]
        markdown += [f"## Width {width:g}", "", *markdown_table(rows, COLUMNS), ""]
    if extra:
        rows = [{**row, "model": f"{row['model']} (latent {row['latent']})"} for row in extra["rows"]]
        markdown += [f"## Width {args.widths[0]:g}: AE with MSE, AE with a batch-normalised code", "",
                     f"Plot: [{name}_extra.png]({name}_extra.png).", "", *markdown_table(rows, COLUMNS), ""]
    markdown += ["## Orderings", ""]
    markdown += orderings_markdown(orderings)
    finish(name, result, markdown)


if __name__ == "__main__":
    main()
