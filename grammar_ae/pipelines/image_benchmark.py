"""The image benchmark (``grammar-ae benchmark images``): several models trained with the same
settings on one data set, each evaluated, and the RAE paper's table of the results."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grammar_ae.errors import ConfigError
from grammar_ae.evaluation.images import ImageEvaluationConfig
from grammar_ae.evaluation.run import EVALUATION_FILE, evaluate_run
from grammar_ae.models.image.config import ImageRunConfig
from grammar_ae.models.run import checkpoint_path
from grammar_ae.pipelines.train_images import train_image_model
from grammar_ae.training.trainer import LAST_CHECKPOINT, SUMMARY_FILE
from grammar_ae.utils.files import atomic_write_json, atomic_write_text, sha256_file
from grammar_ae.utils.output_lock import hold_output_lock
from grammar_ae.utils.progress import progress_bar
from grammar_ae.utils.provenance import provenance

BENCHMARK_MODELS = ("ae", "vae", "wae", "rae-l2", "rae-gp", "gmm")
TABLE_COLUMNS = (
    ("reconstruction_fid", "Rec."),
    ("sample_fid_gaussian", "Samples N"),
    ("sample_fid_gmm", "Samples GMM"),
    ("interpolation_fid", "Interp."),
    ("sample_fid_two_stage", "Samples 2-stage"),
    ("precision", "Precision N"),
    ("recall", "Recall N"),
    ("precision_gmm", "Precision GMM"),
    ("recall_gmm", "Recall GMM"),
    ("clustering_accuracy", "Clustering acc."),
)


@dataclass
class ImageBenchmarkConfig:
    """Models trained with the same run settings (``run``: an ImageRunConfig minus the model)."""

    models: tuple[str, ...] = BENCHMARK_MODELS
    run: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None


def run_image_benchmark(config: ImageBenchmarkConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train (or resume) and evaluate every model into ``out_dir/<model>/``; write the tables.

    A model whose evaluation.json matches its current checkpoint and options is not evaluated
    again; ``out_dir`` is locked while the benchmark writes it.
    Returns ``{"rows": [...], "table_csv": path, "table_md": path, ...}``.
    """
    out_dir = Path(out_dir)
    base = ImageRunConfig.from_dict(dict(config.run or {}))
    models = _checked_models(config.models)
    ImageEvaluationConfig.from_options(config.evaluation)
    resolved = {model: ImageRunConfig.from_dict({**asdict(base), "model": model}).resolved() for model in models}
    with hold_output_lock(out_dir):
        rows = _train_and_evaluate(resolved, out_dir, config.evaluation, f"benchmark {base.dataset}", progress)
        table = {
            "dataset": base.dataset,
            "split": base.split,
            "models": list(models),
            "rows": rows,
            "feature_extractor": rows[0]["feature_extractor"],
            "provenance": provenance(),
        }
        atomic_write_json(out_dir / "image_benchmark.json", table)
        atomic_write_text(out_dir / "image_benchmark.csv", benchmark_csv(rows))
        atomic_write_text(out_dir / "image_benchmark.md", benchmark_markdown(table))
    return table


def _train_and_evaluate(
    runs: dict[str, ImageRunConfig], out_dir: Path, evaluation: dict[str, Any] | None, title: str, progress: bool
) -> list[dict]:
    """Each model trained (or resumed) in ``out_dir/<model>`` and evaluated: its table row."""
    rows = []
    with progress_bar(title, total=sum(run.epochs + 1 for run in runs.values()), enabled=progress) as advance:
        for model, run_config in runs.items():
            run_dir = out_dir / model
            advance(0, status=f"{model}: training")
            done_before = _epochs_done(run_dir)
            summary = train_image_model(
                run_config, run_dir, resume=(run_dir / LAST_CHECKPOINT).exists(), quiet=True,
                callbacks=[lambda epoch, row, model=model: advance(status=f"{model}: epoch {epoch}, val loss {row['val_loss']:.4g}")],
            )
            advance(min(done_before, run_config.epochs), status=f"{model}: evaluating")
            result = _evaluation(run_dir, run_config.device, evaluation)
            advance(status=f"{model}: done")
            rows.append(_row(model, summary, result))
    return rows


