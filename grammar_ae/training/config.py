"""The trainer's settings, one typed dataclass saved with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from grammar_ae.errors import ConfigError


@dataclass
class TrainerConfig:
    """Optimisation settings shared by every model.

    ``plateau_factor`` is the learning-rate multiplier of reduce-on-plateau (0.2 in the
    grammar-model protocol, 0.5 for images). ``mixed_precision`` means bf16 autocast and
    applies on CUDA only. ``num_workers`` > 0 prepares up to that many batches ahead in a
    background thread (0: batches are prepared in the training loop). ``monitor`` names the
    validation term that drives reduce-on-plateau and picks the best checkpoint: ``loss``
    (the whole objective) or one of its terms, e.g. ``rec`` when the regulariser's terms are
    too noisy on validation batches to judge progress by.
    """

    epochs: int
    batch_size: int
    learning_rate: float = 1e-3
    plateau_factor: float = 0.2
    plateau_patience: int = 3
    min_learning_rate: float = 1e-4
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    grad_clip: float | None = None
    num_workers: int = 0
    monitor: str = "loss"

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "plateau_factor": 0 < self.plateau_factor < 1,
            "plateau_patience": self.plateau_patience >= 0,
            "min_learning_rate": 0 <= self.min_learning_rate <= self.learning_rate,
            "grad_clip": self.grad_clip is None or self.grad_clip > 0,
            "num_workers": self.num_workers >= 0,
            "monitor": bool(self.monitor),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(
                f"invalid trainer setting(s) {values}: need epochs, batch_size >= 1, learning_rate > 0, "
                "0 < plateau_factor < 1, plateau_patience >= 0, 0 <= min_learning_rate <= learning_rate, "
                "grad_clip > 0 or None, num_workers >= 0, a monitor term name"
            )

    def to_dict(self) -> dict:
        return asdict(self)
