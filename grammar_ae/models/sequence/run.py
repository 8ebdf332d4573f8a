"""A sequence run loaded for use: encode strings, decode latents, sample.

It implements the ``LatentModel`` protocol of the BO loop (``grammar_ae.bo.latent_model``).
"""

from __future__ import annotations

import copy
import pickle
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from grammar_ae.data.datasets import load_prepared
from grammar_ae.errors import CheckpointError, DataError
from grammar_ae.models.run import TrainedRun
from grammar_ae.models.sequence.model import FAMILY, SequenceModelSpec, StringAutoEncoder
from grammar_ae.training.fine_tuning import fine_tune, weights_sha256
from grammar_ae.utils.files import atomic_path

SPLIT_FILE = "split.npz"


class TrainedSequenceModel(TrainedRun):
    """A sequence model with its grammar, data and run directory."""

    family = FAMILY

    def build_model(self, spec: dict) -> StringAutoEncoder:
        self.spec = SequenceModelSpec.from_dict(spec)
        model = self.spec.build()
        self.grammar = model.codec.grammar
        return model

    # -- the LatentModel protocol of the BO loop -------------------------------------------
    @property
    def grammar_name(self) -> str:
        return self.spec.grammar_name

    def training_strings(self) -> list[str]:
        return self._strings("train")

    def validation_strings(self) -> list[str]:
        return self._strings("validation")

    def encode_means(self, strings) -> Tensor:
        return self.model.encode_strings(list(strings))

    training_items = training_strings
    encode_items = encode_means

    def decode(self, z: Tensor, sample: bool = False, seed: int = 0) -> list[str | None]:
        generator = torch.Generator().manual_seed(seed)
        return self.model.decode_latents(z.float(), sample=sample, generator=generator)

    def decode_samples(self, z: Tensor, samples_per_point: int, seed: int) -> list[list[str | None]]:
        """``samples_per_point`` sampled decodes of each row of ``z``."""
        return self.model.decode_samples(z, samples_per_point, torch.Generator().manual_seed(seed))

    # -- weighted retraining (the BO's RetrainableModel) ------------------------------------
    def can_encode(self, string: str) -> bool:
        return self.model.can_encode(string)

    def can_train_on(self, string: str) -> bool:
        return self.model.can_train_on(string)

    def fine_tuned(
        self, strings: Sequence[str], learning_rate: float, batch_size: int, seed: int,
    ) -> tuple[TrainedSequenceModel, float]:
        """A copy of this model trained one pass over ``strings`` (batches of similar length,
        in a seeded random order) and the pass's mean loss; this model is unchanged."""
        network = copy.deepcopy(self.model)
        ordered = sorted(strings, key=len)
        chunks = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
        order = torch.randperm(len(chunks), generator=torch.Generator().manual_seed(seed)).tolist()
        batches = [network.training_batch(chunks[i]).to(self.device) for i in order]
        loss = fine_tune(network, batches, learning_rate, seed)
        return self._with_network(network), loss

    def save_weights(self, path: Path) -> None:
        """The network's weights to ``path`` (atomically)."""
        with atomic_path(path) as temporary:
            torch.save(self.model.state_dict(), temporary)

    def with_weights(self, path: Path) -> TrainedSequenceModel:
        """A copy of this model with the weights ``save_weights`` wrote to ``path``."""
        network = copy.deepcopy(self.model)
        try:
            network.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))
        except (OSError, RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as error:
            raise CheckpointError(f"{path}: not weights of this model ({error})") from None
        return self._with_network(network.eval())

    def _with_network(self, network: StringAutoEncoder) -> TrainedSequenceModel:
        """This run with another network of the same spec, identified by its weights' digest;
        nothing fitted to the old network is kept."""
        twin = copy.copy(self)
        twin.__dict__.pop("training_latents", None)
        twin.model, twin._samplers, twin.checkpoint_sha256 = network, {}, weights_sha256(network)
        return twin

    # -- data ---------------------------------------------------------------------------
    @cached_property
    def _data(self):
        data_file, data_name = self.record.get("data_file"), self.record.get("data")
        if data_name is None:
            raise CheckpointError(f"{self.checkpoint_file}: the run records no data set")
        if data_file and Path(data_file).is_file():
            data_name = data_file  # the file trained on, where it still is; else resolve the name again
        data = load_prepared(data_name, self.grammar, progress=self.progress, form=self.spec.form)
        if data.input_sha256 != self.record.get("data_sha256"):
            raise DataError(
                f"data {data_name}: checksum {data.input_sha256[:12]} differs from the one the model "
                f"was trained on ({str(self.record.get('data_sha256'))[:12]})"
            )
        return data

    def _strings(self, part: str) -> list[str]:
        split_file = self.run_dir / SPLIT_FILE
        try:
            with np.load(split_file) as split:
                items = split[part]
        except (OSError, KeyError, ValueError) as error:
            raise CheckpointError(f"{split_file}: missing or damaged ({error})") from None
        strings = self._data.strings
        return [strings[i] for i in items]

