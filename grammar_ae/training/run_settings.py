"""The settings every training run shares, how they become the trainer's config, and config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from grammar_ae.errors import ConfigError
from grammar_ae.training.config import RESUMABLE_SETTINGS, TrainerConfig
from grammar_ae.utils.config_files import check_types, config_from_dict
from grammar_ae.utils.device import cpu_has_native_bf16
from grammar_ae.utils.files import atomic_write_json

RUN_CONFIG_FILE = "config.json"
ADDED_SETTINGS = ("optimizer", "scheduler", "warmup_steps", "mixed_precision", "kekulize")
"""Run settings added after the first release (see ``RunSettings.identity``)."""


@dataclass(frozen=True)
class PlateauSchedule:
    """Reduce-on-plateau as a family's protocol sets it; the floor of the learning rate is
    ``min_learning_rate`` or ``min_fraction`` of the run's learning rate, whichever is higher,
    and never above the run's learning rate (a run may start below the family's floor)."""

    factor: float
    patience: int
    min_learning_rate: float = 0.0
    min_fraction: float = 0.0

    def floor(self, learning_rate: float) -> float:
        return min(learning_rate, max(self.min_learning_rate, learning_rate * self.min_fraction))


@dataclass
class RunSettings:
    """Settings every training run shares; a model family's subclass adds its data and model
    choices, its ``kind`` (the word its errors use) and its ``schedule``.

    ``grad_clip`` caps the gradient norm of every step; ``monitor`` is the validation term
    that schedules the learning rate and picks the best checkpoint (None: the objective's
    own choice, the whole loss for most). ``optimizer``, ``scheduler`` and ``warmup_steps``
    are the trainer's (``TrainerConfig``); ``checkpoint_every`` is in minutes;
    ``mixed_precision`` turns bf16 autocast on the CPU on or off (None: the model decides,
    and only a CPU with native bf16 gets it)."""

    kind: ClassVar[str] = "run"
    schedule: ClassVar[PlateauSchedule]
    limit: int | None = None
    validation_fraction: float = 0.1
    epochs: int | None = None
    learning_rate: float = 1e-3
    grad_clip: float | None = None
    monitor: str | None = None
    seed: int = 0
    device: str = "auto"
    objective: dict[str, Any] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    optimizer: str = "adam"
    scheduler: str = "plateau"
    warmup_steps: int = 0
    checkpoint_every: float = 10.0
    mixed_precision: bool | None = None

    def __post_init__(self) -> None:
        check_types(self, f"{self.kind} setting")
        ranges = {
            "limit": (self.limit is None or self.limit >= 2, "an integer >= 2 (items to use)"),
            "validation_fraction": (0 < self.validation_fraction < 1, "a number between 0 and 1"),
            "epochs": (self.epochs is None or self.epochs >= 1, "an integer >= 1"),
            "batch_size": (self.batch_size is None or self.batch_size >= 1, "an integer >= 1"),
            "learning_rate": (self.learning_rate > 0, "a number > 0"),
            "grad_clip": (self.grad_clip is None or self.grad_clip > 0, "a number > 0"),
            "monitor": (self.monitor is None or bool(self.monitor), "the name of a loss term"),
            "seed": (self.seed >= 0, "an integer >= 0"),
        }
        for name, (ok, expected) in ranges.items():
            if not ok:
                raise ConfigError(f"{self.kind} setting {name}={getattr(self, name)!r}: expected {expected}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        return config_from_dict(cls, values, f"{cls.kind} setting")

    @classmethod
    def from_record(cls, identity: dict[str, Any], trainer_config: dict[str, Any]):
        """The settings of a trained run: its stored ``identity`` plus the resumable settings
        its trainer config holds."""
        defaults = {f.name: f.default for f in fields(cls)}
        resumed = {name: trainer_config.get(name, defaults[name]) for name in RESUMABLE_SETTINGS if name in defaults}
        return cls(**identity, **resumed)

    def identity(self) -> dict[str, Any]:
        """What must stay the same when the run is resumed (all but ``RESUMABLE_SETTINGS``).

        Settings added since the first release are left out while they hold their defaults,
        so runs saved before them resume with the same identity."""
        defaults = {f.name: f.default for f in fields(self)}
        return {
            name: value
            for name, value in asdict(self).items()
            if name not in RESUMABLE_SETTINGS and not (name in ADDED_SETTINGS and value == defaults[name])
        }

    def trainer_config(self, monitor: str, cpu_autocast: bool = False) -> TrainerConfig:
        """The trainer's settings for this run (call on resolved settings); ``monitor`` is the
        objective's choice, used unless the run names one; ``cpu_autocast`` the model's choice
        of bf16 autocast on the CPU, used where the CPU has native bf16 unless the run sets
        ``mixed_precision``."""
        return TrainerConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            plateau_factor=self.schedule.factor,
            plateau_patience=self.schedule.patience,
            min_learning_rate=self.schedule.floor(self.learning_rate),
            seed=self.seed,
            device=self.device,
            grad_clip=self.grad_clip,
            monitor=self.monitor or monitor,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            warmup_steps=self.warmup_steps,
            checkpoint_every=self.checkpoint_every,
            cpu_autocast=(cpu_autocast and cpu_has_native_bf16()) if self.mixed_precision is None
            else self.mixed_precision,
        )


def save_run_settings(out_dir: str | Path, settings: RunSettings, record: dict[str, Any]) -> None:
    """``config.json`` of a run directory: the resolved settings and the run's record."""
    atomic_write_json(Path(out_dir) / RUN_CONFIG_FILE, {"config": asdict(settings), "record": record})
