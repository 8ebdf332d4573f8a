"""Time of one BO iteration (surrogate fit + acquisition of q points + decoding), old
defaults against new ones and each lever on its own, side by side on the same data.

The data: a seeded sample of a trained model's training strings, encoded (latent means,
cached) and scored, so that the surrogate sees ``--points`` of them (the 90 % split).
Every variant is the real loop (``run_bo``) started from those strings, so fit,
acquisition, decoding and scoring are timed where the optimizer spends them; CPU seconds
of the process are reported next to wall-clock seconds (on a shared machine the CPU time
is what the iteration costs). Variants run ``--iterations`` iterations (the old defaults
one: they keep nothing between iterations); the table shows the mean per iteration and
the last iteration (where a warm start has something to start from).

    python benchmarks/bo_surrogate_timing.py --checkpoint zinc --target logp
    python benchmarks/bo_surrogate_timing.py --checkpoint RUN --target expression --variants old new

A run of some variants adds them to the results of an earlier run with the same checkpoint,
target, points and q (``benchmarks/results/bo_surrogate_timing_<grammar>.{json,md}``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, write_result  # noqa: E402

from grammar_ae import load_run  # noqa: E402
from grammar_ae.bo.loop import BOConfig, run_bo  # noqa: E402
from grammar_ae.utils.files import atomic_write_text  # noqa: E402

PUBLISHED_SAMPLES = {"smiles": 500}  # decodes per point of the published loop; 25 for other grammars
STAGES = ("fit", "acquisition", "decoding", "scoring")


def variants(grammar: str) -> dict[str, tuple[str, dict, bool]]:
    """name -> (description, BOConfig settings, whether it runs every iteration)."""
    one = dict(candidates_per_point=1)  # every acquired point proposed, as before candidates_per_point existed
    old = dict(surrogate="sparse", acquisition="ei", trust_region=False, **one)
    samples = PUBLISHED_SAMPLES.get(grammar, 25)
    return {
        "old": (f"old defaults: sparse GP (500 inducing, 3 epochs), batch log-EI over the box, {samples} samples per point",
                {**old, "samples_per_point": samples}, False),
        "old-greedy": ("old defaults, greedy decoding", old, False),
        "sparse-1-epoch": ("sparse GP, 1 epoch (still 300 minibatch steps, the fit's minimum, at 10,000 points), "
                           "Thompson in the trust region, greedy", dict(surrogate="sparse", surrogate_epochs=1, **one), True),
        "local-ei": ("local exact GP (1,000 points, warm start), batch log-EI in the trust region, greedy",
                     dict(acquisition="ei", local_points=1000, **one), True),
        "local-1000-cold": ("local exact GP (1,000 points), no warm start, Thompson, greedy",
                            dict(local_points=1000, warm_start=False, **one), True),
        "local-1000": ("local exact GP (1,000 points, warm start), Thompson, greedy", dict(local_points=1000, **one), True),
        "local-cold": ("local exact GP (500 points), no warm start, Thompson, greedy", dict(warm_start=False, **one), True),
        "local-10-steps": ("local exact GP (500 points, warm start, at most 10 L-BFGS steps), Thompson, greedy",
                           dict(fit_iterations=10, **one), True),
        "new-1-candidate": ("local exact GP (500 points, warm start), Thompson in the trust region, greedy, "
                            "one candidate per place", one, True),
        "new": ("new defaults: local exact GP (500 points, warm start), Thompson in the trust region, greedy, "
                "4 candidates per place (the batch keeps new strings first)", {}, True),
    }


def starting_file(model, points: int, seed: int) -> Path:
    """A file of ceil(points / 0.9) training strings of the model, so the 90 % split holds ``points``."""
    strings = model.training_strings()
    count = min(len(strings), math.ceil(points / 0.9))
    chosen = np.random.default_rng(seed).choice(len(strings), count, replace=False)
    path = REPO / "benchmarks" / "runs" / "timing" / f"{model.checkpoint_sha256[:12]}-{count}.txt"
    if not path.is_file():
        atomic_write_text(path, "".join(strings[i] + "\n" for i in sorted(chosen)))
    return path


def time_variant(model, target: str, data: Path, settings: dict, iterations: int, q: int) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        summary = run_bo(model, BOConfig(target, iterations=iterations, batch_size=q, data=str(data), **settings),
                         out, progress=False)
    timings = summary["timings"]
    per_iteration = {
        kind: [sum(timings[kind].get(stage, [0.0] * iterations)[i] for stage in STAGES) for i in range(iterations)]
        for kind in ("seconds", "cpu_seconds")
    }
    return {
        "iterations": iterations,
        "stages_cpu_seconds": {stage: timings["cpu_seconds"].get(stage, []) for stage in STAGES},
        "stages_seconds": {stage: timings["seconds"].get(stage, []) for stage in STAGES},
        "iteration_seconds": per_iteration["seconds"], "iteration_cpu_seconds": per_iteration["cpu_seconds"],
        "mean_cpu_seconds": float(np.mean(per_iteration["cpu_seconds"])),
        "last_cpu_seconds": per_iteration["cpu_seconds"][-1],
        "mean_seconds": float(np.mean(per_iteration["seconds"])),
        "surrogate_points": summary["training"]["surrogate_points"], "surrogate_test": summary["surrogate_test"],
        "fraction_valid": summary["fraction_valid"], "objective_calls": summary["objective_calls"],
        "best_new": summary["top3_new"][0]["score"] if summary["top3_new"] else None,
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def table(results: dict, descriptions: dict) -> str:
    lines = [
        "| variant | fit | acquisition | decoding | iteration (CPU s, mean) | last iteration (CPU s) | wall s (mean) | vs old |",
        "|---|---|---|---|---|---|---|---|",
    ]
    old = results.get("old", {}).get("mean_cpu_seconds")
    for name, result in results.items():
        stages = {stage: np.mean(result["stages_cpu_seconds"][stage] or [0.0]) for stage in STAGES}
        ratio = f"{old / result['mean_cpu_seconds']:.1f}x" if old else ""
        lines.append(
            f"| {descriptions[name]} | {stages['fit']:.2f} | {stages['acquisition']:.2f} | {stages['decoding']:.2f} "
            f"| {result['mean_cpu_seconds']:.2f} | {result['last_cpu_seconds']:.2f} | {result['mean_seconds']:.1f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def earlier_results(name: str, checkpoint_sha256: str, args) -> dict:
    """The variants an earlier run of the same setting wrote (a run of a few variants adds to them)."""
    path = REPO / "benchmarks" / "results" / f"{name}.json"
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    same = (earlier.get("checkpoint_sha256"), earlier.get("target"), earlier.get("points"), earlier.get("q")) == (
        checkpoint_sha256, args.target, args.points, args.q)
    return earlier["variants"] if same else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory or shipped model name (zinc, expressions)")
    parser.add_argument("--target", required=True, help="logp, qed, expression, ...")
    parser.add_argument("--points", type=int, default=10_000, help="encoded points the surrogate may use")
    parser.add_argument("--q", type=int, default=50, help="batch size of the acquisition")
    parser.add_argument("--iterations", type=int, default=2, help="iterations per variant (the old defaults: 1)")
    parser.add_argument("--variants", nargs="+", default=None, help="names of the variants to run (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default=None, help="result file name (default bo_surrogate_timing_<grammar>)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_run(args.checkpoint, device="cpu")
    known = variants(model.grammar_name)
    chosen = args.variants or list(known)
    data = starting_file(model, args.points, seed=0)
    results = {}
    for name in chosen:
        description, settings, repeated = known[name]
        results[name] = time_variant(model, args.target, data, settings, args.iterations if repeated else 1, args.q)
        print(name, {k: results[name][k] for k in ("mean_cpu_seconds", "last_cpu_seconds", "mean_seconds")}, flush=True)
    name = args.name or f"bo_surrogate_timing_{model.grammar_name}"
    merged = earlier_results(name, model.checkpoint_sha256, args)
    merged.update({n: {"description": known[n][0], "settings": known[n][1], **results[n]} for n in results})
    merged = {n: {**merged[n], "description": known[n][0]} for n in known if n in merged}  # in the order of the variants
    markdown = table(merged, {n: known[n][0] for n in merged})
    print(markdown)
    atomic_write_text(REPO / "benchmarks" / "results" / f"{name}.md", markdown)
    path = write_result(name, {
        "checkpoint": str(args.checkpoint), "checkpoint_sha256": model.checkpoint_sha256, "target": args.target,
        "points": args.points, "q": args.q, "starting_strings": len(data.read_text().splitlines()), "variants": merged,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
