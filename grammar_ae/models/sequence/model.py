"""Sequence autoencoders over production sequences (grammar models) or characters.

The spec (stored in every checkpoint as a JSON-like dict) holds all that is needed to
rebuild the model: the grammar's text and hash, the representation, the network sizes
and the objective's configuration.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from grammar_ae.chemistry import form_of
from grammar_ae.errors import CheckpointError, GrammarAEError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.models.base import AutoEncoder
from grammar_ae.models.sequence.codec import CharacterCodec, GrammarCodec, SequenceCodec
from grammar_ae.models.sequence.networks import SequenceDecoder, SequenceEncoder, SequenceNetworkConfig
from grammar_ae.objectives import EncoderOutput, Objective, ReconstructionTerms, build_objective
from grammar_ae.training.checkpoint import FAMILY_KEY

FAMILY = "sequence"
GRAMMAR, CHARACTER = "grammar", "character"


@dataclass
class SequenceModelSpec:
    representation: str  # "grammar" or "character"
    grammar_name: str
    grammar_source: str
    grammar_hash: str
    network: SequenceNetworkConfig
    objective: dict  # config_of(objective): {"name": ..., settings...}
    preset: str = ""
    alphabet: list[str] = field(default_factory=list)  # character models
    length: int = 0  # character models: max characters
    kekulize: bool = False  # SMILES written as canonical Kekule SMILES (chemistry.kekule_smiles)

    @property
    def form(self) -> str:
        """How strings are written for this model (``chemistry.STRING_FORMS``)."""
        return form_of(self.kekulize)

    def to_dict(self) -> dict:
        return {
            FAMILY_KEY: FAMILY,
            "representation": self.representation,
            "preset": self.preset,
            "grammar_name": self.grammar_name,
            "grammar_source": self.grammar_source,
            "grammar_hash": self.grammar_hash,
            "network": self.network.to_dict(),
            "objective": self.objective,
            "alphabet": self.alphabet,
            "length": self.length,
            **({"kekulize": True} if self.kekulize else {}),  # specs of models written as-is keep their old form
        }

    @classmethod
    def from_dict(cls, spec: dict) -> SequenceModelSpec:
        try:
            if spec[FAMILY_KEY] != FAMILY:
                raise KeyError(FAMILY_KEY)
            return cls(
                representation=spec["representation"],
                preset=spec.get("preset", ""),
                grammar_name=spec["grammar_name"],
                grammar_source=spec["grammar_source"],
                grammar_hash=spec["grammar_hash"],
                network=SequenceNetworkConfig(**spec["network"]),
                objective=dict(spec["objective"]),
                alphabet=list(spec.get("alphabet", [])),
                length=int(spec.get("length", 0)),
                kekulize=bool(spec.get("kekulize", False)),
            )
        except (KeyError, TypeError) as error:
            raise CheckpointError(f"not a sequence-model spec (missing or bad {error})") from None

    def grammar(self) -> Grammar:
        grammar = Grammar.from_text(self.grammar_source, name=self.grammar_name)
        if grammar.hash != self.grammar_hash:
            raise CheckpointError(f"the stored grammar's hash {grammar.hash} differs from the recorded {self.grammar_hash}")
        return grammar

    def build(self) -> SequenceAutoEncoder:
        """The model this spec describes: the published networks or autoregressive ones."""
        if self.network.autoregressive:
            from grammar_ae.models.sequence.autoregressive import TokenSequenceAutoEncoder

            return TokenSequenceAutoEncoder(self)
        return SequenceAutoEncoder(self)

    def codec(self) -> SequenceCodec:
        grammar = self.grammar()
        if self.representation == GRAMMAR:
            return GrammarCodec(grammar, self.form)
        return CharacterCodec(grammar, self.alphabet, self.length, self.form)


class StringAutoEncoder(AutoEncoder):
    """What every sequence model offers: strings to latents and latents to strings."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode_batch(self, strings: list[str]) -> EncoderOutput:
        """The encoder's output for a batch of strings."""
        return self.encode(self.inputs(self.encoding_batch(strings).to(self.device)))

    @torch.no_grad()
    def encode_strings(self, strings: list[str], batch_size: int = 1000) -> Tensor:
        """Latent means (N, d) on the CPU."""
        means = [self.encode_batch(strings[i : i + batch_size]).mu.float().cpu() for i in range(0, len(strings), batch_size)]
        return torch.cat(means) if means else torch.zeros(0, self.latent_dim)

    @abstractmethod
    def training_batch(self, strings: list[str]) -> Tensor:
        """``strings`` as one batch of integer codes, as ``loss`` takes it."""

    def encoding_batch(self, strings: list[str]) -> Tensor:
        """``strings`` as the encoder reads them: as ``training_batch`` writes them, unless the
        encoder reads longer strings than the decoder writes."""
        return self.training_batch(strings)

    def can_train_on(self, string: str) -> bool:
        """Whether the model can train on ``string`` (its form, grammar, alphabet, length)."""
        return _accepts(self.training_batch, string)

    def can_encode(self, string: str) -> bool:
        """Whether the encoder can read ``string`` (possibly longer than the decoder writes)."""
        return _accepts(self.encoding_batch, string)

    @abstractmethod
    def decode_latents(
        self, z: Tensor, sample: bool = False, generator: torch.Generator | None = None, batch_size: int = 1000
    ) -> list[str | None]:
        """Strings for each row of ``z``; None where the decoder's output is invalid."""

    @abstractmethod
    def decode_samples(self, z: Tensor, samples_per_point: int, generator: torch.Generator) -> list[list[str | None]]:
        """``samples_per_point`` sampled decodes of each row of ``z``."""


