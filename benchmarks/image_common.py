"""Helpers shared by the image study scripts: run settings on the MNIST test split, a benchmark
run with its result files, Markdown tables and labelled sample grids. The model code is imported
where it is used, so that a report from stored results starts without torch."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

from common import REPO, RESULTS, shared_data, write_result

from grammar_ae.utils.files import atomic_write_text
from grammar_ae.utils.provenance import code_version

RUNS = REPO / "benchmarks" / "runs"
GRID_COLUMNS = 10


def mnist_settings(epochs: int, width: float, latent_dim: int, limit: int | None = None) -> dict[str, Any]:
    """Run settings on the MNIST test split alone (90/10 train / validation; ``limit``: a seeded subset), on the CPU."""
    return {
        "dataset": "mnist", "split": "test", "data": str(shared_data() / "mnist"), "epochs": epochs, "seed": 0,
        "limit": limit, "device": "cpu", "network": {"width": width, "latent_dim": latent_dim},
    }


def study_arguments(parser, epochs: int) -> None:
    """The options every study script has: epochs, a subset for a quick check, a name suffix, quiet."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--limit", type=int, default=None, help="seeded subset of the images (a quick check)")
    parser.add_argument("--tag", default="", help="suffix of the run folder and result names")
    parser.add_argument("--quiet", action="store_true")


def run_study(
    name: str, variants: dict[str, dict], run: dict, evaluation: dict, sweep: dict | None = None, quiet: bool = False
) -> dict:
    """Train (or resume) and evaluate every variant into benchmarks/runs/<name>/; copy the table's
    CSV (and sweep plot) to benchmarks/results/ and return the table with its wall time."""
    from grammar_ae.pipelines.image_benchmark import ImageBenchmarkConfig, run_image_benchmark

    version = code_version()  # fixed before anything is trained: the checkout must not change meanwhile
    started = time.perf_counter()
    config = ImageBenchmarkConfig(tuple(variants), run, evaluation, sweep or {}, variants)
    table = run_image_benchmark(config, RUNS / name, progress=not quiet)
    seconds = sum(compute_seconds(RUNS / name / row["run"]) for row in table["rows"])
    shutil.copyfile(RUNS / name / "image_benchmark.csv", RESULTS / f"{name}.csv")
    if sweep:
        shutil.copyfile(RUNS / name / "image_benchmark.png", RESULTS / f"{name}.png")
    return {**table, "settings": run, "evaluation": evaluation, "code_version_at_start": version,
            "wall_seconds": round(time.perf_counter() - started, 1), "compute_seconds": round(seconds, 1)}


def compute_seconds(folder: Path) -> float:
    """Training and evaluation time of a run folder, over every (resumed) session of it."""
    summary = json.loads((folder / "summary.json").read_text())
    return summary["epochs_run"] * summary["seconds_per_epoch"] + json.loads((folder / "evaluation.json").read_text())["seconds"]


def stored_study(name: str, variants: dict[str, dict], run: dict, sweep: dict) -> dict:
    """The table of the grid points of benchmarks/runs/<name>/ that were trained and evaluated, read
    back from their evaluation.json and summary.json (nothing is trained or evaluated); the CSV goes
    to benchmarks/results/<name>.csv and, with a sweep, the plot to <name>.png."""
    from grammar_ae.pipelines.image_sweep import grid_points, plot_sweep

    rows, seconds = [], 0.0
    for point in grid_points(tuple(variants), run, variants, sweep):
        folder = RUNS / name / point.folder
        if (folder / "evaluation.json").is_file():
            evaluation = json.loads((folder / "evaluation.json").read_text())
            seconds += compute_seconds(folder)
            rows.append({**evaluation, "objective": evaluation["model"], "model": point.label, **point.swept, "run": point.folder})
    table = {"rows": rows, "sweep": sweep, "feature_extractor": rows[0]["feature_extractor"], "settings": run,
             "code_version_at_start": code_version(), "compute_seconds": round(seconds, 1)}
    keys = ["model", *sweep, "objective", "reconstruction_mse", *(key for key in rows[0] if key.startswith(("sample_fid", "interpolation_fid"))),
            "reconstruction_fid", "els", "expected_gap_1e-2", "expected_gap_1e-3", "kl", "sigma_z2", "data_sha256", "checkpoint_sha256"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(RESULTS / f"{name}.csv", buffer.getvalue())
    if sweep:
        plot_sweep(RESULTS / f"{name}.png", rows, sweep, table["feature_extractor"])
    return table


def finish(name: str, result: dict, markdown: list[str]) -> None:
    """Write benchmarks/results/<name>.json (with machine and provenance) and <name>.md; print the Markdown."""
    write_result(name, result)
    text = "\n".join(markdown) + "\n"
    atomic_write_text(RESULTS / f"{name}.md", text)
    print(text)


def markdown_table(rows: list[dict], columns: list[tuple[str, str]], first: tuple[str, str] = ("model", "model")) -> list[str]:
    """A Markdown table of ``rows`` with the given (key, title) columns; numbers to 3 significant places or 2 decimals."""
    titles = [first[1], *(title for _, title in columns)]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for row in rows:
        lines.append("| " + " | ".join([str(row[first[0]]), *(number(row.get(key)) for key, _ in columns)]) + " |")
    return lines


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3g}"


def samples_grid(path: Path, entries: list[tuple[str, Path, str, dict]], seed: int = 1) -> Path:
    """One labelled row of ``GRID_COLUMNS`` samples per (label, run folder, sampler kind, fitter options)."""
    from grammar_ae import load_run
    from grammar_ae.models.image.figures import save_labelled_grid

    rows = []
    for label, run_dir, kind, fit in entries:
        run = load_run(run_dir, "cpu", family="image")
        rows.append((label, run.samples(kind, GRID_COLUMNS, seed=seed, fit=fit)))
    return save_labelled_grid(path, rows, GRID_COLUMNS)


def holds(flag: bool) -> str:
    return "**holds**" if flag else "**does not hold**"


def orderings_markdown(orderings: dict[str, bool | dict[str, bool]]) -> list[str]:
    """One line per ordering: holds / does not hold, per model where it is checked per model."""
    return [
        f"- {claim}: " + (holds(value) if isinstance(value, bool) else ", ".join(f"{m} {holds(v)}" for m, v in value.items()))
        for claim, value in orderings.items()
    ]
