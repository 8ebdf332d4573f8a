"""Optimizers side by side (PROTOCOLS 5-6): one run per method and seed, one table row per method.

Methods: ``bo`` (latent-space BO), ``bo-offspring`` (latent-space BO choosing among
children of the best strings, ``candidates="offspring"`` in ``grammar_ae.bo.loop``),
``random`` (random latent points, decoded and scored) and ``ga`` (the grammar's genetic algorithm, ``grammar_ae.bo.genetic``), all from the same
starting data with the same seeds and the same budget of objective calls on new strings
(valid strings neither in the starting data nor proposed before, compared by the target's key:
canonical SMILES for molecules; rediscoveries are free).

Each row reports, like the reference table, fraction valid and average score of the valid
proposals as mean +- standard deviation over seeds (population std, numpy's default; a
seed without a valid proposal is left out of the score average) and the best three
distinct strings over all seeds; and besides: the calls spent, the best three new strings
(with heavy atoms for molecules), the fraction of proposals that were already known
(``duplicate_fraction``), for a target with a known optimum the seeds that reached it, and
with a ``threshold`` the seeds whose best score beat it. The published rows of the target
(PROTOCOLS 6; their budget was 250 proposals, rediscoveries included) follow for reference.

``OUT/<method>/seed_<s>`` holds each run (a BO or random run is resumed if present, a
finished GA run kept); ``OUT/bo_benchmark.{csv,md,json}`` the table, ``best_so_far.png``
the best new score against objective calls per method, and for molecules
``best_new_molecules.png`` each method's best three new molecules. ``OUT`` is locked while
the benchmark writes it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from grammar_ae.bo.genetic import GAConfig, run_ga
from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.loop import BOConfig, run_bo
from grammar_ae.bo.offspring import check_ga_grammar
from grammar_ae.bo.retraining import RetrainingConfig
from grammar_ae.bo.results import draw_molecules
from grammar_ae.bo.targets import Target, check_target_grammar, get_target
from grammar_ae.errors import ConfigError
from grammar_ae.utils.files import atomic_figure, atomic_write_json, atomic_write_text
from grammar_ae.utils.output_lock import hold_output_lock
from grammar_ae.utils.provenance import provenance

METHODS = ("bo", "bo-offspring", "random", "ga")
BO_CANDIDATES = {"bo": "latent", "bo-offspring": "offspring"}  # the BO methods and their candidates
# PROTOCOLS 6: (model, fraction valid, average score, best three), 5 x 50 proposals per seed
PUBLISHED_ROWS = {
    "expression": [
        ("GRAE", "1.00 +- 0.00", "3.22 +- 0.03", "0.39 0.39 0.43"),
        ("GCVVAE", "0.99 +- 0.01", "2.85 +- 0.08", "0.39 0.40 0.43"),
        ("GVAE", "0.99 +- 0.01", "3.26 +- 0.20", "0.10 0.46 0.52"),
        ("CVAE", "0.82 +- 0.07", "4.74 +- 0.25", "0.45 0.48 0.61"),
    ],
    "logp": [
        ("GMM KS+CV", "0.72 +- 0.03", "-5.08 +- 1.30", "4.15 3.84 3.12"),
        ("GRAE", "0.72 +- 0.09", "-5.62 +- 0.71", "3.74 3.52 3.14"),
        ("GCVVAE", "0.76 +- 0.06", "-6.40 +- 0.80", "3.22 2.83 2.63"),
        ("GVAE", "0.28 +- 0.04", "-7.89 +- 1.90", "3.13 3.10 2.37"),
        ("CVAE", "0.16 +- 0.04", "-25.64 +- 6.35", "2.75 0.82 0.63"),
        ("deterministic-decoding VAE (250 evaluations)", "", "", "5.86 5.77 5.64"),
    ],
}


def check_methods(methods: Sequence[str]) -> None:
    """One-line errors for an empty or unknown method list."""
    if not methods:
        raise ConfigError("the benchmark needs at least one method")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r}; expected some of {', '.join(METHODS)}")


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    return (float(np.mean(values)), float(np.std(values))) if values else (None, None)


def best_over_seeds(summaries: list[dict], target: Target, count: int = 3, key: str = "top3") -> list[dict]:
    """The best ``count`` distinct strings over every seed's ``key`` list ("top3" or "top3_new")."""
    distinct: dict[str, dict] = {}
    for summary in summaries:
        for entry in summary.get(key, []):
            distinct.setdefault(target.key(entry["string"]), {**entry, "seed": summary["seed"]})
    entries = list(distinct.values())
    return [entries[i] for i in target.ranked([e["score"] for e in entries])[:count]]


def beats(target: Target, score: float, threshold: float) -> bool:
    return score > threshold if target.maximize else score < threshold


def best_per_seed(summaries: list[dict], target: Target) -> list[float | None]:
    """Each seed's best score (None for a seed without a valid proposal)."""
    return [next((entry["score"] for entry in best_over_seeds([s], target, 1)), None) for s in summaries]


SEARCH_STAGES = ("retraining", "reencode", "fit", "acquisition", "decoding", "scoring")  # without the starting data's