def _checked_models(models: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if not models:
        raise ConfigError("the benchmark needs at least one model")
    duplicates = sorted({model for model in models if list(models).count(model) > 1})
    if duplicates:
        raise ConfigError(f"model(s) {', '.join(duplicates)} given more than once")
    return tuple(models)


def _epochs_done(run_dir: Path) -> int:
    """Epochs already in the run's summary (0 when the run is new)."""
    try:
        return int(json.loads((run_dir / SUMMARY_FILE).read_text())["epochs_run"])
    except (OSError, ValueError, KeyError):
        return 0


def _evaluation(run_dir: Path, device: str, options: dict[str, Any] | None) -> dict:
    """The stored evaluation when it belongs to the current checkpoint and options, else a new one."""
    wanted = asdict(ImageEvaluationConfig.from_options(options))
    try:
        stored = json.loads((run_dir / EVALUATION_FILE).read_text())
        if stored["checkpoint_sha256"] == sha256_file(checkpoint_path(run_dir)) and stored["config"] == wanted:
            return stored
    except (OSError, ValueError, KeyError):
        pass
    return evaluate_run(run_dir, device, progress=False, options=options)


def _row(model: str, summary: dict, evaluation: dict) -> dict:
    return {
        "model": model,
        **{key: evaluation.get(key) for key, _ in TABLE_COLUMNS},
        "sample_fid_gaussian_source": evaluation["sample_fid_gaussian_source"],
        "feature_extractor": evaluation["feature_extractor"],
        "epochs": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "seconds_per_epoch": round(summary["seconds_per_epoch"], 2),
        "train_items": summary["record"]["train_items"],
        "validation_items": summary["record"]["validation_items"],
        "parameters": summary["record"]["parameters"],
        "run": model,
        "figures": summary["figures"],
    }


def _present_columns(rows: list[dict]) -> list[tuple[str, str]]:
    return [(key, title) for key, title in TABLE_COLUMNS if any(row.get(key) is not None for row in rows)]


def benchmark_csv(rows: list[dict]) -> str:
    keys = ["model", *(key for key, _ in _present_columns(rows)), "sample_fid_gaussian_source", "feature_extractor",
            "epochs", "best_epoch", "seconds_per_epoch", "train_items", "parameters"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def benchmark_markdown(table: dict, grids: str | None = "") -> str:
    """The RAE-paper style table (FID, lower is better), then links to every model's grids
    (``grids``: the folder holding the run folders, relative to the Markdown file; None: no links)."""
    rows = table["rows"]
    columns = _present_columns(rows)
    header = "| model | " + " | ".join(title for _, title in columns) + " | N is | epochs |"
    lines = [
        f"# Image benchmark: {table['dataset']} ({table['split']} split)",
        "",
        f"FID (lower is better) against the held-out validation images, features: `{table['feature_extractor']}`.",
        "Precision / recall: k-NN manifold estimates of the same samples. Rec.: reconstructions; Samples N: the",
        "prior, or one Gaussian fitted on training codes (see 'N is'); Samples GMM: an ex-post 10-component GMM;",
        "Interp.: spherical mid-points between validation codes.",
        "",
        header,
        "|" + "---|" * (len(columns) + 3),
    ]
    for row in rows:
        cells = [_cell(row.get(key)) for key, _ in columns]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {row['sample_fid_gaussian_source']} | {row['epochs']} |")
    if grids is not None:
        lines += ["", "## Grids", ""]
        for row in rows:
            links = (f"[{name}]({grids}{row['run']}/{name})" for name in row["figures"])
            lines.append(f"- {row['model']}: " + ", ".join(links))
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
