"""What Bayesian optimization needs from a trained model: encode strings, decode latents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
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

    def decode(self, z: Tensor) -> list[str | None]:
        """For each row of ``z``, its greedy (argmax) decode: deterministic; None where the
        derivation did not finish (grammatically invalid)."""

    def decode_samples(self, z: Tensor, samples_per_point: int, seed: int) -> list[list[str | None]]:
        """For each row of ``z``, ``samples_per_point`` stochastic decodes (Gumbel-max);
        None where the derivation did not finish (grammatically invalid)."""