def cpu_seconds_per_iteration(summary: dict) -> float | None:
    """Mean CPU seconds of the process per BO or random-search iteration (None for the GA)."""
    timings = summary.get("timings", {}).get("cpu_seconds", {})
    spent = sum(sum(timings.get(stage, [])) for stage in SEARCH_STAGES)
    return spent / summary["completed_iterations"] if timings and summary.get("completed_iterations") else None


def benchmark_row(
    summaries: list[dict], target: Target, label: str, method: str = "bo", budget: int | None = None,
    threshold: float | None = None,
) -> dict:
    fraction_mean, fraction_std = _mean_std([s["fraction_valid"] for s in summaries if s["fraction_valid"] is not None])
    score_mean, score_std = _mean_std([s["average_score"] for s in summaries if s["average_score"] is not None])
    found = [s["found_target"] for s in summaries]
    bests = best_per_seed(summaries, target)
    beating = None if threshold is None else sum(best is not None and beats(target, best, threshold) for best in bests)
    per_iteration = [seconds for seconds in map(cpu_seconds_per_iteration, summaries) if seconds is not None]
    return {
        "problem": f"{target.grammar} ({'higher' if target.maximize else 'lower'} better)",
        "model": label,
        "method": method,
        "target": target.name,
        "seeds": [s["seed"] for s in summaries],
        "budget": budget,
        "objective_calls_mean": float(np.mean([s.get("objective_calls", 0) for s in summaries])),
        "objective_calls_per_seed": [s.get("objective_calls", 0) for s in summaries],
        "best_per_seed": bests,
        "cpu_seconds_per_iteration_mean": float(np.mean(per_iteration)) if per_iteration else None,
        "fraction_valid_mean": fraction_mean,
        "fraction_valid_std": fraction_std,
        "average_score_mean": score_mean,
        "average_score_std": score_std,
        "best_three": best_over_seeds(summaries, target),
        "best_new_three": best_over_seeds(summaries, target, key="top3_new"),
        "best_new": next(iter(best_over_seeds(summaries, target, 1, key="top3_new")), None),
        "threshold": threshold,
        "threshold_seeds": beating,
        "target_found_seeds": None if target.optimum is None else sum(bool(f) for f in found),
        "duplicate_fraction": sum(s["duplicates"] for s in summaries) / max(1, sum(s["proposed"] for s in summaries)),
        "data_best": summaries[0]["training"].get("best_score") if summaries else None,
    }


def _plus_minus(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.2f} +- {std:.2f}"


def _of_seeds(count: int | None, row: dict) -> str:
    return "-" if count is None else f"{count} of {len(row['seeds'])}"


def _new_scores(row: dict) -> str:
    entries = row.get("best_new_three") or []
    return " ".join(
        f"{e['score']:.2f}" + (f" ({e['heavy_atoms']})" if e.get("heavy_atoms") is not None else "") for e in entries
    ) or "-"


