"""A run directory before and during training: the checks made before anything is written
to it, and what a failed write leaves there.

A pipeline calls ``stored_run`` first (the flags against what the directory holds), builds its
model and record, calls ``check_resumable`` when it resumes, and only then writes; it trains
inside ``kept_on_write_failure`` so that a full disk names the checkpoint that survived.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from grammar_ae.errors import CheckpointError, ConfigError, OutputError
from grammar_ae.training.checkpoint import LAST_CHECKPOINT, check_compatible, load_checkpoint
from grammar_ae.training.config import RESUMABLE_SETTINGS, TrainerConfig


def stored_run(out_dir: str | Path, resume: bool, overwrite: bool) -> dict | None:
    """The last checkpoint of the run to resume (None for a fresh run), after refusing flags
    that do not fit what ``out_dir`` holds."""
    path = Path(out_dir) / LAST_CHECKPOINT
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: resume continues the run in the output folder")
    if resume:
        return load_checkpoint(path)
    if path.exists() and not overwrite:
        raise ConfigError(
            f"{out_dir} already holds a training run ({LAST_CHECKPOINT}): pass --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    return None


def run_identity(model_spec: dict, record: dict, config: TrainerConfig) -> dict[str, Any]:
    """What must be the same in a run and its resumption (as it reads back from JSON); the run
    settings in the record leave out those a resumed run may change (a record written before a
    setting became resumable may hold it)."""
    settings = record.get("config")
    if isinstance(settings, dict):
        record = {**record, "config": {k: v for k, v in settings.items() if k not in RESUMABLE_SETTINGS}}
    return json.loads(json.dumps({"model_spec": model_spec, "record": record, "config": config.identity()}))


def check_resumable(state: dict, model_spec: dict, record: dict, config: TrainerConfig, out_dir: str | Path) -> None:
    """CheckpointError naming the first setting in which this run differs from the stored one."""
    stored = run_identity(state["model_spec"], state["record"], TrainerConfig.from_dict(state["config"]))
    check_compatible(stored, run_identity(model_spec, record, config), source=f"checkpoint {Path(out_dir) / LAST_CHECKPOINT}")


@contextmanager
def kept_on_write_failure(out_dir: str | Path) -> Iterator[None]:
    """Turn a failed write (full disk, removed directory) into OutputError saying which
    checkpoint survived it (atomic writes keep the last complete one)."""
    try:
        yield
    except OSError as error:
        raise OutputError(
            f"writing to {out_dir} failed ({error.strerror or error}); {_kept(Path(out_dir))}"
        ) from None


def _kept(out_dir: Path) -> str:
    try:
        epoch = load_checkpoint(out_dir / LAST_CHECKPOINT)["epoch"]
    except (CheckpointError, KeyError):
        return "no complete checkpoint was written"
    return f"{LAST_CHECKPOINT} still holds epoch {epoch}: make room, then continue with --resume"
