"""The trainer's settings, one typed dataclass saved with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from grammar_ae.errors import CheckpointError, ConfigError
from grammar_ae.training.optimization import OPTIMIZERS, SCHEDULERS

RESUMABLE_SETTINGS = ("epochs", "device", "checkpoint_every", "learning_rate", "min_learning_rate")
"""Settings a resumed run may change (trainer and run settings alike); every other one must match.
A changed learning rate applies from the resumed epoch on (the schedule goes on from it)."""

RENAMED_SETTINGS = {"mixed_precision": "autocast"}
"""Old name -> new name, for configs saved before the rename."""

REMOVED_SETTINGS = ("num_workers",)
"""Settings configs saved by older versions may hold; they are ignored."""


@dataclass
class TrainerConfig:
    """Optimisation settings shared by every model.

    ``optimizer`` is one of ``adam`` (default), ``adamw``, ``sgd``; ``scheduler`` one of
    ``plateau`` (default: reduce-on-plateau), ``cosine``, ``constant`` (see
    ``grammar_ae.training.optimization``). ``plateau_factor`` is the learning-rate multiplier
    of reduce-on-plateau (0.2 in the grammar-model protocol, 0.5 for images);
    ``min_learning_rate`` is the floor of the plateau and cosine schedules. ``autocast``
    runs the forward passes under bf16 autocast on CUDA, ``cpu_autocast`` on the CPU (where
    bf16 matrix units make it several times faster; off unless a model asks for it). ``monitor``
    names the validation term that drives reduce-on-plateau and picks the best checkpoint:
    ``loss`` (the whole objective) or one of its terms, e.g. ``rec`` when the regulariser's
    terms are too noisy on validation batches to judge progress by. ``warmup_steps`` raises
    the learning rate linearly over the first optimizer steps; ``checkpoint_every`` (minutes)
    is how often an epoch in progress is saved to last.pt.
    """

    epochs: int
    batch_size: int
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "plateau"
    plateau_factor: float = 0.2
    plateau_patience: int = 3
    min_learning_rate: float = 1e-4
    seed: int = 0
    device: str = "auto"
    autocast: bool = True
    cpu_autocast: bool = False
    grad_clip: float | None = None
    monitor: str = "loss"
    warmup_steps: int = 0
    checkpoint_every: float = 10.0

    def __post_init__(self) -> None:
        for name, known in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)):
            if getattr(self, name) not in known:
                raise ConfigError(f"{name} {getattr(self, name)!r} is unknown; expected one of {', '.join(known)}")
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "weight_decay": self.weight_decay >= 0,
            "plateau_factor": 0 < self.plateau_factor < 1,
            "plateau_patience": self.plateau_patience >= 0,
            "min_learning_rate": 0 <= self.min_learning_rate <= self.learning_rate,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "monitor": bool(self.monitor),
            "warmup_steps": self.warmup_steps >= 0,
            "checkpoint_every": self.checkpoint_every > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(
                f"invalid trainer setting(s) {values}: need epochs, batch_size >= 1, learning_rate > 0, "
                "weight_decay >= 0, 0 < plateau_factor < 1, plateau_patience >= 0, "
                "0 <= min_learning_rate <= learning_rate, grad_clip > 0 or None, a monitor term name, "
                "warmup_steps >= 0, checkpoint_every > 0 (minutes)"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {name: value for name, value in self.to_dict().items() if name not in RESUMABLE_SETTINGS}

    @classmethod
    def from_dict(cls, stored: dict) -> TrainerConfig:
        """A config as saved by any version: renamed settings take their new names, removed
        ones are dropped, settings added since take their defaults."""
        values = {RENAMED_SETTINGS.get(name, name): value for name, value in stored.items() if name not in REMOVED_SETTINGS}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise CheckpointError(f"trainer settings {', '.join(unknown)} are unknown to this grammar-ae version")
        return cls(**values)
