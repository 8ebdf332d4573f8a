"""Molecule BO settings compared over many seeds: the molecule benchmark's BO runs (penalized
logP, the shipped ``zinc`` model, its training molecules as starting data, 250 calls on new
molecules) repeated over more seeds with one setting changed.

The molecule table reports the best of five seeds; here each seed's best is one draw, so the
table's best can be read against its spread, and the chance that the best of five seeds
reaches the published record (5.86) is estimated from the fraction of seeds that do.

- ``ring_preference``: decoding with the ring-size preference (rings of at most 7 atoms) or
  without it, batches of 50;
- ``batch_size``: batches of 50 (5 batches when every proposal is new) or of 10 (25 batches),
  with the preference;
- ``candidates``: 8 latent candidates per place in the batch or 4 (the default), batches of 50,
  with the preference;
- ``decoding``: each latent point decoded 10 times by Gumbel sampling, the most frequent valid
  molecule kept, or greedily (the default), batches of 50, with the preference;
- ``retraining``: weighted retraining of the model before batch 1 and after every 50 objective
  calls on new molecules (``grammar_ae.bo.retraining``) or none, both as the molecule table: batches of 50, 10
  sampled decodes per point, the preference.

    python benchmarks/bo_seed_studies.py [--study ring_preference|batch_size|candidates|decoding|retraining] [--seeds 20]
    # results/bo_<study>.{json,md}
    python benchmarks/bo_seed_studies.py --run-setting q50-s10-wr50 --start 5 --seeds 10
    # only that setting's seeds 5 to 9, to run parts in parallel processes

Runs go to benchmarks/runs/bo/seed-studies/<setting>/seed-<n> and resume (a finished seed is
read back); studies share the runs of a setting they both use.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from common import REPO, RESULTS, ring_preference, write_result

from grammar_ae.bo.loop import BOConfig, run_bo
from grammar_ae.decoding.smiles_checks import MAX_RING_SIZE
from grammar_ae.models.loading import load_latent_model
from grammar_ae.utils.files import atomic_write_text

RECORD = 5.86  # the published latent-BO record at 250 evaluations
BUDGET = 250
RUNS = REPO / "benchmarks" / "runs" / "bo" / "seed-studies"
SETTINGS = {  # run folder: (largest ring preferred while decoding, BOConfig settings)
    "q50": (MAX_RING_SIZE, {"batch_size": 50}),
    "q50-no-ring-preference": (None, {"batch_size": 50}),
    "q10": (MAX_RING_SIZE, {"batch_size": 10}),
    "q50-c8": (MAX_RING_SIZE, {"batch_size": 50, "candidates_per_point": 8}),
    "q50-s10": (MAX_RING_SIZE, {"batch_size": 50, "samples_per_point": 10}),
    "q50-s10-wr50": (MAX_RING_SIZE, {"batch_size": 50, "samples_per_point": 10, "retraining": {"every": 50}}),
}
STUDIES = {  # study: {row label: setting}; the first row is compared seed by seed with the second
    "ring_preference": {f"rings of at most {MAX_RING_SIZE} preferred (default)": "q50",
                        "no ring preference": "q50-no-ring-preference"},
    "batch_size": {"batches of 10 (25 batches)": "q10", "batches of 50 (5 batches)": "q50"},
    "candidates": {"8 candidates per place": "q50-c8", "4 candidates per place (default)": "q50"},
    "decoding": {"10 sampled decodes per point": "q50-s10", "greedy decoding (default)": "q50"},
    "retraining": {"weighted retraining every 50 calls": "q50-s10-wr50", "no retraining (10 sampled decodes)": "q50-s10"},
}


def seed_row(summary: dict) -> dict:
    """One seed's best, its averages, and what its trust region did: restarts, and the widest
    half-width it took in the batches after the one that found the best (None for runs with
    retraining, whose region starts again at each retraining)."""
    best, region = summary["top3"][0], summary["trust_region"]
    retrained = bool(summary.get("retrainings"))
    return {"seed": summary["seed"], "best": best["score"], "heavy_atoms": best["heavy_atoms"],
            "smiles": best["string"], "average_score": summary["average_score"],
            "duplicates": summary["duplicates"] / summary["proposed"],
            "batches": summary["completed_iterations"], "bo_cpu_seconds": bo_cpu_seconds(summary),
            "retrainings": len(summary.get("retrainings", [])),
            "restarts": None if retrained else len(region["abandoned"]),
            # widths_used[i] is batch i + 1's width, so the slice starts at the batch after the best's
            "widest_after_best": None if retrained else max(region["widths_used"][best["iteration"]:], default=None)}


def bo_cpu_seconds(summary: dict) -> float:
    """CPU seconds of the search itself: every stage but encoding and scoring the starting data."""
    return sum(sum(seconds) for stage, seconds in summary["timings"]["cpu_seconds"].items()
               if stage not in ("encode", "score_training"))


def aggregate(rows: list[dict]) -> dict:
    best = np.array([r["best"] for r in rows])
    reached = float(np.mean(best >= RECORD))
    return {"seeds": len(rows), "mean_best": float(best.mean()), "median_best": float(np.median(best)),
            "max_best": float(best.max()), "seeds_reaching_record": int((best >= RECORD).sum()),
            "best_of_5_reaches_record": 1 - (1 - reached) ** 5,
            "mean_average_score": float(np.mean([r["average_score"] for r in rows])),
            "mean_duplicates": float(np.mean([r["duplicates"] for r in rows])),
            "mean_bo_cpu_seconds": float(np.mean([r["bo_cpu_seconds"] for r in rows])),
            "seeds_restarted": None if rows[0]["restarts"] is None else sum(r["restarts"] > 0 for r in rows),
            "widest_after_best": max((r["widest_after_best"] for r in rows if r["widest_after_best"] is not None),
                                     default=None),
            "most_common_best": dict(zip(("smiles", "seeds"), Counter(r["smiles"] for r in rows).most_common(1)[0]))}


def paired(first: list[dict], second: list[dict]) -> dict:
    """Seeds where the first setting's best is higher, lower or the same (to 1e-9) as the second's,
    and the mean of the differences with its standard error."""
    differences = np.array([a["best"] - b["best"] for a, b in zip(first, second)])
    return {"first_higher": int((differences > 1e-9).sum()), "first_lower": int((differences < -1e-9).sum()),
            "same": int((np.abs(differences) <= 1e-9).sum()), "mean_difference": float(differences.mean()),
            "standard_error": float(differences.std(ddof=1) / np.sqrt(len(differences)))}


def markdown(result: dict) -> str:
    lines = ["| setting | seeds | best per seed | mean | median | max | seeds >= 5.86 | P(best of 5 >= 5.86) | "
             "average score | duplicates | CPU s per run |", "|---" * 11 + "|"]
    for name, setting in result["settings"].items():
        a = setting["aggregate"]
        per_seed = " ".join(f"{row['best']:.2f}" for row in setting["per_seed"])
        lines.append(
            f"| {name} | {a['seeds']} | {per_seed} | {a['mean_best']:.2f} | "
            f"{a['median_best']:.2f} | {a['max_best']:.2f} | {a['seeds_reaching_record']} | "
            f"{a['best_of_5_reaches_record']:.2f} | {a['mean_average_score']:.2f} | {a['mean_duplicates']:.2f} | "
            f"{a['mean_bo_cpu_seconds']:.0f} |")
    for name, setting in result["settings"].items():
        common = setting["aggregate"]["most_common_best"]
        region = (f"{setting['aggregate']['seeds_restarted']} seeds restart the trust region; after the batch "
                  f"that found the best, no region is wider than {setting['aggregate']['widest_after_best']} "
                  f"(widths in data standard deviations)") if setting["aggregate"]["seeds_restarted"] is not None else (
                  "the trust region starts again at each retraining")
        lines.append(f"\n{name}: {common['seeds']} seeds end on `{common['smiles']}`; {region}.")
    first, second = result["settings"]
    pairs = result["paired_by_seed"]
    lines.append(f"\nSeed by seed, {first}: best higher than {second} in {pairs['first_higher']} seeds, lower in "
                 f"{pairs['first_lower']} and the same in {pairs['same']}; mean difference "
                 f"{pairs['mean_difference']:+.2f} +- {pairs['standard_error']:.2f} (standard error).")
    return "\n".join(lines) + "\n"


def run_setting(model, setting: str, seeds: int, start: int = 0) -> list[dict]:
    max_ring_size, settings = SETTINGS[setting]
    rows = []
    for seed in range(start, seeds):
        with ring_preference(model, max_ring_size):
            summary = run_bo(model, BOConfig(target="logp", budget=BUDGET, seed=seed, **settings),
                             RUNS / setting / f"seed-{seed}", resume=True, progress=False)
        rows.append(seed_row(summary))
        print(f"{setting}, seed {seed}: best {rows[-1]['best']:.2f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=STUDIES, default="batch_size")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--run-setting", choices=SETTINGS, help="only run (or complete) this setting's seeds")
    parser.add_argument("--start", type=int, default=0, help="with --run-setting: its first seed")
    args = parser.parse_args()
    model = load_latent_model("zinc", "cpu")
    if args.run_setting:
        run_setting(model, args.run_setting, args.seeds, args.start)
        return
    result: dict = {"study": args.study, "budget": BUDGET, "record": RECORD, "settings": {}}
    for name, setting in STUDIES[args.study].items():
        rows = run_setting(model, setting, args.seeds)
        result["settings"][name] = {"setting": setting, "max_ring_size": SETTINGS[setting][0],
                                    "config": SETTINGS[setting][1], "per_seed": rows, "aggregate": aggregate(rows)}
    result["paired_by_seed"] = paired(*(setting["per_seed"] for setting in result["settings"].values()))
    print(f"wrote {write_result(f'bo_{args.study}', result)}")
    atomic_write_text(RESULTS / f"bo_{args.study}.md", markdown(result))


if __name__ == "__main__":
    main()
