"""`grammar-ae evaluate`: evaluate any run and store the result beside it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from grammar_ae.errors import ConfigError
from grammar_ae.evaluation.images import ImageEvaluationConfig, evaluate_image_run
from grammar_ae.evaluation.sequence import EvaluationConfig, evaluate_sequence_model
from grammar_ae.models.image.run import TrainedImageModel
from grammar_ae.models.loading import load_run
from grammar_ae.utils.files import atomic_write_json

EVALUATION_FILE = "evaluation.json"


def evaluate_run(run_path: str | Path, device: str = "auto", progress: bool = True, options: dict | None = None) -> dict:
    """Evaluate the run (a path or a shipped model's name) and write ``evaluation.json`` in its directory.

    ``options`` are those of the run's family: image runs use the ones named like the fields of
    ``ImageEvaluationConfig`` (``seed``, ``inception``, ...) and leave the sequence settings aside.
    """
    options = dict(options or {})
    run = load_run(run_path, device, progress=progress)
    if isinstance(run, TrainedImageModel):
        wanted = {f.name for f in fields(ImageEvaluationConfig)}
        result = evaluate_image_run(run, {k: v for k, v in options.items() if k in wanted}, progress=progress)
    else:
        if options.pop("inception", None) is not None:
            raise ConfigError("--inception applies to image runs only")
        result = evaluate_sequence_model(run, EvaluationConfig(**options), progress=progress)
    atomic_write_json(run.run_dir / EVALUATION_FILE, result)
    return result
