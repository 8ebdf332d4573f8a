"""Sample quality of a trained image autoencoder (the RAE paper's table) and the image benchmark.

Every FID compares generated images with the run's held-out validation images, in the
features of one extractor named in the result: the FID Inception network when its
TorchScript file is given (``inception``) or cached, else the fallback classifier trained
on the run's labelled training images (numbers then only compare within that extractor).

- ``reconstruction_fid``: reconstructions of the validation images.
- ``sample_fid_gaussian``: decoded samples of the model's prior (VAE-like models, WAE and the
  GMM prior), or of one Gaussian fitted on training codes for deterministic autoencoders;
  ``sample_fid_gaussian_source`` says which.
- ``sample_fid_gmm``: samples of an ex-post 10-component GMM fitted on training codes.
- ``sample_fid_two_stage`` (2svae only): samples of the second-stage VAE fitted on training codes.
- ``interpolation_fid``: spherical mid-points between random pairs of validation codes.
- ``precision`` / ``recall`` (k-NN, of the ``sample_fid_gaussian`` samples) and
  ``precision_gmm`` / ``recall_gmm``.
- ``clustering_accuracy`` (gmm only): prior component of each validation code vs its label.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from grammar_ae.errors import ConfigError
from grammar_ae.utils.download import cache_root
from grammar_ae.evaluation.image_features import (
    INCEPTION_FILE,
    ClassifierFeatures,
    FeatureExtractor,
    InceptionFeatures,
    extract_features,
)
from grammar_ae.evaluation.image_metrics import GaussianStatistics, clustering_accuracy, frechet_distance, precision_recall
from grammar_ae.models.run import checkpoint_path
from grammar_ae.pipelines.train_images import (
    ImageRunConfig,
    TrainedImageModel,
    load_image_run,
    slerp,
    train_image_model,
)
from grammar_ae.utils.files import atomic_write_json, atomic_write_text, sha256_file
from grammar_ae.utils.progress import progress_bar
from grammar_ae.utils.provenance import provenance

EVALUATION_FILE = "evaluation.json"
MAX_SAMPLES = 10_000


@dataclass
class ImageEvaluationConfig:
    """``samples`` generated images per FID (default: as many as validation images, at most 10,000)."""

    samples: int | None = None
    gmm_components: int = 10
    two_stage_epochs: int = 20
    k: int = 3
    inception: str | None = None
    seed: int = 0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> ImageEvaluationConfig:
        options = {key: value for key, value in (options or {}).items() if value is not None}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown image evaluation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        config = cls(**options)
        if config.samples is not None and config.samples <= config.k:
            raise ConfigError(f"samples {config.samples}: need more than k = {config.k} generated images")
        if config.gmm_components < 1 or config.two_stage_epochs < 1:
            raise ConfigError("gmm_components and two_stage_epochs must be >= 1")
        return config


def feature_extractor(run: TrainedImageModel, inception: str | None) -> FeatureExtractor:
    """The Inception network (given path, else the cached file), else the fallback classifier."""
    if inception is not None or (cache_root() / INCEPTION_FILE).is_file():
        return InceptionFeatures(inception, device=run.device)
    return ClassifierFeatures.for_dataset(run.data.train)


class _Comparison:
    """Generated images against the validation images, in one extractor's features."""

    def __init__(self, extractor: FeatureExtractor, real: np.ndarray, k: int):
        self.extractor, self.k = extractor, k
        self.real = extract_features(extractor, real)
        self.real_statistics = GaussianStatistics.of(self.real)

    def fid(self, generated: torch.Tensor) -> tuple[float, np.ndarray]:
        features = extract_features(self.extractor, generated)
        return frechet_distance(self.real_statistics, GaussianStatistics.of(features)), features

    def precision_recall(self, features: np.ndarray) -> tuple[float, float]:
        result = precision_recall(self.real, features, self.k)
        return result.precision, result.recall


