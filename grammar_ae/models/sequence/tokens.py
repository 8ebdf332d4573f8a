"""Strings as token sequences for autoregressive decoders, with the tables that mask them.

A token codec turns strings (or a prepared data set) into ragged token sequences and decoded
tokens back into strings. Every codec describes its tokens as productions of a small
grammar, so one masked, stack-driven decoding loop serves them all:

- grammar tokens are the grammar's folded productions (``grammar.folding``): about half as
  many decisions as rules, every decode grammatical;
- character tokens are a right-recursive grammar ``S -> c S | end``: any character may
  follow, the ``end`` token (the alphabet's padding character) closes the string.

After the end every sequence holds the padding token, which is never part of the loss.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from grammar_ae.data.batches import pad_ragged
from grammar_ae.data.prepare import PreparedData
from grammar_ae.decoding.smiles_checks import SmilesChecks
from grammar_ae.decoding.strings import StringReplay
from grammar_ae.decoding.tables import DecodingTables
from grammar_ae.errors import ParseError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.folding import FoldedGrammar
from grammar_ae.models.sequence.codec import StringCodec

Ragged = tuple[np.ndarray, np.ndarray]  # flat tokens, offsets (N + 1)


class TokenCodec(StringCodec, ABC):
    """Tokens ``0 .. num_tokens - 1``; ``padding_token`` fills sequences after their end."""

    def __init__(
        self, grammar: Grammar, tables: DecodingTables, token_lhs: np.ndarray, max_tokens: int, max_length: int, form: str,
    ):
        super().__init__(grammar, form)
        self.tables = tables
        self.token_lhs = token_lhs
        self.max_tokens = max_tokens
        self.max_length = max_length  # the longest string written, in the codec's units (productions, characters)

    @property
    def num_tokens(self) -> int:
        return len(self.token_lhs)

    @property
    def padding_token(self) -> int:
        return self.tables.padding_rule

    @cached_property
    def sibling_masks(self) -> Tensor:
        """(M, M) bool: row t marks the tokens with t's left-hand symbol (the choices at t's step)."""
        lhs = torch.as_tensor(self.token_lhs)
        return lhs[:, None] == lhs[None, :]

    @abstractmethod
    def ragged(self, data: PreparedData) -> Ragged:
        """Every item of a prepared data set as tokens."""

    @abstractmethod
    def encode(self, strings: Sequence[str], max_length: int | None = None) -> Ragged:
        """Tokens of ``strings`` of at most ``max_length`` (default: the codec's); a string the
        codec cannot represent raises ParseError."""

    @abstractmethod
    def strings(self, tokens: Tensor, valid: Tensor) -> list[str | None]:
        """Strings of decoded (B, T) tokens where ``valid``, else None."""

    def chemistry_checks(self) -> SmilesChecks | None:
        """The SMILES checks (rings, valence) for decoding, where the tokens are SMILES."""
        return None

    def padded(self, strings: Sequence[str], max_length: int | None = None) -> Tensor:
        """(B, T) int64 tokens of ``strings`` (see ``encode``), padded with the padding token."""
        flat, offsets = self.encode(strings, max_length)
        return pad_ragged(flat, offsets, np.arange(len(offsets) - 1), self.padding_token)

class GrammarTokens(TokenCodec):
    """Folded productions of the grammar (see ``grammar.folding``)."""

    def __init__(self, grammar: Grammar, form: str = "as-written"):
        self.folded = FoldedGrammar.from_grammar(grammar)
        live = np.ones(self.folded.num_tokens, dtype=bool)
        tables = DecodingTables.from_productions(
            lhs=self.folded.token_lhs,
            rhs_nonterminals=self.folded.rhs_nonterminals,
            live=live,
            start_symbol=grammar.symbol_index[grammar.start],
            padding_rule=self.folded.padding_token,
        )
        super().__init__(grammar, tables, self.folded.token_lhs, grammar.max_length, grammar.max_length, form)
        self._replay = StringReplay(grammar, DecodingTables.from_grammar(grammar))

    def ragged(self, data: PreparedData) -> Ragged:
        return self.folded.fold(data.sequences, data.offsets)

    def chemistry_checks(self) -> SmilesChecks | None:
        return SmilesChecks(self.folded) if SmilesChecks.applies(self.folded) else None

    def encode(self, strings: Sequence[str], max_length: int | None = None) -> Ragged:
        sequences = [self.parser.parse(self.input_form(text), max_length) for text in strings]
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in sequences], out=offsets[1:])
        flat = np.concatenate(sequences) if sequences else np.zeros(0, np.int64)
        return self.folded.fold(flat, offsets)

    def strings(self, tokens: Tensor, valid: Tensor) -> list[str | None]:
        tokens = tokens.detach().cpu().numpy()
        valid = valid.detach().cpu().numpy() & (self.folded.rule_counts(tokens) <= self.grammar.max_length)
        rules = torch.from_numpy(self.folded.unfold(tokens))
        return self._replay.strings(rules, torch.from_numpy(valid))


class CharacterTokens(TokenCodec):
    """Characters of ``alphabet``; its first entry (the padding character) ends a string."""

    def __init__(self, grammar: Grammar, alphabet: Sequence[str], length: int, form: str = "as-written"):
        self.alphabet = list(alphabet)
        characters = len(self.alphabet)
        # symbols: 0 = S (the rest of the string), 1 = after the end
        lhs = np.array([0] * characters + [1], dtype=np.int64)
        pushes = [()] + [(0,)] * (characters - 1) + [()]
        tables = DecodingTables.from_productions(
            lhs=lhs, rhs_nonterminals=pushes, live=np.ones(len(lhs), bool), start_symbol=0, padding_rule=characters
        )
        super().__init__(grammar, tables, lhs, length + 1, length, form)
        self.length = length
        self._index = {c: i for i, c in enumerate(self.alphabet)}

    def ragged(self, data: PreparedData) -> Ragged:
        return _with_end(data.characters.astype(np.int64), data.character_offsets)

    def encode(self, strings: Sequence[str], max_length: int | None = None) -> Ragged:
        max_length = max_length or self.length
        codes = []
        for text in strings:
            normalized = self.input_form(text)
            if len(normalized) > max_length:
                raise ParseError(f"{text!r}: {len(normalized)} characters, more than the model's {max_length}")
            try:
                codes.append([self._index[c] for c in normalized])
            except KeyError as error:
                raise ParseError(f"{text!r}: character {error.args[0]!r} is not in the model's alphabet") from None
        offsets = np.zeros(len(codes) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in codes], out=offsets[1:])
        flat = np.array([i for c in codes for i in c], dtype=np.int64)
        return _with_end(flat, offsets)

    def strings(self, tokens: Tensor, valid: Tensor) -> list[str | None]:
        characters = np.array([""] + self.alphabet[1:] + [""], dtype=object)[tokens.detach().cpu().numpy()]
        out: list[str | None] = []
        for row, ok in zip(characters, valid.tolist()):
            text = "".join(row)
            out.append(text if ok and text and self.is_grammatical(text) else None)
        return out


def _with_end(flat: np.ndarray, offsets: np.ndarray) -> Ragged:
    """Append the end token (0) to every ragged sequence."""
    lengths = np.diff(offsets) + 1
    new_offsets = np.zeros_like(offsets)
    np.cumsum(lengths, out=new_offsets[1:])
    out = np.zeros(int(new_offsets[-1]), dtype=np.int64)
    keep = np.ones(len(out), dtype=bool)
    keep[new_offsets[1:] - 1] = False
    out[keep] = flat
    return out, new_offsets
