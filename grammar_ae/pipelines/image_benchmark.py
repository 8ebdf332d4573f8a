"""The image benchmark (``grammar-ae benchmark images``): several models trained with the same
settings on one data set, optionally over a grid of swept settings (``image_sweep``), each
evaluated, and the table of the results (plus FID against the first swept setting)."""

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
from grammar_ae.pipelines.image_sweep import GridPoint, grid_points, plot_sweep
from grammar_ae.pipelines.train_images import train_image_model
from grammar_ae.training.trainer import LAST_CHECKPOINT, SUMMARY_FILE
from grammar_ae.utils.files import atomic_write_json, atomic_write_text, sha256_file
from grammar_ae.utils.output_lock import hold_output_lock
from grammar_ae.utils.progress import progress_bar
from grammar_ae.utils.provenance import provenance

BENCHMARK_MODELS = ("ae", "vae", "wae", "rae-l2", "rae-gp", "gmm")
TABLE_COLUMNS = (
    ("reconstruction_fid", "Rec."),
    ("reconstruction_mse", "MSE"),
    ("sample_fid_prior", "Prior"),
    ("sample_fid_standard_normal", "N(0, I)"),
    ("sample_fid_gaussian", "MVG"),
    ("sample_fid_gmm", "GMM-10"),
    ("sample_fid_gmm100", "GMM-100"),
    ("sample_fid_second_stage", "2nd stage"),
    ("interpolation_fid", "Interp. mid"),
    ("interpolation_fid_random", "Interp. random"),
    ("precision", "Precision prior"),
    ("recall", "Recall prior"),
    ("precision_gmm", "Precision GMM"),
    ("recall_gmm", "Recall GMM"),
    ("els", "ELS"),
    ("expected_gap_1e-2", "Gap 1e-2"),
    ("expected_gap_1e-3", "Gap 1e-3"),
    ("kl", "KL"),
    ("sigma_z2", "sigma_z^2"),
    ("clustering_accuracy", "Clustering acc."),
)


@dataclass
class ImageBenchmarkConfig:
    """Models trained with the same run settings (``run``: an ImageRunConfig minus the model).

    ``models`` are objective names or names of ``variants`` (label -> run settings with a
    ``model``, over ``run``); ``sweep`` (setting -> values) trains every model at every
    combination of the values (``image_sweep``).
    """

    models: tuple[str, ...] = BENCHMARK_MODELS
    run: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    sweep: dict[str, list[Any]] | None = None
    variants: dict[str, dict[str, Any]] | None = None