def evaluate_image_run(
    run_dir: str | Path, device: str = "auto", options: dict[str, Any] | None = None, progress: bool = True
) -> dict:
    """The metrics of the module docstring for the run in ``run_dir``; also written to its evaluation.json."""
    config = ImageEvaluationConfig.from_options(options)
    started = time.perf_counter()
    run = load_image_run(run_dir, device)
    objective = run.model.objective.name
    validation = run.data.validation
    count = config.samples or min(len(validation), MAX_SAMPLES)
    rng = np.random.default_rng(config.seed)
    gmm_fit = {"components": config.gmm_components, "seed": config.seed}
    two_stage_fit = {"epochs": config.two_stage_epochs, "seed": config.seed}
    steps: dict[str, Callable[[], torch.Tensor]] = {
        "reconstruction_fid": lambda: run.reconstruct(validation.images),
        "sample_fid_gaussian": lambda: run.samples("prior", count, config.seed),
        "sample_fid_gmm": lambda: run.samples("gmm", count, config.seed, gmm_fit),
        "interpolation_fid": lambda: _interpolation_midpoints(run, validation.images, count, rng),
    }
    if objective == "2svae":
        steps["sample_fid_two_stage"] = lambda: run.samples("two-stage", count, config.seed, two_stage_fit)
    result: dict[str, Any] = {
        "run": str(run.run_dir),
        "checkpoint": str(run.checkpoint_file),
        "checkpoint_sha256": run.checkpoint_sha256,
        "epoch": run.epoch,
        "model": objective,
        "dataset": run.config.dataset,
        "split": run.config.split,
        "data_sha256": run.record["data_sha256"],
    }
    with progress_bar("image evaluation", total=len(steps) + 1, enabled=progress) as advance:
        extractor = feature_extractor(run, config.inception)
        comparison = _Comparison(extractor, validation.images, config.k)
        advance(status=extractor.name)
        features: dict[str, np.ndarray] = {}
        for key, generate in steps.items():
            result[key], features[key] = comparison.fid(generate())
            advance(status=key)
    result["sample_fid_gaussian_source"] = run.prior_name()
    result["precision"], result["recall"] = comparison.precision_recall(features["sample_fid_gaussian"])
    result["precision_gmm"], result["recall_gmm"] = comparison.precision_recall(features["sample_fid_gmm"])
    if objective == "gmm" and validation.labels is not None:
        prior = run.model.objective.prior
        clusters = prior.component_of(run.encode(validation.images).to(prior.means.device)).cpu()
        result["clustering_accuracy"] = clustering_accuracy(validation.labels, clusters.numpy())
    result.update(
        {
            "feature_extractor": extractor.name,
            "feature_extractor_accuracy": getattr(extractor, "validation_accuracy", None),
            "real_images": len(validation),
            "generated_images": count,
            "config": asdict(config),
            "seconds": round(time.perf_counter() - started, 2),
            "provenance": provenance(),
        }
    )
    atomic_write_json(run.run_dir / EVALUATION_FILE, result)
    return result


def _interpolation_midpoints(run: TrainedImageModel, images: np.ndarray, count: int, rng: np.random.Generator) -> torch.Tensor:
    """Decoded spherical mid-points between ``count`` random pairs of distinct images' codes."""
    first = rng.integers(len(images), size=count)
    second = (first + rng.integers(1, len(images), size=count)) % len(images)
    codes = run.encode(images)
    return run.generate(slerp(codes[first], codes[second], 0.5))


# -- the benchmark: several models on one data set --------------------------------------------

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

    A model whose evaluation.json matches its current checkpoint and options is not evaluated again.
    Returns ``{"rows": [...], "table_csv": path, "table_md": path, ...}``.
    """
    out_dir = Path(out_dir)
    base = ImageRunConfig.from_dict(dict(config.run or {}))
    models = _checked_models(config.models)
    ImageEvaluationConfig.from_options(config.evaluation)
    resolved = {model: ImageRunConfig.from_dict({**asdict(base), "model": model}).resolved() for model in models}
    total = sum(run.epochs + 1 for run in resolved.values())
    rows = []
    with progress_bar(f"benchmark {base.dataset}", total=total, enabled=progress) as advance:
        for model, run_config in resolved.items():
            run_dir = out_dir / model
            advance(0, status=f"{model}: training")
            done_before = _epochs_done(run_dir)
            summary = train_image_model(
                run_config, run_dir, resume=(run_dir / "last.pt").exists(), quiet=True,
                callbacks=[lambda epoch, row, model=model: advance(status=f"{model}: epoch {epoch}, val loss {row['val_loss']:.4g}")],
            )
            advance(min(done_before, run_config.epochs), status=f"{model}: evaluating")
            evaluation = _evaluation(run_dir, run_config.device, config.evaluation)
            advance(status=f"{model}: done")
            rows.append(_row(model, summary, evaluation))
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
        return int(json.loads((run_dir / "summary.json").read_text())["epochs_run"])
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
    return evaluate_image_run(run_dir, device, options, progress=False)


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
