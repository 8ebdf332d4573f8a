"""Shared loading of a trained run: checkpoint file, weights, device, checksum."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from grammar_ae.errors import CheckpointError
from grammar_ae.models.base import AutoEncoder
from grammar_ae.training import load_checkpoint
from grammar_ae.utils.device import resolve_device
from grammar_ae.utils.files import sha256_file

CHECKPOINT_NAMES = ("best.pt", "last.pt")


def checkpoint_path(path: str | Path) -> Path:
    """The checkpoint file of a run directory (best.pt, else last.pt) or the file itself."""
    path = Path(path)
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no checkpoint (best.pt or last.pt) in this directory")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    return path


class TrainedRun:
    """A run directory's model in eval mode; subclasses say how a spec becomes a model."""

    def __init__(self, path: str | Path, device: str = "auto"):
        self.checkpoint_file = checkpoint_path(path)
        self.run_dir = self.checkpoint_file.parent
        self.device = resolve_device(device)
        self.state = load_checkpoint(self.checkpoint_file)
        self.record = self.state.get("record", {})
        self.epoch = self.state.get("epoch")
        self.model = self.build_model(self.state["model_spec"])
        try:
            self.model.load_state_dict(self.state["model_state"])
        except (RuntimeError, KeyError) as error:
            raise CheckpointError(f"{self.checkpoint_file}: weights do not fit the model it describes ({error})") from None
        self.model.to(self.device).eval()

    def build_model(self, spec: dict) -> AutoEncoder:
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @cached_property
    def checkpoint_sha256(self) -> str:
        return sha256_file(self.checkpoint_file)
