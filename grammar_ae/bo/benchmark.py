"""The multi-seed BO protocol (PROTOCOLS 5-6): one run per seed, one table row.

Reported like the reference table: fraction valid and average score of the valid proposals
as mean +- standard deviation over seeds (population std, numpy's default; a seed without
any valid proposal is left out of the score average), and the best three distinct strings
found over all seeds; for a target with a known optimum, in how many seeds a proposal scored
as well as it (``target_found_seeds``, None otherwise); the fraction of proposals that decode
to a string already known (``duplicate_fraction``); and the best string that was new, in
neither the data nor an earlier proposal (``best_new``). Each seed's run lives in ``OUT/seed_<s>``
and is resumed if present, so an interrupted benchmark continues where it stopped; ``OUT`` is
locked while the benchmark writes it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.loop import BOConfig, run_bo
from grammar_ae.bo.results import compact
from grammar_ae.bo.targets import Target, get_target
from grammar_ae.errors import ConfigError
from grammar_ae.utils.files import atomic_write_json, atomic_write_text
from grammar_ae.utils.output_lock import hold_output_lock
from grammar_ae.utils.provenance import provenance


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    return (float(np.mean(values)), float(np.std(values))) if values else (None, None)


def best_over_seeds(summaries: list[dict], target: Target, count: int = 3, key: str = "top3") -> list[dict]:
    """The best ``count`` distinct strings over every seed's ``key`` list ("top3" or "top3_new")."""
    distinct: dict[str, dict] = {}
    for summary in summaries:
        for entry in summary.get(key, []):
            distinct.setdefault(compact(entry["string"]), {**entry, "seed": summary["seed"]})
    entries = list(distinct.values())
    return [entries[i] for i in target.ranked([e["score"] for e in entries])[:count]]


def benchmark_row(summaries: list[dict], target: Target, label: str) -> dict:
    fraction_mean, fraction_std = _mean_std([s["fraction_valid"] for s in summaries])
    score_mean, score_std = _mean_std([s["average_score"] for s in summaries if s["average_score"] is not None])
    found = [s["found_target"] for s in summaries]
    return {
        "problem": f"{target.grammar} ({'higher' if target.maximize else 'lower'} better)",
        "model": label,
        "target": target.name,
        "seeds": [s["seed"] for s in summaries],
        "fraction_valid_mean": fraction_mean,
        "fraction_valid_std": fraction_std,
        "average_score_mean": score_mean,
        "average_score_std": score_std,
        "best_three": best_over_seeds(summaries, target),
        "best_new": next(iter(best_over_seeds(summaries, target, 1, key="top3_new")), None),
        "target_found_seeds": None if target.optimum is None else sum(bool(f) for f in found),
        "duplicate_fraction": sum(s["duplicates"] for s in summaries) / max(1, sum(s["proposed"] for s in summaries)),
    }


def _plus_minus(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.2f} +- {std:.2f}"


def _found(row: dict) -> str:
    found = row["target_found_seeds"]
    return "-" if found is None else f"{found} of {len(row['seeds'])} seeds"


def _best_new(row: dict) -> str:
    new = row.get("best_new")
    return "-" if new is None else f"{new['score']:.2f} `{new['string']}`"


def table_markdown(row: dict) -> str:
    best = " ".join(f"{entry['score']:.2f}" for entry in row["best_three"])
    lines = [
        "| problem | model | fraction valid | avg score | best three | optimum found | best new |",
        "|---|---|---|---|---|---|---|",
        f"| {row['problem']} | {row['model']} | {_plus_minus(row['fraction_valid_mean'], row['fraction_valid_std'])} "
        f"| {_plus_minus(row['average_score_mean'], row['average_score_std'])} | {best} | {_found(row)} "
        f"| {_best_new(row)} |",
        "",
        f"Seeds: {', '.join(map(str, row['seeds']))}. Best strings:",
        "",
        *[f"{i + 1}. `{entry['string']}` {entry['score']:.4f} (seed {entry['seed']})" for i, entry in enumerate(row["best_three"])],
    ]
    return "\n".join(lines) + "\n"


def table_csv(row: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = ["problem", "model", "target", "seeds", "fraction_valid_mean", "fraction_valid_std",
               "average_score_mean", "average_score_std", "target_found_seeds", "duplicate_fraction"]
    best_columns = [f"best_{i}_{part}" for i in range(1, 4) for part in ("score", "string")]
    writer.writerow(columns + best_columns + ["best_new_score", "best_new_string"])
    values = [" ".join(map(str, row["seeds"])) if c == "seeds" else "" if row[c] is None else row[c] for c in columns]
    for entry in row["best_three"]:
        values += [repr(entry["score"]), entry["string"]]
    values += [""] * (len(columns) + len(best_columns) - len(values))
    new = row.get("best_new")
    writer.writerow(values + (["", ""] if new is None else [repr(new["score"]), new["string"]]))
    return buffer.getvalue()


def run_bo_benchmark(
    model: LatentModel, target: str, seeds: Sequence[int], config: BOConfig, out_dir: str | Path,
    label: str = "model", progress: bool = True,
) -> dict:
    """Run BO once per seed and write ``bo_benchmark.{csv,md,json}`` in ``out_dir``; returns the row."""
    if not seeds:
        raise ConfigError("the BO benchmark needs at least one seed")
    out_dir = Path(out_dir)
    with hold_output_lock(out_dir):
        summaries = [
            run_bo(model, replace(config, target=target, seed=seed), out_dir / f"seed_{seed}", resume=True, progress=progress)
            for seed in seeds
        ]
        row = benchmark_row(summaries, get_target(target), label)
        atomic_write_text(out_dir / "bo_benchmark.csv", table_csv(row))
        atomic_write_text(out_dir / "bo_benchmark.md", table_markdown(row))
        atomic_write_json(out_dir / "bo_benchmark.json", {
            **row, "config": summaries[0]["config"], "checkpoint_sha256": model.checkpoint_sha256,
            "provenance": provenance(),
        })
    return row
