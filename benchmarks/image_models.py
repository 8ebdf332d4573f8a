"""Image models on MNIST offline: the RAE paper's FID table on the MNIST test split, on a CPU.

    OMP_NUM_THREADS=1 python benchmarks/image_models.py                  # defaults below, about 20-30 min on 2 busy cores
    python benchmarks/image_models.py --epochs 30 --width 0.0625 --tag -wide

Only the MNIST test split (10,000 digits) is available offline: it is split 90/10 into
training and validation images (seeded), every model is trained on the same 9,000 images,
and every FID compares 1,000 generated images with the 1,000 validation images in the
features of the fallback classifier (not Inception: the numbers are not comparable with the
paper's, only with each other). The networks are the paper's with every filter count scaled
by ``--width`` (1/32 by default, so that six models train on a shared CPU).

Checked claims (RAE paper; KS+CV poster): an ex-post 10-component GMM on the training codes
improves every model's sample FID over its prior / single fitted Gaussian; the GMM-prior
model's samples from its own prior are as good as the other models' ex-post GMM samples.

Runs go to benchmarks/runs/images_mnist<tag>/<model>/ (resumed if interrupted); results to
benchmarks/results/images_mnist<tag>.json, .md and _samples.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, shared_data, write_result  # noqa: E402
from image_common import samples_grid  # noqa: E402

from grammar_ae.pipelines.image_benchmark import (  # noqa: E402
    BENCHMARK_MODELS,
    ImageBenchmarkConfig,
    benchmark_markdown,
    run_image_benchmark,
)
from grammar_ae.utils.files import atomic_write_text  # noqa: E402


def check_claims(rows: list[dict]) -> dict:
    """The two claims, computed from the table; both lists of numbers are kept for the reader."""
    by_model = {row["model"]: row for row in rows}
    improved = {model: row["sample_fid_gmm"] < row["sample_fid_prior"] for model, row in by_model.items()}
    claims = {
        "ex_post_gmm_improves_every_model": {
            "holds": all(improved.values()),
            "per_model": {
                model: {"samples_n": row["sample_fid_prior"], "samples_gmm": row["sample_fid_gmm"], "improved": improved[model]}
                for model, row in by_model.items()
            },
        }
    }
    if "gmm" in by_model and len(by_model) > 1:
        prior = by_model["gmm"]["sample_fid_prior"]
        others = {model: row["sample_fid_gmm"] for model, row in by_model.items() if model != "gmm"}
        median = statistics.median(others.values())
        claims["gmm_prior_as_good_as_ex_post_gmm"] = {
            "holds": prior <= median,
            "rule": "the GMM-prior model's prior-sample FID is at most the median ex-post GMM FID of the other models",
            "gmm_prior_samples": prior,
            "others_ex_post_gmm": others,
            "others_median": median,
            "others_best": min(others.values()),
        }
    return claims


def claims_markdown(claims: dict) -> str:
    first = claims["ex_post_gmm_improves_every_model"]
    lines = ["## Claims", "", f"- Ex-post GMM improves every model's sample FID: **{'holds' if first['holds'] else 'does not hold'}**"]
    for model, entry in first["per_model"].items():
        lines.append(f"  - {model}: {entry['samples_n']:.3f} -> {entry['samples_gmm']:.3f}")
    second = claims.get("gmm_prior_as_good_as_ex_post_gmm")
    if second:
        lines.append(
            f"- GMM-prior samples as good as the others' ex-post GMM samples ({second['rule']}): "
            f"**{'holds' if second['holds'] else 'does not hold'}**: {second['gmm_prior_samples']:.3f} vs median "
            f"{second['others_median']:.3f}, best {second['others_best']:.3f}"
        )
    return "\n".join(lines) + "\n"


def samples_figure(runs: Path, models: list[str], path: Path) -> None:
    """Two rows per model: samples of its prior (or fitted Gaussian), then of the ex-post GMM."""
    samplers = (("prior", {}, "prior"), ("gmm", {"components": 10, "seed": 0}, "GMM-10"))
    samples_grid(path, [(f"{model}: {title}", runs / model, kind, fit) for model in models for kind, fit, title in samplers])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(BENCHMARK_MODELS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--width", type=float, default=1 / 32)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the run folder and result names")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    name = f"images_mnist{args.tag}"
    runs = REPO / "benchmarks" / "runs" / name
    run_settings = {
        "dataset": "mnist", "split": "test", "data": str(shared_data() / "mnist"), "epochs": args.epochs,
        "limit": args.limit, "seed": args.seed, "device": "cpu",
        "network": {"width": args.width, "latent_dim": args.latent_dim},
    }
    started = time.perf_counter()
    table = run_image_benchmark(
        ImageBenchmarkConfig(tuple(args.models), run_settings, {"seed": args.seed}), runs, progress=not args.quiet
    )
    figure = RESULTS / f"{name}_samples.png"
    samples_figure(runs, args.models, figure)
    claims = check_claims(table["rows"])
    result = {**table, "settings": run_settings, "claims": claims, "wall_seconds": round(time.perf_counter() - started, 1)}
    write_result(name, result)
    markdown = "\n".join([
        benchmark_markdown(table, grids=None),
        f"Settings: width {args.width:g}, latent {args.latent_dim}, {args.epochs} epochs, batch 100, CPU, "
        f"wall time {result['wall_seconds'] / 60:.1f} min. Samples (two rows per model, in table order: "
        f"prior or fitted Gaussian, then ex-post GMM): [{figure.name}]({figure.name})",
        "",
        claims_markdown(claims),
    ])
    atomic_write_text(RESULTS / f"{name}.md", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
