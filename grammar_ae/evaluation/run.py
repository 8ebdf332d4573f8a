"""`grammar-ae evaluate`: evaluate any run directory and store the result beside it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from grammar_ae.errors import ConfigError
from grammar_ae.models.run import checkpoint_path
from grammar_ae.training import load_checkpoint
from grammar_ae.utils.files import atomic_write_json


def is_image_run(run: Path) -> bool:
    """True when the run's checkpoint holds an image model (its model_spec has kind "image")."""
    return load_checkpoint(checkpoint_path(run))["model_spec"].get("kind") == "image"


def evaluate_run(run: Path, device: str = "auto", progress: bool = True, options: dict | None = None) -> dict:
    """Evaluate the run and write ``evaluation.json`` in its directory.

    ``options`` are those of the run's kind: image runs use the ones named like the fields of
    ``ImageEvaluationConfig`` (``seed``, ``inception``, ...) and leave the sequence settings aside.
    """
    options = dict(options or {})
    if is_image_run(run):
        from grammar_ae.evaluation.images import ImageEvaluationConfig, evaluate_image_run

        wanted = {f.name for f in fields(ImageEvaluationConfig)}
        return evaluate_image_run(run, device, {k: v for k, v in options.items() if k in wanted}, progress=progress)
    if options.pop("inception", None) is not None:
        raise ConfigError("--inception applies to image runs only")
    from grammar_ae.evaluation.sequence import EvaluationConfig, evaluate_sequence_model
    from grammar_ae.models.sequence.run import load_latent_model

    model = load_latent_model(run, device)
    result = evaluate_sequence_model(model, EvaluationConfig(**options), progress=progress)
    atomic_write_json(model.run_dir / "evaluation.json", result)
    return result
