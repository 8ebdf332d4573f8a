"""The sigma_x sweep of the AR-ELBO study on scikit-learn's digits (16 x 16), on a CPU: a Gaussian
VAE with a fixed decoder variance sigma_x^2, ln sigma_x^2 from 0 to -1 in steps of 0.1, with
stochastic encoding (z sampled from q(z|x)) and deterministic encoding (z = mean, the KL term
unchanged: objective.encoder_noise_std=0).

    OMP_NUM_THREADS=1 python benchmarks/image_sigma_sweep.py     # 6 minutes on one core of a busy machine

With per-pixel MSE as REC, the loss sum_d e_d / (2 sigma_x^2) + KL is D / (2 sigma_x^2) times
MSE + (2 sigma_x^2 / D) KL, so each point is the image VAE with objective.beta = 2 sigma_x^2 (its
KL weight relative to the default 1/D). Width 1/16, latent 16, 30 epochs, batch 100, 1,348
training and 150 held-out digits. The same from the command line:

    grammar-ae benchmark images --dataset digits --device cpu --width 0.0625 --latent-dim 16 \\
        --config sigma.toml --sweep objective.beta=2,1.8097,...,0.7358 --samplers prior --out runs/sigma

Runs go to benchmarks/runs/images_sigma_sweep/; results to
benchmarks/results/images_sigma_sweep.{json,md,csv,png}.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS  # noqa: E402
from image_common import finish, markdown_table, orderings_markdown, run_study, study_arguments  # noqa: E402

from grammar_ae.utils.files import atomic_path  # noqa: E402

VARIANTS = {
    "stochastic": {"model": "vae"},
    "deterministic": {"model": "vae", "objective": {"encoder_noise_std": 0.0}},
}
LOG_VARIANCES = [round(-0.1 * step, 1) for step in range(11)]
COLUMNS = [
    ("kl", "KL (nats)"), ("sigma_z2", "sigma_z^2"), ("els", "ELS"), ("expected_gap_1e-2", "gap 1e-2"),
    ("expected_gap_1e-3", "gap 1e-3"), ("reconstruction_mse", "MSE"), ("sample_fid_prior", "FID prior"),
]
PLOTTED = ("kl", "sigma_z2", "els", "reconstruction_mse", "sample_fid_prior")


def with_log_variance(rows: list[dict]) -> list[dict]:
    return [{**row, "ln_sigma_x2": round(math.log(row["objective.beta"] / 2), 1)} for row in rows]


def check_orderings(rows: list[dict]) -> dict:
    """As sigma_x^2 shrinks the decoder is smoothed less: ELS and KL grow, MSE and sigma_z^2 shrink
    (Spearman rank correlation with ln sigma_x^2 of the sign the study reports)."""
    def correlation(model: str, key: str) -> float:
        points = [(row["ln_sigma_x2"], row[key]) for row in rows if row["model"] == model]
        return float(spearmanr(*zip(*points)).statistic)

    checks = {
        "els_grows_as_sigma_x_shrinks": ("els", -1),
        "kl_grows_as_sigma_x_shrinks": ("kl", -1),
        "mse_shrinks_as_sigma_x_shrinks": ("reconstruction_mse", 1),
    }
    orderings = {claim: {model: correlation(model, key) * sign > 0 for model in VARIANTS} for claim, (key, sign) in checks.items()}
    orderings["sigma_z2_shrinks_as_sigma_x_shrinks"] = {"stochastic": correlation("stochastic", "sigma_z2") > 0}
    by = {(row["model"], row["ln_sigma_x2"]): row for row in rows}
    orderings["deterministic_encoding_less_smooth_than_stochastic_els"] = all(
        by["deterministic", v]["els"] > by["stochastic", v]["els"] for v in LOG_VARIANCES)
    return {"orderings": orderings, "spearman": {
        f"{model}:{key}": correlation(model, key) for model in VARIANTS for key in PLOTTED if not (key == "sigma_z2" and model == "deterministic")}}


def plot(path: Path, rows: list[dict]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    titles = dict(COLUMNS)
    figure = Figure(figsize=(4 * len(PLOTTED), 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    for index, key in enumerate(PLOTTED, start=1):
        axes = figure.add_subplot(1, len(PLOTTED), index)
        for model in VARIANTS:
            points = sorted((row["ln_sigma_x2"], row[key]) for row in rows if row["model"] == model and row.get(key) is not None)
            axes.plot(*zip(*points), marker="o", label=f"{model} encoding")
        axes.set_xlabel("ln sigma_x^2")
        axes.set_title(titles[key])
        if key in ("els", "reconstruction_mse"):
            axes.set_yscale("log")
        if index == 1:
            axes.legend(fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    study_arguments(parser, epochs=30)
    parser.add_argument("--width", type=float, default=1 / 16)
    parser.add_argument("--latent-dim", type=int, default=16)
    args = parser.parse_args()
    name = f"images_sigma_sweep{args.tag}"

    run = {"dataset": "digits", "epochs": args.epochs, "seed": 0, "device": "cpu", "limit": args.limit,
           "network": {"width": args.width, "latent_dim": args.latent_dim}}
    sweep = {"objective.beta": [2 * math.exp(v) for v in LOG_VARIANCES]}
    table = run_study(name, VARIANTS, run, {"samplers": ["prior"], "seed": 0}, sweep, args.quiet)
    rows = with_log_variance(table["rows"])
    checked = check_orderings(rows)
    plot(RESULTS / f"{name}.png", rows)
    markdown = [
        "# sigma_x sweep (AR-ELBO study): digits, CPU",
        "",
        f"Gaussian VAE with fixed decoder variance sigma_x^2; width {args.width:g}, latent {args.latent_dim}, {args.epochs} epochs,",
        "batch 100. KL in nats per image; sigma_z^2: mean encoder variance; ELS and gaps of the decoder at the",
        f"held-out codes; MSE per pixel; FID of prior samples (features `{table['feature_extractor']}`, 150 vs 150",
        f"images). Wall time {table['wall_seconds'] / 60:.1f} min. Plot: [{name}.png]({name}.png).",
        "",
    ]
    for model in VARIANTS:
        chosen = sorted((row for row in rows if row["model"] == model), key=lambda row: -row["ln_sigma_x2"])
        markdown += [f"## {model.capitalize()} encoding", "", *markdown_table(chosen, COLUMNS, ("ln_sigma_x2", "ln sigma_x^2")), ""]
    markdown += ["## Orderings (Spearman correlation with ln sigma_x^2 of the expected sign)", "", *orderings_markdown(checked["orderings"])]
    finish(name, {**table, "rows": rows, **checked}, markdown)


if __name__ == "__main__":
    main()