def table_markdown(rows: list[dict]) -> str:
    first = rows[0]
    better = "below" if first["problem"].endswith("(lower better)") else "above"
    threshold = first.get("threshold")
    lines = [
        f"Budget: {first['budget'] if first.get('budget') is not None else 'every proposal'} objective calls "
        f"on new strings per seed (valid strings neither in the starting data nor proposed before, "
        f"compared by the target's key: canonical SMILES for molecules); "
        f"starting data's best score {first['data_best']:.2f}."
        if first.get("data_best") is not None else "",
        "",
        "| problem | model | method | calls | fraction valid | avg score | best three | best new three | best per seed "
        f"| {f'seeds {better} {threshold:g}' if threshold is not None else 'seeds beating a threshold'} "
        "| optimum found | duplicates | CPU s per batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        best = " ".join(f"{entry['score']:.2f}" for entry in row["best_three"])
        per_seed = " ".join("-" if score is None else f"{score:.2f}" for score in row["best_per_seed"])
        seconds = row["cpu_seconds_per_iteration_mean"]
        lines.append(
            f"| {row['problem']} | {row['model']} | {row['method']} | {row['objective_calls_mean']:.0f} "
            f"| {_plus_minus(row['fraction_valid_mean'], row['fraction_valid_std'])} "
            f"| {_plus_minus(row['average_score_mean'], row['average_score_std'])} | {best} | {_new_scores(row)} "
            f"| {per_seed} | {_of_seeds(row['threshold_seeds'], row)} | {_of_seeds(row['target_found_seeds'], row)} "
            f"| {row['duplicate_fraction']:.2f} | {'-' if seconds is None else f'{seconds:.1f}'} |"
        )
    for model, fraction, average, best in PUBLISHED_ROWS.get(first["target"], []):
        lines.append(f"| published | {model} | | | {fraction} | {average} | {best} | | | | | | |")
    lines += ["", f"Seeds: {', '.join(map(str, first['seeds']))}. Best new strings per method:", ""]
    for row in rows:
        for rank, entry in enumerate(row["best_new_three"], 1):
            atoms = f", {entry['heavy_atoms']} heavy atoms" if entry.get("heavy_atoms") is not None else ""
            lines.append(f"- {row['method']} {rank}. `{entry['string']}` {entry['score']:.4f} (seed {entry['seed']}{atoms})")
    return "\n".join(lines).lstrip("\n") + "\n"


CSV_COLUMNS = ["problem", "model", "method", "target", "seeds", "budget", "objective_calls_mean",
               "fraction_valid_mean", "fraction_valid_std", "average_score_mean", "average_score_std",
               "best_per_seed", "cpu_seconds_per_iteration_mean", "threshold", "threshold_seeds", "target_found_seeds", "duplicate_fraction", "data_best"]


def table_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    ranked = [f"{kind}_{i}_{part}" for kind in ("best", "best_new") for i in range(1, 4) for part in ("score", "string")]
    writer.writerow(CSV_COLUMNS + ranked)
    for row in rows:
        values = [" ".join(map(str, row[c])) if c in ("seeds", "best_per_seed") else "" if row[c] is None else row[c]
                  for c in CSV_COLUMNS]
        for key in ("best_three", "best_new_three"):
            entries = row[key]
            for i in range(3):
                values += [repr(entries[i]["score"]), entries[i]["string"]] if i < len(entries) else ["", ""]
        writer.writerow(values)
    return buffer.getvalue()


def plot_best_so_far(path: Path, runs: dict[str, list[dict]], target: Target) -> None:
    """Best new score against objective calls on new strings: one panel per method, one line
    per seed, the starting data's best dashed."""
    with atomic_figure(path, 120, figsize=(4 * len(runs), 3.5), layout="constrained") as figure:
        axes = figure.subplots(1, len(runs), sharey=True, squeeze=False)[0]
        for panel, (method, summaries) in zip(axes, runs.items()):
            for summary in summaries:
                curve = summary["best_new_by_call"]
                panel.plot(range(1, len(curve) + 1), curve, label=f"seed {summary['seed']}")
            data_best = summaries[0]["training"].get("best_score") if summaries else None
            if data_best is not None:
                panel.axhline(data_best, color="gray", linestyle="--", label="starting data's best")
            panel.set_title(method)
            panel.set_xlabel("objective calls on new strings")
        axes[0].set_ylabel(f"best new {target.name} ({'higher' if target.maximize else 'lower'} is better)")
        axes[-1].legend(fontsize="small")


def _method_config(config: BOConfig, target: str, seed: int, method: str) -> BOConfig:
    """``config`` for one run of ``method`` (a BO method or "random": retraining is BO's only)."""
    if method in BO_CANDIDATES:
        return replace(config, target=target, seed=seed, method="bo", candidates=BO_CANDIDATES[method])
    return replace(config, target=target, seed=seed, method=method, retraining=RetrainingConfig())


def run_bo_benchmark(
    model: LatentModel, target: str, seeds: Sequence[int], config: BOConfig, out_dir: str | Path,
    label: str = "model", progress: bool = True, methods: Sequence[str] = ("bo",), threshold: float | None = None,
) -> list[dict]:
    """Run every method once per seed and write the table (see the module docstring); returns the rows.
    ``config`` sets the BO and random runs; the GA takes its budget, batch size (children per
    generation) and starting data."""
    if not seeds:
        raise ConfigError("the BO benchmark needs at least one seed")
    resolved = get_target(target)
    check_target_grammar(resolved, model.grammar_name)
    check_methods(methods)
    if {"ga", "bo-offspring"} & set(methods):
        check_ga_grammar(model.grammar_name)
    for method in methods:  # every run's settings checked, in order, before any run writes
        if method != "ga":
            _method_config(config, target, seeds[0], method)
    out_dir = Path(out_dir)
    runs: dict[str, list[dict]] = {}
    with hold_output_lock(out_dir):
        for method in methods:
            runs[method] = [
                run_ga(model, GAConfig(target, budget=config.budget or config.batch_size * config.iterations,
                                       offspring=config.batch_size, seed=seed, data=config.data),
                       out_dir / method / f"seed_{seed}", progress=progress)
                if method == "ga" else
                run_bo(model, _method_config(config, target, seed, method),
                       out_dir / method / f"seed_{seed}", resume=True, progress=progress)
                for seed in seeds
            ]
        rows = [benchmark_row(runs[m], resolved, label, m, config.budget, threshold) for m in methods]
        atomic_write_text(out_dir / "bo_benchmark.csv", table_csv(rows))
        atomic_write_text(out_dir / "bo_benchmark.md", table_markdown(rows))
        atomic_write_json(out_dir / "bo_benchmark.json", {
            "rows": rows, "config": runs[methods[0]][0]["config"], "checkpoint_sha256": model.checkpoint_sha256,
            "provenance": provenance(),
        })
        plot_best_so_far(out_dir / "best_so_far.png", runs, resolved)
        if resolved.grammar == "smiles":
            best = [{**entry, "label": f"{row['method']}: "} for row in rows for entry in row["best_new_three"]]
            if best:
                draw_molecules(out_dir / "best_new_molecules.png", best)
    return rows
