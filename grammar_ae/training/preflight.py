"""Settings that only fail once training runs, checked before the first batch: the batch size
against the data and the network, and the monitored term against the model's loss terms."""

from __future__ import annotations

import torch
from torch import nn

from grammar_ae.errors import ConfigError
from grammar_ae.training.config import TrainerConfig
from grammar_ae.training.data import BatchSource
from grammar_ae.training.trainer import TrainableModel

BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def check_trainable(
    model: TrainableModel, train: BatchSource, validation: BatchSource, config: TrainerConfig, monitor: str | None
) -> None:
    """ConfigError for a batch larger than the training set, a batch of one with batch norm,
    or a ``monitor`` (the run's own choice, None: the objective's) that is not a loss term."""
    if len(train) < config.batch_size:
        raise ConfigError(
            f"batch_size {config.batch_size}: more than the {len(train)} training items; lower --batch-size"
        )
    if config.batch_size < 2 and any(isinstance(m, BATCH_NORM) for m in model.modules()):
        raise ConfigError("batch_size 1: the network has batch normalisation, which needs batches of 2 or more")
    if monitor is not None:
        terms = loss_terms(model, validation, config.batch_size)
        if monitor not in terms:
            raise ConfigError(f"monitor {monitor!r} is not a loss term of this model; its terms are {', '.join(terms)}")


@torch.no_grad()
def loss_terms(model: TrainableModel, source: BatchSource, batch_size: int) -> list[str]:
    """The names of the loss terms the model reports on one batch of ``source``, computed as
    in validation (eval mode, no gradients); the model's mode is restored after."""
    batch = next(iter(source.batches(batch_size, False, torch.Generator())))
    was_training = model.training
    model.eval()
    try:
        return list(model.loss(batch))
    finally:
        model.train(was_training)
