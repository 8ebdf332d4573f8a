"""The AR-ELBO study on the MNIST test split, on a CPU: the four AR-ELBO variants, their
trainable-Sigma_x counterparts and the fixed-variance VAE, with every ex-post density,
interpolations and decoder smoothness.

    OMP_NUM_THREADS=1 python benchmarks/image_ar_elbo.py     # 16 minutes on one core of a busy machine

Each model: width 1/32, latent 16, 8 epochs, batch 100, evaluated with 1,000 generated images
per FID against the 1,000 held-out digits (fallback features): samples of the prior N(0, I), of a
second-stage VAE (10 epochs here instead of 20, for time), of GMMs with 10 and 100 components,
interpolations at t = 0.5 and at a random t, ELS, expected gaps, KL and sigma_z^2. The same from
the command line, one model at a time:

    grammar-ae train --dataset mnist --split test --data $GRAMMAR_AE_DATA/mnist --model ar-elbo --variant diag-d \\
        --epochs 8 --device cpu --set network.width=0.03125 --set network.latent_dim=16 --out runs/ar-diag-d
    grammar-ae evaluate runs/ar-diag-d --json

Runs go to benchmarks/runs/images_ar_elbo/ (resumed if interrupted); results to
benchmarks/results/images_ar_elbo.{json,md,csv} and images_ar_elbo_samples.png.
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
    samples_grid,
    study_arguments,
)

from grammar_ae.objectives.ar_elbo import VARIANTS as PARAMETERISATIONS  # noqa: E402

VARIANTS = {
    **{f"ar-elbo-{v}": {"model": "ar-elbo", "objective": {"variant": v}} for v in PARAMETERISATIONS},
    **{f"trainable-{v}": {"model": "trainable-sigma", "objective": {"variant": v}} for v in PARAMETERISATIONS},
    "vae": {"model": "vae"},
}
FID_COLUMNS = [
    ("reconstruction_mse", "MSE"),
    ("sample_fid_prior", "FID prior"),
    ("sample_fid_second_stage", "FID 2nd stage"),
    ("sample_fid_gmm", "FID GMM-10"),
    ("sample_fid_gmm100", "FID GMM-100"),
    ("sample_fid_gaussian", "FID MVG"),
]
INTERPOLATION_COLUMNS = [("interpolation_fid", "FID mid-point"), ("interpolation_fid_random", "FID random point")]
SMOOTHNESS_COLUMNS = [
    ("els", "ELS"), ("expected_gap_1e-2", "gap 1e-2"), ("expected_gap_1e-3", "gap 1e-3"), ("kl", "KL (nats)"),
    ("sigma_z2", "sigma_z^2"),
]


def check_orderings(rows: list[dict]) -> dict:
    by = {row["model"]: row for row in rows}
    fid = "sample_fid_prior"
    return {
        "every_ar_elbo_beats_the_fixed_variance_vae_fid_prior": all(by[f"ar-elbo-{v}"][fid] < by["vae"][fid] for v in PARAMETERISATIONS),
        "every_ar_elbo_beats_the_fixed_variance_vae_mse": all(
            by[f"ar-elbo-{v}"]["reconstruction_mse"] < by["vae"]["reconstruction_mse"] for v in PARAMETERISATIONS),
        "ar_elbo_at_least_as_good_as_its_trainable_counterpart_fid_prior": {
            v: by[f"ar-elbo-{v}"][fid] <= by[f"trainable-{v}"][fid] for v in PARAMETERISATIONS},
        "ar_elbo_less_smooth_than_the_fixed_variance_vae_els": all(
            by[f"ar-elbo-{v}"]["els"] > by["vae"]["els"] for v in PARAMETERISATIONS),
        "ex_post_density_beats_the_prior": {
            row["model"]: min(row["sample_fid_second_stage"], row["sample_fid_gmm"], row["sample_fid_gmm100"]) < row[fid]
            for row in rows},
        "random_point_interpolation_beats_the_mid_point": {
            row["model"]: row["interpolation_fid_random"] < row["interpolation_fid"] for row in rows},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    study_arguments(parser, epochs=8)
    parser.add_argument("--width", type=float, default=1 / 32)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--two-stage-epochs", type=int, default=10)
    args = parser.parse_args()
    name = f"images_ar_elbo{args.tag}"

    evaluation = {"seed": 0, "two_stage_epochs": args.two_stage_epochs}
    run = mnist_settings(args.epochs, args.width, args.latent_dim, args.limit)
    table = run_study(name, VARIANTS, run, evaluation, quiet=args.quiet)
    rows = table["rows"]
    orderings = check_orderings(rows)
    runs = RUNS / name
    second_stage = {"epochs": args.two_stage_epochs, "seed": 0}
    samples_grid(RESULTS / f"{name}_samples.png", [
        (f"{model}: {title}", runs / model, kind, fit)
        for model in VARIANTS
        for kind, fit, title in (("prior", {}, "prior"), ("two-stage", second_stage, "2nd stage"))
    ])
    shutil.copyfile(runs / "ar-elbo-diag-d" / "loss_curves.png", RESULTS / f"{name}_loss_curves_diag-d.png")
    markdown = [
        "# AR-ELBO study: MNIST test split, CPU",
        "",
        f"Width {args.width:g}, latent {args.latent_dim}, {args.epochs} epochs, batch 100; FID (lower is better; features",
        f"`{table['feature_extractor']}`, 1,000 generated vs 1,000 held-out digits); MSE per pixel of reconstructions",
        f"([0, 1] scale); second-stage VAE {args.two_stage_epochs} epochs. trainable-*: the same Sigma_x parameterisation",
        "learned by gradient descent (start sigma^2 = 1); vae: fixed variance (kl_weight 1/D, i.e. sigma_x^2 = 1/2).",
        f"Wall time {table['wall_seconds'] / 60:.1f} min. Samples: [{name}_samples.png]({name}_samples.png);",
        f"loss curves of ar-elbo-diag-d: [{name}_loss_curves_diag-d.png]({name}_loss_curves_diag-d.png).",
        "",
        "## Reconstruction and samples", "", *markdown_table(rows, FID_COLUMNS), "",
        "## Interpolations", "", *markdown_table(rows, INTERPOLATION_COLUMNS), "",
        "## Decoder smoothness and encoder", "", *markdown_table(rows, SMOOTHNESS_COLUMNS), "",
        "## Orderings", "",
        *orderings_markdown(orderings),
    ]
    finish(name, {**table, "orderings": orderings}, markdown)


if __name__ == "__main__":
    main()
