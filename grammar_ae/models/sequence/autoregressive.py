"""Autoregressive sequence autoencoders over tokens (folded grammar productions or characters).

Training is teacher-forced: the decoder sees the true previous token and the symbol being
expanded, and the loss is the cross-entropy of the masked, renormalised token distribution
(the choices of that symbol only) over the real steps, summed per sequence and averaged over
the batch, in nats per sequence like the published model's. Decoding is masked and
autoregressive (``decoding.autoregressive``): every output is grammatical, and for SMILES
rings close, atoms keep their valence and rings of at most 7 atoms are preferred
(``decoding.smiles_checks``; set ``model.chemistry_checks.max_ring_size = None`` to decode
without the preference, ``model.chemistry_checks = None`` without any check). A recurrent
encoder reads strings longer than the decoder writes (``read_length``): BO's surrogate can
place a molecule the model could not reproduce in its latent space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grammar_ae.decoding.autoregressive import decode_autoregressive
from grammar_ae.models.sequence.autoregressive_networks import DECODERS, ENCODERS, TokenNetworkSizes
from grammar_ae.models.sequence.model import GRAMMAR, SequenceModelSpec, StringAutoEncoder
from grammar_ae.models.sequence.tokens import CharacterTokens, GrammarTokens, TokenCodec
from grammar_ae.objectives import Objective, ReconstructionTerms, build_objective

READ_LENGTH_FACTOR = 4  # a recurrent encoder reads strings up to 4x the longest its decoder writes


class TeacherForced(nn.Module):
    """The decoder bound to one batch's targets: z -> logits (what objectives call a decoder)."""

    def __init__(self, decoder: nn.Module, targets: Tensor, symbols: Tensor):
        super().__init__()
        self.decoder = decoder
        self.targets, self.symbols = targets, symbols

    def forward(self, z: Tensor) -> Tensor:
        return self.decoder(z, self.targets, self.symbols)


class TokenSequenceAutoEncoder(StringAutoEncoder):
    """Encoder over (B, T) tokens; autoregressive decoder to (B, T, M) logits."""

    def __init__(self, spec: SequenceModelSpec, objective: Objective | None = None):
        objective = objective or build_objective(**spec.objective)
        grammar = spec.grammar()
        codec: TokenCodec = (
            GrammarTokens(grammar, spec.form) if spec.representation == GRAMMAR
            else CharacterTokens(grammar, spec.alphabet, spec.length, spec.form)
        )
        net = spec.network
        sizes = TokenNetworkSizes(
            latent_dim=net.latent_dim,
            embedding_dim=net.embedding_dim,
            model_dim=net.model_dim,
            decoder_layers=net.decoder_layers,
            encoder_dim=net.encoder_dim,
            encoder_layers=net.encoder_layers,
            heads=net.heads,
            max_tokens=codec.max_tokens,
        )
        symbols = int(codec.token_lhs.max()) + 1
        encoder = ENCODERS[net.encoder](sizes, codec.num_tokens, codec.padding_token, objective.stochastic_encoder)
        decoder = DECODERS[net.decoder](sizes, codec.num_tokens, symbols)
        super().__init__(encoder, decoder, objective, net.latent_dim)
        self.spec = spec
        self.codec = codec
        self.chemistry_checks = codec.chemistry_checks()  # SMILES: ring and valence checks while decoding
        self.register_buffer("token_lhs", torch.as_tensor(codec.token_lhs), persistent=False)
        self.register_buffer("sibling_masks", codec.sibling_masks, persistent=False)

    def inputs(self, batch: Tensor) -> Tensor:
        return batch.long()

    def decoder_for(self, batch: Tensor) -> nn.Module:
        targets = batch.long()
        return TeacherForced(self.decoder, targets, self.token_lhs[targets])

    def reconstruction(self, logits: Tensor, batch: Tensor) -> ReconstructionTerms:
        targets = batch.long()
        real = targets != self.codec.padding_token
        chosen = targets[real]
        masked = logits[real].float().masked_fill(~self.sibling_masks[chosen], float("-inf"))
        return ReconstructionTerms(loss=F.cross_entropy(masked, chosen, reduction="sum") / len(targets))

    # -- strings ---------------------------------------------------------------------------
    def training_batch(self, strings: list[str]) -> Tensor:
        return self.codec.padded(strings)

    @property
    def read_length(self) -> int:
        """The longest string the encoder reads (productions or characters): a recurrent encoder
        reads ``READ_LENGTH_FACTOR`` times the longest string the decoder writes, a transformer's
        positions end there."""
        return self.codec.max_length * (READ_LENGTH_FACTOR if self.spec.network.encoder == "gru" else 1)

    def encoding_batch(self, strings: list[str]) -> Tensor:
        return self.codec.padded(strings, self.read_length)


    @torch.no_grad()
    def decode_latents(
        self, z: Tensor, sample: bool = False, generator: torch.Generator | None = None, batch_size: int = 2000
    ) -> list[str | None]:
        """Strings for each row of ``z``; None where the derivation does not end in time."""
        out: list[str | None] = []
        for start in range(0, len(z), batch_size):
            decoded = decode_autoregressive(
                self.decoder, z[start : start + batch_size].to(self.device).float(), self.codec.tables,
                self.codec.max_tokens, sample=sample, generator=generator, constraint=self.chemistry_checks,
            )
            out.extend(self.codec.strings(decoded.rules, decoded.valid))
        return out

    def decode_samples(self, z: Tensor, samples_per_point: int, generator: torch.Generator) -> list[list[str | None]]:
        """``samples_per_point`` sampled decodes of each row of ``z``."""
        strings = self.decode_latents(z.repeat_interleave(samples_per_point, dim=0), sample=True, generator=generator)
        return [strings[i : i + samples_per_point] for i in range(0, len(strings), samples_per_point)]
