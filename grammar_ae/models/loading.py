"""One loader for every run: ``load_run(path_or_name)`` finds the run (a path, else a shipped
model's name), reads its checkpoint once and returns the run handle of its model family."""

from __future__ import annotations

from pathlib import Path

from grammar_ae.errors import CheckpointError
from grammar_ae.models.image.run import TrainedImageModel
from grammar_ae.models.run import TrainedRun, checkpoint_path
from grammar_ae.models.sequence.run import TrainedSequenceModel
from grammar_ae.models.shipped import resolve_run
from grammar_ae.training.checkpoint import FAMILY_KEY, load_checkpoint

RUN_FAMILIES: dict[str, type[TrainedRun]] = {run.family: run for run in (TrainedSequenceModel, TrainedImageModel)}


def load_run(path_or_name: str | Path, device: str = "auto", family: str | None = None, progress: bool = False) -> TrainedRun:
    """The trained run at ``path_or_name`` (a run directory, a checkpoint file, or the name of a
    shipped model; an existing path wins) on ``device``. ``family`` ("sequence", "image"), when
    given, is the family the caller needs; a run of another family is a one-line error.
    ``progress``: the run shows its slow steps on stderr."""
    checkpoint_file = checkpoint_path(resolve_run(path_or_name))
    state = load_checkpoint(checkpoint_file)
    spec = state.get("model_spec")
    found = spec.get(FAMILY_KEY) if isinstance(spec, dict) else None
    if found not in RUN_FAMILIES:
        raise CheckpointError(
            f"{checkpoint_file}: model_spec.{FAMILY_KEY} is {found!r}; expected one of {', '.join(RUN_FAMILIES)}"
        )
    if family is not None and found != family:
        raise CheckpointError(f"{path_or_name} holds a model of the {found} family; this needs one of the {family} family")
    return RUN_FAMILIES[found](checkpoint_file, state, device, progress)


def load_latent_model(path_or_name: str | Path, device: str = "auto") -> TrainedSequenceModel:
    """The sequence model at ``path_or_name`` (a run directory or a shipped model's name, such as
    ``zinc`` or ``expressions``): strings to latents and back, samplers, the BO's ``LatentModel``."""
    return load_run(path_or_name, device, family=TrainedSequenceModel.family)