def run_image_benchmark(config: ImageBenchmarkConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train (or resume) and evaluate every model (at every sweep point) into ``out_dir/<folder>/``;
    write the tables, and with a sweep the plot ``image_benchmark.png``.

    A run whose evaluation.json matches its current checkpoint and options is not evaluated
    again; ``out_dir`` is locked while the benchmark writes it.
    Returns the table: ``{"rows": [...], "sweep": {...}, ...}``.
    """
    out_dir = Path(out_dir)
    base = ImageRunConfig.from_dict(dict(config.run or {}))
    sweep = dict(config.sweep or {})
    points = grid_points(_checked_models(config.models), dict(config.run or {}), dict(config.variants or {}), sweep)
    ImageEvaluationConfig.from_options(config.evaluation)
    resolved = [(point, ImageRunConfig.from_dict(point.settings).resolved()) for point in points]
    with hold_output_lock(out_dir):
        rows = _train_and_evaluate(resolved, out_dir, config.evaluation, f"benchmark {base.dataset}", progress)
        table = {
            "dataset": base.dataset,
            "split": base.split,
            "models": list(config.models),
            "sweep": sweep,
            "variants": dict(config.variants or {}),
            "rows": rows,
            "feature_extractor": rows[0]["feature_extractor"],
            "provenance": provenance(),
        }
        atomic_write_json(out_dir / "image_benchmark.json", table)
        atomic_write_text(out_dir / "image_benchmark.csv", benchmark_csv(rows, list(sweep)))
        atomic_write_text(out_dir / "image_benchmark.md", benchmark_markdown(table))
        if sweep:
            plot_sweep(out_dir / "image_benchmark.png", rows, sweep, table["feature_extractor"])
    return table


def _train_and_evaluate(
    resolved: list[tuple[GridPoint, ImageRunConfig]], out_dir: Path, evaluation: dict[str, Any] | None, title: str,
    progress: bool,
) -> list[dict]:
    """Each grid point trained (or resumed) in ``out_dir/<folder>`` and evaluated: its table row."""
    rows = []
    with progress_bar(title, total=sum(run.epochs + 1 for _, run in resolved), enabled=progress) as advance:
        for point, run_config in resolved:
            run_dir, name = out_dir / point.folder, point.folder
            advance(0, status=f"{name}: training")
            done_before = _epochs_done(run_dir)
            summary = train_image_model(
                run_config, run_dir, resume=(run_dir / LAST_CHECKPOINT).exists(), quiet=True,
                callbacks=[lambda epoch, row, name=name: advance(status=f"{name}: epoch {epoch}, val loss {row['val_loss']:.4g}")],
            )
            advance(min(done_before, run_config.epochs), status=f"{name}: evaluating")
            result = _evaluation(run_dir, run_config.device, evaluation)
            advance(status=f"{name}: done")
            rows.append({**_row(point.label, point.folder, summary, result), **point.swept})
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


def _row(model: str, folder: str, summary: dict, evaluation: dict) -> dict:
    return {
        "model": model,
        "objective": evaluation["model"],
        **{key: evaluation.get(key) for key, _ in TABLE_COLUMNS},
        "sample_fid_prior_source": evaluation["sample_fid_prior_source"],
        "feature_extractor": evaluation["feature_extractor"],
        "data_sha256": evaluation["data_sha256"],
        "epochs": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "seconds_per_epoch": round(summary["seconds_per_epoch"], 2),
        "train_items": summary["record"]["train_items"],
        "validation_items": summary["record"]["validation_items"],
        "parameters": summary["record"]["parameters"],
        "run": folder,
        "figures": summary["figures"],
    }


def _present_columns(rows: list[dict]) -> list[tuple[str, str]]:
    return [(key, title) for key, title in TABLE_COLUMNS if any(row.get(key) is not None for row in rows)]


def benchmark_csv(rows: list[dict], swept: list[str] = ()) -> str:
    keys = ["model", *swept, "objective", *(key for key, _ in _present_columns(rows)), "sample_fid_prior_source",
            "feature_extractor", "epochs", "best_epoch", "seconds_per_epoch", "train_items", "parameters"]
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
    swept = list(table.get("sweep") or {})
    header = "| model | " + "".join(f"{key} | " for key in swept) + " | ".join(title for _, title in columns) + " | prior is | epochs |"
    lines = [
        f"# Image benchmark: {table['dataset']} ({table['split']} split)",
        "",
        f"FID (lower is better) against the held-out validation images, features: `{table['feature_extractor']}`.",
        "Rec.: reconstructions (MSE: per pixel); samples decoded from the training prior (a Gaussian fitted on",
        "training codes for models without one, see 'prior is'), N(0, I), one fitted full-covariance Gaussian",
        "(MVG), fitted GMMs with 10 and 100 components and a second-stage VAE; Interp.: spherical interpolations",
        "between validation codes at t = 0.5 and at a random t. Precision / recall: k-NN estimates of the prior and",
        "GMM-10 samples. ELS, Gap: decoder smoothness at validation codes; KL (nats) and sigma_z^2: stochastic",
        "encoders (see grammar_ae.evaluation.images).",
        "",
        header,
        "|" + "---|" * (len(columns) + len(swept) + 3),
    ]
    for row in rows:
        cells = [*(str(row[key]) for key in swept), *(_cell(row.get(key)) for key, _ in columns)]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {row['sample_fid_prior_source']} | {row['epochs']} |")
    if grids is not None:
        lines += ["", "## Grids", ""]
        for row in rows:
            links = (f"[{name}]({grids}{row['run']}/{name})" for name in row["figures"])
            lines.append(f"- {row['model']}: " + ", ".join(links))
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}" if abs(value) >= 0.1 else f"{value:.3g}"
