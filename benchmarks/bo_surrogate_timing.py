"""Time of one BO iteration (surrogate fit + batch acquisition) on CPU: sparse vs exact GP.

Synthetic but realistic latent points: 56 dimensions, a mixture of 20 clusters with a few
nearly collapsed dimensions (as VAE latents have), scores a smooth function of a few
directions plus noise with a spread like penalized logP. The sparse GP runs at every size;
the exact GP only while its cost (cubic in n) stays within --exact-budget seconds.

    python benchmarks/bo_surrogate_timing.py                       # 10k and 250k points, q = 50
    python benchmarks/bo_surrogate_timing.py --sizes 10000 --q 10  # quicker
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from grammar_ae.bo.acquisition import AcquisitionConfig, propose  # noqa: E402
from grammar_ae.bo.surrogate import SurrogateConfig, data_bounds, fit_surrogate  # noqa: E402

DIM = 56


def synthetic_latents(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(20, DIM, generator=generator) * 0.8
    scales = torch.linspace(0.05, 1.0, DIM)[torch.randperm(DIM, generator=generator)]
    z = centres[torch.randint(0, 20, (n,), generator=generator)] + torch.randn(n, DIM, generator=generator) * scales
    directions = torch.randn(DIM, 4, generator=generator) / DIM**0.5
    projected = z @ directions
    scores = 1.5 * torch.sin(2 * projected[:, 0]) + projected[:, 1] ** 2 - projected[:, 2] + 0.5 * projected[:, 3]
    return z, scores + 0.3 * torch.randn(n, generator=generator)


def one_iteration(kind: str, n: int, q: int, epochs: int, seed: int = 0) -> dict:
    z, scores = synthetic_latents(n + 2000, seed)
    train_z, train_y, test_z, test_y = z[:n], scores[:n], z[n:], scores[n:]
    config = SurrogateConfig(kind=kind, epochs=epochs)
    started = time.perf_counter()
    surrogate = fit_surrogate(train_z, train_y, data_bounds(train_z), True, config, seed=seed)
    fitted = time.perf_counter()
    unit = torch.stack([torch.zeros(DIM), torch.ones(DIM)]).double()
    points = propose(surrogate.model, surrogate.best_f, unit, q, AcquisitionConfig(), seed=seed)
    acquired = time.perf_counter()
    metrics = surrogate.test_metrics(test_z, test_y)
    result = {
        "kind": kind, "n": n, "q": q, "fit_s": round(fitted - started, 2),
        "acquisition_s": round(acquired - fitted, 2), "iteration_s": round(acquired - started, 2),
        "test_rmse": round(metrics["rmse"], 4), "test_log_likelihood": round(metrics["log_likelihood"], 4),
        "score_std": round(float(test_y.std()), 4), "points": list(points.shape),
    }
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 250_000], help="sparse GP sizes")
    parser.add_argument("--exact-sizes", type=int, nargs="+", default=[1_000, 2_000, 5_000, 10_000])
    parser.add_argument("--exact-budget", type=float, default=300.0, help="skip exact sizes predicted to take longer (s)")
    parser.add_argument("--q", type=int, default=50, help="batch size of the acquisition")
    parser.add_argument("--epochs", type=int, default=SurrogateConfig.epochs, help="sparse GP epochs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    runs, skipped = [], []
    previous = None
    for n in sorted(args.exact_sizes):
        predicted = None if previous is None else previous["iteration_s"] * (n / previous["n"]) ** 3
        if predicted is not None and predicted > args.exact_budget:
            skipped.append({"kind": "exact", "n": n, "predicted_iteration_s": round(predicted)})
            print(f"exact GP at n={n}: skipped, predicted {predicted:.0f} s (cubic extrapolation)", flush=True)
            continue
        previous = one_iteration("exact", n, args.q, args.epochs)
        runs.append(previous)
    for n in sorted(set(args.sizes) | {run["n"] for run in runs}):
        runs.append(one_iteration("sparse", n, args.q, args.epochs))

    ratios = {}
    for exact in (run for run in runs if run["kind"] == "exact"):
        sparse = next(run for run in runs if run["kind"] == "sparse" and run["n"] == exact["n"])
        ratios[str(exact["n"])] = round(exact["iteration_s"] / sparse["iteration_s"], 3)
        print(f"n={exact['n']}: exact / sparse time per iteration = {ratios[str(exact['n'])]}")
    for entry in skipped:
        sparse = [run for run in runs if run["kind"] == "sparse" and run["n"] == entry["n"]]
        if sparse:
            ratio = entry["predicted_iteration_s"] / sparse[0]["iteration_s"]
            print(f"n={entry['n']}: exact (extrapolated) / sparse = {ratio:.1f}")
    path = write_result("bo_surrogate_timing", {
        "runs": runs, "exact_skipped": skipped, "exact_over_sparse": ratios,
        "settings": {"q": args.q, "sparse_epochs": args.epochs, "threads": args.threads, "dim": DIM,
                     "acquisition": "qLogEI, sequential greedy, optimize_acqf defaults of AcquisitionConfig"},
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
