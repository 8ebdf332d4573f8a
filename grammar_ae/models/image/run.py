"""An image run loaded for use: encode, decode, reconstruct and sample images."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from grammar_ae.errors import CheckpointError, DataError
from grammar_ae.models.image.config import ImageRunConfig
from grammar_ae.models.image.data import RunData, load_run_data
from grammar_ae.models.image.model import FAMILY, ImageAutoEncoder, ImageModelSpec
from grammar_ae.models.run import TrainedRun
from grammar_ae.objectives import EncoderOutput

ENCODE_BATCH = 500


class TrainedImageModel(TrainedRun):
    """An image run (best.pt, else last.pt) with its settings and, when asked for, its images."""

    family = FAMILY

    def __init__(self, checkpoint_file: Path, state: dict, device: str = "auto", progress: bool = False):
        super().__init__(checkpoint_file, state, device, progress)
        try:
            self.config = ImageRunConfig.from_record(self.record["config"], state["config"])
        except (KeyError, TypeError) as error:
            raise CheckpointError(f"{checkpoint_file}: its record holds no image run settings ({error})") from None

    def build_model(self, spec: dict) -> ImageAutoEncoder:
        self.spec = ImageModelSpec.from_dict(spec)
        return self.spec.build()

    @cached_property
    def data(self) -> RunData:
        """The run's images, checked against the checksum recorded at training time."""
        return self._checked(load_run_data(self.config))

    def attach_data(self, data: RunData) -> None:
        """Use ``data`` (the images just trained on) instead of loading the data set again."""
        self.__dict__["data"] = self._checked(data)

    def _checked(self, data: RunData) -> RunData:
        if data.checksum != self.record["data_sha256"]:
            raise DataError(
                f"{self.config.dataset} ({self.config.split}): the images found have checksum {data.checksum[:12]}, "
                f"the run was trained on {self.record['data_sha256'][:12]}"
            )
        return data

    def training_items(self) -> np.ndarray:
        return self.data.train.images

    def encode(self, images: np.ndarray | Tensor) -> Tensor:
        """Latent means (N, d) on the CPU of uint8 images (N, C, H, W)."""
        return self.encode_distribution(images).mu

    encode_items = encode

    @torch.no_grad()
    def encode_distribution(self, images: np.ndarray | Tensor) -> EncoderOutput:
        """The encoder's output (means and, for stochastic encoders, log-variances) on the CPU."""
        images = torch.as_tensor(images)
        parts = [self.model.encode(self.model.inputs(chunk.to(self.device))) for chunk in images.split(ENCODE_BATCH)]
        logvar = None if parts[0].logvar is None else torch.cat([part.logvar.float().cpu() for part in parts])
        return EncoderOutput(torch.cat([part.mu.float().cpu() for part in parts]), logvar)

    def decode(self, z: Tensor) -> Tensor:
        """Decoded images (N, C, H, W) as float [0, 1] values on the CPU."""
        return self._chunked(self.model.decode, z).float()

    def generate(self, z: Tensor) -> Tensor:
        """Decoded uint8 images (N, C, H, W) on the CPU."""
        return self._chunked(self.model.generate, z)

    @torch.no_grad()
    def _chunked(self, decode: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
        return torch.cat([decode(chunk.float().to(self.device)).cpu() for chunk in z.split(ENCODE_BATCH)])

    def reconstruct(self, images: np.ndarray | Tensor) -> Tensor:
        return self.generate(self.encode(images))

    def samples(self, kind: str, n: int, seed: int = 0, fit: dict[str, Any] | None = None) -> Tensor:
        """``n`` decoded uint8 images from the sampler ``kind`` (``fit``: its fitter's options); deterministic given ``seed``."""
        z = self.sampler(kind, **(fit or {})).sample(n, torch.Generator().manual_seed(seed))
        return self.generate(z.cpu())
