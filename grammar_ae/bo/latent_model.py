"""What Bayesian optimization needs from a trained model: encode strings, decode latents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from pathlib import Path

    from torch import Tensor

    from grammar_ae.grammar.cfg import Grammar


@runtime_checkable
class LatentModel(Protocol):
    """A trained autoencoder seen from the latent space (sequence runs implement it; the BO
    package knows models only through this protocol)."""

    grammar: Grammar
    grammar_name: str
    latent_dim: int
    checkpoint_sha256: str

    def training_strings(self) -> list[str]:
        """The strings the model was trained on (its whole data set)."""

    def encode_means(self, strings: Sequence[str]) -> Tensor:
        """(N, latent_dim) float32 CPU latent means, batched internally."""

    def can_encode(self, string: str) -> bool:
        """Whether ``encode_means`` reads ``string``: a valid string may not be one, e.g. a
        molecule RDKit cannot write in the model's Kekule form, or one too long."""

    def decode(self, z: Tensor) -> list[str | None]:
        """For each row of ``z``, its greedy (argmax) decode: deterministic; None where the
        derivation did not finish (grammatically invalid)."""

    def decode_samples(self, z: Tensor, samples_per_point: int, seed: int) -> list[list[str | None]]:
        """For each row of ``z``, ``samples_per_point`` stochastic decodes (Gumbel-max);
        None where the derivation did not finish (grammatically invalid)."""


@runtime_checkable
class RetrainableModel(LatentModel, Protocol):
    """A latent model that weighted retraining (``grammar_ae.bo.retraining``) can fine-tune."""

    def can_train_on(self, string: str) -> bool:
        """Whether the model can train on ``string`` (the decoder writes it; its encoder may read
        longer strings than that)."""

    def fine_tuned(
        self, strings: Sequence[str], learning_rate: float, batch_size: int, seed: int,
    ) -> tuple[RetrainableModel, float]:
        """A copy trained one pass over ``strings`` (reproducible given ``seed``) and the pass's
        mean loss; the model itself is unchanged. The copy's ``checkpoint_sha256`` identifies
        its weights."""

    def save_weights(self, path: Path) -> None:
        """Write the weights to ``path`` atomically."""

    def with_weights(self, path: Path) -> RetrainableModel:
        """A copy with the weights ``save_weights`` wrote to ``path``."""