class SequenceAutoEncoder(StringAutoEncoder):
    """Encoder over one-hot (B, T, V) sequences; decoder to (B, T, V) logits."""

    def __init__(self, spec: SequenceModelSpec, objective: Objective | None = None):
        objective = objective or build_objective(**spec.objective)
        codec = spec.codec()
        length, vocabulary = codec.length, codec.vocabulary
        encoder = SequenceEncoder(spec.network, length, vocabulary, stochastic=objective.stochastic_encoder)
        decoder = SequenceDecoder(spec.network, length, vocabulary)
        super().__init__(encoder, decoder, objective, spec.network.latent_dim)
        self.spec = spec
        self.codec = codec
        self.vocabulary = vocabulary
        if spec.representation == GRAMMAR:
            grammar = codec.grammar
            masks = torch.as_tensor(grammar.masks[grammar.rule_lhs])  # (R, R): rule -> allowed rules
            self.register_buffer("rule_masks", masks, persistent=False)
        else:
            self.rule_masks = None

    def inputs(self, batch: Tensor) -> Tensor:
        return F.one_hot(batch.long(), self.vocabulary).float()

    def reconstruction(self, logits: Tensor, batch: Tensor) -> ReconstructionTerms:
        """Cross-entropy per step, summed over steps, averaged over the batch.

        Grammar models renormalise over the rules of the true left-hand symbol (the mask
        of each target rule's left-hand side), as in the grammar VAE.
        """
        targets = batch.long()
        if self.rule_masks is not None:
            logits = logits.masked_fill(~self.rule_masks[targets], float("-inf"))
        per_step = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        return ReconstructionTerms(loss=per_step.view_as(targets).sum(1).mean())

    def training_batch(self, strings: list[str]) -> Tensor:
        return self.codec.encode(strings)

    @torch.no_grad()
    def decode_latents(
        self, z: Tensor, sample: bool = False, generator: torch.Generator | None = None, batch_size: int = 1000
    ) -> list[str | None]:
        """Strings for each row of ``z``; None where the decoder's output is invalid."""
        out: list[str | None] = []
        for start in range(0, len(z), batch_size):
            logits = self.decode(z[start : start + batch_size].to(self.device)).float()
            out.extend(self.codec.decode(logits, sample=sample, generator=generator))
        return out

    @torch.no_grad()
    def decode_samples(
        self, z: Tensor, samples_per_point: int, generator: torch.Generator, chunk_rows: int = 2000
    ) -> list[list[str | None]]:
        """``samples_per_point`` Gumbel-max decodes of each row of ``z``.

        The decoder is deterministic given z, so its logits are computed once per point and
        only the masked sampling is repeated.
        """
        out: list[list[str | None]] = []
        points_per_chunk = max(1, chunk_rows // samples_per_point)
        for start in range(0, len(z), points_per_chunk):
            logits = self.decode(z[start : start + points_per_chunk].float().to(self.device)).float()
            repeated = logits.repeat_interleave(samples_per_point, dim=0)
            strings = self.codec.decode(repeated, sample=True, generator=generator)
            out.extend(strings[i : i + samples_per_point] for i in range(0, len(strings), samples_per_point))
        return out


def _accepts(batch: Callable[[list[str]], Tensor], string: str) -> bool:
    try:
        batch([string])
    except GrammarAEError:
        return False
    return True
