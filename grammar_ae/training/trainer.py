"""The trainer shared by every model: epochs, progress, metrics, checkpoints, resume, NaN guard."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from grammar_ae.errors import CheckpointError, ConfigError, DataError, TrainingError
from grammar_ae.training.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from grammar_ae.training.config import TrainerConfig
from grammar_ae.training.data import BatchSource, batch_length, to_device
from grammar_ae.training.metrics import Snapshot, TermMeans
from grammar_ae.training.optimization import EpochSchedule, build_optimizer
from grammar_ae.training.outputs import plot_loss_curve, write_metrics_csv
from grammar_ae.training.seeding import capture_rng, restore_rng, seed_everything
from grammar_ae.utils.device import resolve_device
from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
METRICS_FILE = "metrics.csv"
CURVE_FILE = "loss_curve.png"
SUMMARY_FILE = "summary.json"
RUN_FILES = (LAST_CHECKPOINT, BEST_CHECKPOINT, METRICS_FILE, CURVE_FILE, SUMMARY_FILE)

SYNC_EVERY = 20
"""Training batches between read-backs of the running means (progress display and NaN guard)."""

EpochCallback = Callable[[int, dict], None]
"""Called after every epoch with its number and its metrics row (the line of metrics.csv)."""


class TrainableModel(Protocol):
    """What the trainer needs of a model besides being an ``nn.Module`` (every autoencoder of
    ``grammar_ae.models`` has it)."""

    def loss(self, batch: Any) -> dict[str, Tensor]:
        """The loss terms of one batch; ``loss`` is the one to minimise."""

    def before_training(self, batch_size: int) -> None:
        """Called once before the first epoch."""


class Trainer:
    """Fits ``model`` (a ``TrainableModel``) on ``train``, choosing checkpoints on ``validation``.

    Writes into ``out_dir``: last.pt (every epoch), best.pt (best so far by the validation
    term ``config.monitor``; its value is ``best_validation_loss``),
    metrics.csv, loss_curve.png and summary.json. ``model_spec`` (what rebuilds the model)
    and ``record`` (data checksum, grammar hash, ...) must be JSON-like; they are stored in
    every checkpoint and must match when a run is resumed. The optimizer and the
    learning-rate schedule are the ones ``config`` names; ``callbacks`` are called after
    every epoch.
    """

    def __init__(
        self,
        model: TrainableModel,
        train: BatchSource,
        validation: BatchSource,
        config: TrainerConfig,
        out_dir: str | Path,
        model_spec: dict,
        record: dict,
        *,
        quiet: bool = False,
        callbacks: Sequence[EpochCallback] = (),
    ):
        for name, source in (("training", train), ("validation", validation)):
            if len(source) == 0:
                raise DataError(f"the {name} set is empty")
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.train = train
        self.validation = validation
        self.out_dir = Path(out_dir)
        self.model_spec = _json_like(model_spec, "model_spec")
        self.record = _json_like(record, "record")
        self.quiet = quiet
        self.callbacks = list(callbacks)
        self.console = Console()
        self.optimizer = build_optimizer(model.parameters(), config)
        self.scheduler = EpochSchedule(self.optimizer, config)
        self.data_order = torch.Generator()
        self.history: list[dict] = []
        self.best_epoch: int | None = None
        self.best_validation_loss = math.inf

    def fit(self, resume: bool = False, overwrite: bool = False) -> dict:
        """Train up to ``config.epochs`` epochs and return the summary (also in summary.json).

        ``resume`` continues the run saved in ``out_dir/last.pt`` exactly where it stopped;
        ``overwrite`` replaces a run already in ``out_dir``.
        """
        if resume and overwrite:
            raise ConfigError("resume and overwrite exclude each other: resume continues the run in the output folder")
        seed_everything(self.config.seed)
        self.data_order.manual_seed(self.config.seed)
        self.model.before_training(self.config.batch_size)
        first_epoch = self._resume() if resume else self._start_fresh(overwrite)
        for epoch in range(first_epoch, self.config.epochs + 1):
            self._run_epoch(epoch)
        return self._write_summary()

    def _start_fresh(self, overwrite: bool) -> int:
        if (self.out_dir / LAST_CHECKPOINT).exists() and not overwrite:
            raise ConfigError(
                f"{self.out_dir} already holds a training run ({LAST_CHECKPOINT}): "
                "use --resume to continue it or choose another --out"
            )
        for name in RUN_FILES:
            (self.out_dir / name).unlink(missing_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return 1

    def _resume(self) -> int:
        path = self.out_dir / LAST_CHECKPOINT
        state = load_checkpoint(path, map_location="cpu")
        check_compatible(
            _run_identity(state["model_spec"], state["record"], TrainerConfig.from_dict(state["config"])),
            _run_identity(self.model_spec, self.record, self.config),
            source=f"checkpoint {path}",
        )
        try:
            self.model.load_state_dict(state["model_state"])
            self.optimizer.load_state_dict(state["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as error:
            detail = str(error).strip().splitlines()[0][:200]
            raise CheckpointError(f"checkpoint {path} does not fit this model ({detail})") from None
        self.scheduler.load_state_dict(state["scheduler_state"])
        self.history = state["history"]
        self.best_epoch = state["best_epoch"]
        self.best_validation_loss = state["best_validation_loss"]
        restore_rng(state["rng"], self.data_order)
        return state["epoch"] + 1

    def _run_epoch(self, epoch: int) -> None:
        started = time.perf_counter()
        learning_rate = self.optimizer.param_groups[0]["lr"]
        train_terms = self._train_epoch(epoch)
        validation_terms = self._validate(epoch)
        monitored = self._monitored(validation_terms, epoch)
        self.scheduler.step(monitored)
        row = {
            "epoch": epoch,
            "lr": learning_rate,
            "seconds": time.perf_counter() - started,
            **{f"train_{name}": value for name, value in train_terms.items()},
            **{f"val_{name}": value for name, value in validation_terms.items()},
        }
        self.history.append(row)
        improved = monitored < self.best_validation_loss
        if improved:
            self.best_epoch, self.best_validation_loss = epoch, monitored
        state = self._checkpoint_state(epoch)
        save_checkpoint(self.out_dir / LAST_CHECKPOINT, state)
        if improved:
            save_checkpoint(self.out_dir / BEST_CHECKPOINT, state)
        write_metrics_csv(self.out_dir / METRICS_FILE, self.history)
        plot_loss_curve(self.out_dir / CURVE_FILE, self.history)
        self._write_summary()
        if not self.quiet:
            self.console.print(
                f"epoch {epoch}/{self.config.epochs}  train {_format_terms(train_terms)}  "
                f"| val {_format_terms(validation_terms)}  lr {learning_rate:.3g}  "
                f"{row['seconds']:.1f} s{'  (best)' if improved else ''}"
            )
        for callback in self.callbacks:
            callback(epoch, row)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over full training batches (the shuffled remainder is left to later epochs)."""
        self.model.train()
        batch_size = self.config.batch_size
        batch_count = max(1, len(self.train) // batch_size)
        batches = islice(self.train.batches(batch_size, True, self.data_order), batch_count)
        means = TermMeans(self.device)
        with self._progress() as progress:
            task = progress.add_task(f"epoch {epoch}/{self.config.epochs}", total=batch_count, terms="")
            for index, batch in enumerate(batches, start=1):
                batch = to_device(batch, self.device)
                self.optimizer.zero_grad(set_to_none=True)
                with self._autocast():
                    terms = self.model.loss(batch)
                means.add(terms, batch_length(batch), index)
                terms["loss"].backward()
                if self.config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
                if index % SYNC_EVERY == 0:
                    snapshot = self._checked(means.snapshot(), epoch, "training")
                    progress.update(task, terms=_format_terms(snapshot.means))
                progress.advance(task)
        return self._checked(means.snapshot(), epoch, "training").means

    @torch.no_grad()
    def _validate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        means = TermMeans(self.device)
        batches = self.validation.batches(self.config.batch_size, False, self.data_order)
        for index, batch in enumerate(batches, start=1):
            batch = to_device(batch, self.device)
            with self._autocast():
                means.add(self.model.loss(batch), batch_length(batch), index)
        return self._checked(means.snapshot(), epoch, "validation").means

    def _monitored(self, validation_terms: dict[str, float], epoch: int) -> float:
        """The validation value that schedules the learning rate and picks the best checkpoint."""
        if self.config.monitor not in validation_terms:
            raise ConfigError(
                f"monitor {self.config.monitor!r} is not a loss term of this model; "
                f"its validation terms are {', '.join(validation_terms)} (epoch {epoch})"
            )
        return validation_terms[self.config.monitor]

    def _checked(self, snapshot: Snapshot, epoch: int, stage: str) -> Snapshot:
        """The snapshot, or TrainingError if a batch so far had a non-finite loss term."""
        if snapshot.first_bad_batch is None:
            return snapshot
        if self.history:
            kept = f"{LAST_CHECKPOINT} holds epoch {self.history[-1]['epoch']}, {BEST_CHECKPOINT} epoch {self.best_epoch}"
        else:
            kept = "no checkpoint was written"
        raise TrainingError(
            f"epoch {epoch}, {stage} batch {snapshot.first_bad_batch}: non-finite loss term(s) "
            f"{', '.join(snapshot.bad_terms)}; training stopped ({kept} in {self.out_dir})"
        )

    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        return {
            "model_spec": self.model_spec,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "epoch": epoch,
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "history": list(self.history),
            "rng": capture_rng(self.data_order),
            "config": self.config.to_dict(),
            "record": self.record,
            "provenance": _json_like(provenance(), "provenance"),
        }

    def _write_summary(self) -> dict:
        final = self.history[-1]
        summary = {
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "final": {
                "train": _terms_of(final, "train_"),
                "validation": _terms_of(final, "val_"),
            },
            "seconds_per_epoch": sum(row["seconds"] for row in self.history) / len(self.history),
            "device": str(self.device),
            "config": self.config.to_dict(),
            "model_spec": self.model_spec,
            "record": self.record,
            "provenance": provenance(),
        }
        atomic_write_json(self.out_dir / SUMMARY_FILE, summary)
        return summary

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[terms]}"),
            console=self.console,
            transient=True,
            disable=self.quiet,
        )

    def _autocast(self) -> AbstractContextManager:
        if self.device.type == "cuda" and self.config.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self.device.type == "cpu" and self.config.cpu_autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()


def _run_identity(model_spec: dict, record: dict, config: TrainerConfig) -> dict:
    """What must be the same in a run and its resumption."""
    return {"model_spec": model_spec, "record": record, "config": config.identity()}


def _json_like(value: dict, name: str) -> dict:
    """``value`` as it reads back from JSON, so stored and given copies compare equal."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name} must hold only dicts, lists, strings, finite numbers and None ({error})") from None


def _terms_of(row: dict, prefix: str) -> dict[str, float]:
    return {name[len(prefix) :]: value for name, value in row.items() if name.startswith(prefix)}


def _format_terms(terms: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.4g}" for name, value in terms.items())
