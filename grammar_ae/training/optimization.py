"""The optimizer and the learning-rate schedule a trainer config names.

Optimizers: ``adam`` (the default, as in every published protocol here), ``adamw``, ``sgd``.
Schedules, stepped once per epoch: ``plateau`` (the default: reduce-on-plateau by the
monitored validation value), ``cosine`` (cosine annealing over the run's epochs down to
the floor) and ``constant``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, ReduceLROnPlateau

if TYPE_CHECKING:
    from grammar_ae.training.config import TrainerConfig

OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


def _plateau(optimizer: Optimizer, config: TrainerConfig) -> ReduceLROnPlateau:
    return ReduceLROnPlateau(
        optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience,
        min_lr=config.min_learning_rate,
    )


def _cosine(optimizer: Optimizer, config: TrainerConfig) -> CosineAnnealingLR:
    return CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.min_learning_rate)


def _constant(optimizer: Optimizer, config: TrainerConfig) -> LambdaLR:
    return LambdaLR(optimizer, lambda epoch: 1.0)


SCHEDULERS: dict[str, Callable[[Optimizer, Any], ReduceLROnPlateau | LRScheduler]] = {
    "plateau": _plateau,
    "cosine": _cosine,
    "constant": _constant,
}


def build_optimizer(parameters, config: TrainerConfig) -> Optimizer:
    """The optimizer ``config.optimizer`` over ``parameters``."""
    return OPTIMIZERS[config.optimizer](parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


class EpochSchedule:
    """The learning-rate schedule ``config.scheduler``, stepped once per epoch."""

    def __init__(self, optimizer: Optimizer, config: TrainerConfig):
        self.scheduler = SCHEDULERS[config.scheduler](optimizer, config)

    def step(self, monitored: float) -> None:
        """End of an epoch; ``monitored`` is the validation value reduce-on-plateau judges by."""
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(monitored)
        else:
            self.scheduler.step()

    def restart(self, learning_rate: float, min_learning_rate: float) -> None:
        """Go on from a new learning rate and floor (a resumed run that changed them)."""
        for group in self.scheduler.optimizer.param_groups:
            group["lr"] = learning_rate
            group["initial_lr"] = learning_rate
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.min_lrs = [min_learning_rate] * len(self.scheduler.min_lrs)
            self.scheduler.num_bad_epochs = 0
        else:
            self.scheduler.base_lrs = [learning_rate] * len(self.scheduler.base_lrs)
            if isinstance(self.scheduler, CosineAnnealingLR):
                self.scheduler.eta_min = min_learning_rate

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)
