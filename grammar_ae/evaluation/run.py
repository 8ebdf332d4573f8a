"""`grammar-ae evaluate`: evaluate any run directory and store the result beside it."""

from __future__ import annotations

from pathlib import Path

from grammar_ae.evaluation.sequence import EvaluationConfig, evaluate_sequence_model
from grammar_ae.models.handle import load_latent_model
from grammar_ae.utils.files import atomic_write_json


def evaluate_run(run: Path, device: str = "auto", progress: bool = True, options: dict | None = None) -> dict:
    """Evaluate the run and write ``evaluation.json`` in its directory."""
    model = load_latent_model(run, device)
    result = evaluate_sequence_model(model, EvaluationConfig(**(options or {})), progress=progress)
    atomic_write_json(model.run_dir / "evaluation.json", result)
    return result
