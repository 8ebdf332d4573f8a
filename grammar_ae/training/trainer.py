"""The trainer shared by every model: epochs, progress, metrics, checkpoints, resume, NaN guard."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from grammar_ae.errors import CheckpointError, ConfigError, DataError, TrainingError, TrainingInterrupted
from grammar_ae.training.checkpoint import BEST_CHECKPOINT, LAST_CHECKPOINT, load_checkpoint, save_checkpoint
from grammar_ae.training.config import TrainerConfig
from grammar_ae.training.data import BatchSource, batch_length, to_device
from grammar_ae.training.distributed import join_process_group
from grammar_ae.training.run_directory import check_resumable
from grammar_ae.training.metrics import Snapshot, TermMeans
from grammar_ae.training.optimization import EpochSchedule, build_optimizer
from grammar_ae.training.outputs import plot_loss_curve, write_metrics_csv
from grammar_ae.training.seeding import capture_rng, restore_rng, seed_everything
from grammar_ae.utils import distributed
from grammar_ae.utils.device import resolve_device
from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

METRICS_FILE = "metrics.csv"
CURVE_FILE = "loss_curve.png"
SUMMARY_FILE = "summary.json"
RUN_FILES = (LAST_CHECKPOINT, BEST_CHECKPOINT, METRICS_FILE, CURVE_FILE, SUMMARY_FILE)

SYNC_EVERY = 20
"""Training batches between read-backs of the running means (progress display and NaN guard)."""

PLAIN_EVERY = 30.0
"""Seconds between plain progress lines when the output is not a terminal."""

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

    Writes into ``out_dir``: last.pt (every epoch, and mid-epoch every
    ``config.checkpoint_every`` minutes or when interrupted), best.pt (best so far by the
    validation term ``config.monitor``; its value is ``best_validation_loss``), metrics.csv,
    loss_curve.png and summary.json, in that order, each atomically: summary.json describes
    checkpoints that are on disk. ``model_spec`` (what rebuilds the model) and ``record``
    (data checksum, grammar hash, ...) must be JSON-like; they are stored in every checkpoint
    and must match when a run is resumed. The optimizer and the learning-rate schedule are
    the ones ``config`` names (with a linear warm-up over ``config.warmup_steps`` steps);
    ``callbacks`` are called after every epoch.

    Under ``torchrun`` (more than one process) the model is wrapped in
    ``DistributedDataParallel``, every process trains on its slice of each global batch of
    ``config.batch_size``, validation and the running means are summed over processes, and
    only rank 0 writes files or shows progress. SIGINT and SIGTERM stop training at the next
    batch boundary with a resumable checkpoint (``TrainingInterrupted``).
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
        self.group = join_process_group(self.device.type)
        if self.group.enabled and config.batch_size % self.group.world_size:
            raise ConfigError(
                f"batch size {config.batch_size} is not a multiple of the {self.group.world_size} processes; "
                "the batch size is the global batch, split evenly between them"
            )
        if self.group.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.group.local_rank)
            torch.cuda.set_device(self.device)
        self.model = model.to(self.device)
        self.train = train
        self.validation = validation
        self.out_dir = Path(out_dir)
        self.model_spec = _json_like(model_spec, "model_spec")
        self.record = _json_like(record, "record")
        self.quiet = quiet or not self.group.is_main
        self.callbacks = list(callbacks)
        self.console = Console()
        self.optimizer = build_optimizer(model.parameters(), config)
        self.scheduler = EpochSchedule(self.optimizer, config)
        self.data_order = torch.Generator()
        self.history: list[dict] = []
        self.best_epoch: int | None = None
        self.best_validation_loss = math.inf
        self.step = 0  # optimizer steps so far (the warm-up follows it)
        self._stop = StopRequest()

    def fit(self, resume: bool = False, overwrite: bool = False) -> dict:
        """Train up to ``config.epochs`` epochs and return the summary (also in summary.json).

        ``resume`` continues the run saved in ``out_dir/last.pt`` exactly where it stopped
        (mid-epoch included); ``overwrite`` replaces a run already in ``out_dir``.
        """
        if resume and overwrite:
            raise ConfigError("resume and overwrite exclude each other: resume continues the run in the output folder")
        seed_everything(self.config.seed)
        self.data_order.manual_seed(self.config.seed)
        self.model.before_training(self.config.batch_size)
        position = self._resume() if resume else self._start_fresh(overwrite)
        training = self._parallel_model()
        with self._stop.watching(), self.group.failures_as_errors():
            for epoch in range(position.epoch, self.config.epochs + 1):
                self._run_epoch(epoch, training, position if epoch == position.epoch else None)
        return self._write_summary()

    def _parallel_model(self) -> torch.nn.Module:
        """What the training steps call: the model, wrapped for data-parallel training."""
        if not self.group.enabled:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=device_ids)

    def _start_fresh(self, overwrite: bool) -> EpochPosition:
        if (self.out_dir / LAST_CHECKPOINT).exists() and not overwrite:
            raise ConfigError(
                f"{self.out_dir} already holds a training run ({LAST_CHECKPOINT}): "
                "use --resume to continue it, --overwrite to replace it, or choose another --out"
            )
        self.group.barrier()  # every process has looked before rank 0 clears the directory
        if self.group.is_main:
            for name in RUN_FILES:
                (self.out_dir / name).unlink(missing_ok=True)
            self.out_dir.mkdir(parents=True, exist_ok=True)
        return EpochPosition(epoch=1, epoch_rng=self.data_order.get_state())

    def _resume(self) -> EpochPosition:
        path = self.out_dir / LAST_CHECKPOINT
        state = load_checkpoint(path, map_location="cpu")
        check_resumable(state, self.model_spec, self.record, self.config, self.out_dir)
        try:
            self.model.load_state_dict(state["model_state"])
            self.optimizer.load_state_dict(state["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as error:
            detail = str(error).strip().splitlines()[0][:200]
            raise CheckpointError(f"checkpoint {path} does not fit this model ({detail})") from None
        self.scheduler.load_state_dict(state["scheduler_state"])
        stored = TrainerConfig.from_dict(state["config"])
        if (stored.learning_rate, stored.min_learning_rate) != (self.config.learning_rate, self.config.min_learning_rate):
            self.scheduler.restart(self.config.learning_rate, self.config.min_learning_rate)
        self.history = state["history"]
        self.best_epoch = state["best_epoch"]
        self.best_validation_loss = state["best_validation_loss"]
        self.step = state.get("step", 0)
        restore_rng(state["rng"], self.data_order)
        if self.group.is_main:
            self._reconcile_best(state)
        position = state.get("position")
        if position is None:  # saved at the end of an epoch
            return EpochPosition(epoch=state["epoch"] + 1, epoch_rng=self.data_order.get_state())
        return EpochPosition(
            epoch=position["epoch"],
            epoch_rng=position["epoch_rng"],
            batches_done=position["batches_done"],
            train_means=position["train_means"],
            seconds=position["seconds"],
            cpu_seconds=position.get("cpu_seconds", 0.0),
        )

    def _reconcile_best(self, state: dict) -> None:
        """A run stopped between writing last.pt and best.pt has the best epoch in last.pt only."""
        if state.get("position") is None and state["best_epoch"] == state["epoch"]:
            best = self.out_dir / BEST_CHECKPOINT
            if not best.is_file() or load_checkpoint(best).get("epoch") != state["epoch"]:
                save_checkpoint(best, state)

    def _run_epoch(self, epoch: int, training: torch.nn.Module, position: EpochPosition | None) -> None:
        started = time.perf_counter() - (position.seconds if position else 0.0)
        # the CPU time of an interrupted epoch's first part is the sum over its processes: rank 0 carries it
        cpu_started = time.process_time() - (position.cpu_seconds if position and self.group.is_main else 0.0)
        learning_rate = self.optimizer.param_groups[0]["lr"]
        position = position or EpochPosition(epoch, self.data_order.get_state())
        train_terms = self._train_epoch(epoch, training, position, started, cpu_started)
        validation_terms = self._validate(epoch)
        monitored = self._monitored(validation_terms, epoch)
        self.scheduler.step(monitored)
        cpu_seconds = distributed.sum_over_processes(torch.tensor([time.process_time() - cpu_started], dtype=torch.float64))
        row = {
            "epoch": epoch,
            "lr": learning_rate,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": float(cpu_seconds[0]),
            **{f"train_{name}": value for name, value in train_terms.items()},
            **{f"val_{name}": value for name, value in validation_terms.items()},
        }
        self.history.append(row)
        improved = monitored < self.best_validation_loss
        if improved:
            self.best_epoch, self.best_validation_loss = epoch, monitored
        if self.group.is_main:
            state = self._checkpoint_state(epoch)
            self._save(LAST_CHECKPOINT, state)
            if improved:
                self._save(BEST_CHECKPOINT, state)
            write_metrics_csv(self.out_dir / METRICS_FILE, self.history)
            plot_loss_curve(self.out_dir / CURVE_FILE, self.history)
            self._write_summary()
        self.group.barrier()
        if not self.quiet:
            self.console.print(
                f"epoch {epoch}/{self.config.epochs}  train {_format_terms(train_terms)}  "
                f"| val {_format_terms(validation_terms)}  lr {learning_rate:.3g}  "
                f"{row['seconds']:.1f} s{'  (best)' if improved else ''}",
                highlight=False,
                soft_wrap=True,
            )
        for callback in self.callbacks:
            callback(epoch, row)

    def _train_epoch(
        self, epoch: int, training: torch.nn.Module, position: EpochPosition, started: float, cpu_started: float
    ) -> dict[str, float]:
        """One pass over full training batches (the shuffled remainder is left to later epochs),
        from ``position.batches_done`` on when the epoch was interrupted before."""
        self.model.train()
        batch_size = self.config.batch_size
        batch_count = max(1, len(self.train) // batch_size)
        self.data_order.set_state(position.epoch_rng)
        batches = islice(self.train.batches(batch_size, True, self.data_order), batch_count)
        means = TermMeans(self.device)
        if position.train_means is not None:
            means.load_state_dict(position.train_means)
        last_save = time.monotonic()
        with self._progress(f"epoch {epoch}/{self.config.epochs}", batch_count) as progress:
            progress.advance(position.batches_done)
            for index, batch in enumerate(batches, start=1):
                if index <= position.batches_done:
                    continue  # done before the interruption: the order is drawn again, the work is not
                batch = to_device(self.group.shard(batch), self.device)
                self._set_warmup_rate()
                self.optimizer.zero_grad(set_to_none=True)
                with self._autocast():
                    terms = training(batch)
                means.add(terms, batch_length(batch), index)
                terms["loss"].backward()
                if self.config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
                self.step += 1
                if index % SYNC_EVERY == 0:
                    snapshot = self._checked(means.snapshot(self.group), epoch, "training")
                    progress.show(index, snapshot.means)
                else:
                    progress.show(index)
                due = time.monotonic() - last_save >= 60 * self.config.checkpoint_every
                stop, due = self._agree(self._stop.requested is not None, due)
                if (stop or due) and index < batch_count:
                    spent = (time.perf_counter() - started, time.process_time() - cpu_started)
                    self._save_mid_epoch(epoch, position.epoch_rng, index, means, *spent)
                    last_save = time.monotonic()
                if stop:
                    raise self._interrupted(epoch, index, batch_count)
        self._restore_epoch_rate()
        return self._checked(means.snapshot(self.group), epoch, "training").means

    def _agree(self, stop: bool, due: bool) -> tuple[bool, bool]:
        """Whether any process was asked to stop, and whether rank 0's clock says a checkpoint is due."""
        if not self.group.enabled:
            return stop, due
        return self.group.any(stop), self.group.any(due and self.group.is_main)

    def _interrupted(self, epoch: int, index: int, batch_count: int) -> TrainingInterrupted:
        signal_number = self._stop.requested or signal.SIGINT
        message = (
            f"interrupted by {signal.Signals(signal_number).name} in epoch {epoch} after batch {index}/{batch_count}; "
            f"saved in {self.out_dir / LAST_CHECKPOINT}: run the same command with --resume to continue"
        )
        return TrainingInterrupted(message, exit_code=128 + signal_number)

    def _set_warmup_rate(self) -> None:
        """During the warm-up, the epoch's rate times (step + 1) / warmup_steps."""
        if self.step < self.config.warmup_steps:
            self._epoch_rates = getattr(self, "_epoch_rates", None) or [g["lr"] for g in self.optimizer.param_groups]
            for group, rate in zip(self.optimizer.param_groups, self._epoch_rates):
                group["lr"] = rate * (self.step + 1) / self.config.warmup_steps
        else:
            self._restore_epoch_rate()

    def _restore_epoch_rate(self) -> None:
        rates = getattr(self, "_epoch_rates", None)
        if rates:
            for group, rate in zip(self.optimizer.param_groups, rates):
                group["lr"] = rate
            self._epoch_rates = None

    @torch.no_grad()
    def _validate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        means = TermMeans(self.device)
        batches = self.validation.batches(self.config.batch_size, False, self.data_order)
        for index, batch in enumerate(batches, start=1):
            batch = self.group.shard(batch)
            if batch_length(batch) == 0:
                continue
            batch = to_device(batch, self.device)
            with self._autocast():
                means.add(self.model.loss(batch), batch_length(batch), index)
        return self._checked(means.snapshot(self.group), epoch, "validation").means

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

    def _save_mid_epoch(
        self, epoch: int, epoch_rng: Tensor, batches_done: int, means: TermMeans, seconds: float, cpu_seconds: float
    ) -> None:
        cpu_seconds = float(distributed.sum_over_processes(torch.tensor([cpu_seconds], dtype=torch.float64))[0])
        if not self.group.is_main:
            return
        self._restore_epoch_rate()  # the optimizer is saved with the schedule's rate, not the warm-up's
        state = self._checkpoint_state(epoch - 1)
        state["position"] = {
            "epoch": epoch,
            "epoch_rng": epoch_rng,
            "batches_done": batches_done,
            "train_means": means.state_dict(),
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
        }
        self._save(LAST_CHECKPOINT, state)

    def _save(self, name: str, state: dict) -> None:
        save_checkpoint(self.out_dir / name, state)

    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        return {
            "model_spec": self.model_spec,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "epoch": epoch,
            "position": None,
            "step": self.step,
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "history": list(self.history),
            "rng": capture_rng(self.data_order),
            "config": self.config.to_dict(),
            "record": self.record,
            "world_size": self.group.world_size,
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
            "world_size": self.group.world_size,
            "config": self.config.to_dict(),
            "model_spec": self.model_spec,
            "record": self.record,
            "provenance": provenance(),
        }
        if self.group.is_main:
            atomic_write_json(self.out_dir / SUMMARY_FILE, summary)
        return summary

    def _progress(self, description: str, total: int) -> EpochProgress:
        return EpochProgress(self.console, description, total, enabled=not self.quiet)

    def _autocast(self) -> AbstractContextManager:
        if self.device.type == "cuda" and self.config.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self.device.type == "cpu" and self.config.cpu_autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()


