"""The trainer shared by every model: epochs, progress, metrics.csv, atomic checkpoints, resume, NaN guard;
the optimizer, schedule and callbacks its config and caller name."""

from grammar_ae.data.tensors import TensorBatchSource
from grammar_ae.training.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from grammar_ae.training.config import TrainerConfig
from grammar_ae.training.data import BatchSource, to_device
from grammar_ae.training.seeding import seed_everything
from grammar_ae.training.trainer import EpochCallback, TrainableModel, Trainer

__all__ = [
    "BatchSource",
    "EpochCallback",
    "TensorBatchSource",
    "TrainableModel",
    "Trainer",
    "TrainerConfig",
    "check_compatible",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
    "to_device",
]