@dataclass
class EpochPosition:
    """Where training (re)starts: an epoch, the data-order state at its start, and for an
    interrupted epoch the batches already done, their running means and the time spent
    (wall-clock and CPU seconds, this process's; the CPU time of every process is summed
    into metrics.csv at the end of the epoch)."""

    epoch: int
    epoch_rng: Tensor
    batches_done: int = 0
    train_means: dict | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0


class StopRequest:
    """SIGINT / SIGTERM while training: remembered, acted on at the next batch boundary."""

    def __init__(self) -> None:
        self.requested: int | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be installed from the main thread
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def request(signal_number: int, frame: Any) -> None:
            self.requested = signal_number

        for sig in previous:
            signal.signal(sig, request)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class EpochProgress:
    """A progress bar on a terminal; elsewhere (a pipe, a log file) a plain line every
    ``PLAIN_EVERY`` seconds with the batch count, the running means and the time left."""

    def __init__(self, console: Console, description: str, total: int, enabled: bool):
        self.console, self.description, self.total, self.enabled = console, description, total, enabled
        self.terminal = console.is_terminal
        self.started = time.monotonic()
        self.last_line = self.started
        self.done_before = 0
        self.means: dict[str, float] = {}
        self.bar: Progress | None = None

    def __enter__(self) -> EpochProgress:
        if self.enabled and self.terminal:
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[terms]}"), console=self.console, transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=self.total, terms="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def advance(self, batches: int) -> None:
        """Batches done before this process started (a resumed epoch)."""
        self.done_before = batches
        if self.bar is not None:
            self.bar.update(self.task, completed=batches)

    def show(self, index: int, means: dict[str, float] | None = None) -> None:
        if not self.enabled:
            return
        self.means = means or self.means
        if self.bar is not None:
            self.bar.update(self.task, completed=index, **({"terms": _format_terms(means)} if means else {}))
            return
        now = time.monotonic()
        if now - self.last_line < PLAIN_EVERY:
            return
        self.last_line = now
        rate = (index - self.done_before) / max(now - self.started, 1e-9)
        left = (self.total - index) / rate if rate > 0 else float("nan")
        terms = f"  {_format_terms(self.means)}" if self.means else ""
        self.console.print(
            f"{self.description}: batch {index}/{self.total}, {_minutes(left)} left{terms}", highlight=False, soft_wrap=True
        )


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


def _minutes(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "? min"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
