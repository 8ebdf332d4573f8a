"""Strings to integer sequences and decoder logits back to strings.

A grammar codec works on production sequences (masked decoding guarantees grammatical
output); a character codec works on characters of a fixed alphabet (the output may be
anything, and is checked against the grammar afterwards).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from grammar_ae.chemistry import in_form
from grammar_ae.decoding.masked import MaskedDecoder
from grammar_ae.errors import GrammarAEError, ParseError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser


class StringCodec:
    """What every sequence codec shares: the grammar, its parser, and the form input strings
    are written in before the model reads them (``chemistry.STRING_FORMS``)."""

    def __init__(self, grammar: Grammar, form: str = "as-written"):
        self.grammar = grammar
        self.parser = Parser(grammar)
        self.form = form

    def input_form(self, text: str) -> str:
        """``text`` as the model reads and reproduces it: in the model's form, normalized as the
        grammar tokenizes it; ParseError where RDKit cannot write it in that form."""
        converted = in_form(text, self.form)
        if converted is None:
            raise ParseError(f"{text!r}: RDKit cannot write it in {self.form} form")
        return self.parser.tokenizer.normalize(converted)

    def is_grammatical(self, text: str) -> bool:
        try:
            self.parser.parse(text)
        except GrammarAEError:
            return False
        return True


class SequenceCodec(StringCodec, ABC):
    """Converts between strings and (B, T) index tensors over a vocabulary of size V."""

    def __init__(self, grammar: Grammar, length: int, form: str = "as-written"):
        super().__init__(grammar, form)
        self.length = length

    @property
    @abstractmethod
    def vocabulary(self) -> int: ...

    @abstractmethod
    def encode(self, strings: Sequence[str]) -> Tensor:
        """(B, T) int64 indices; a string the codec cannot represent raises ParseError."""

    @abstractmethod
    def decode(self, logits: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> list[str | None]:
        """Strings from (B, T, V) logits; None where the output is not in the grammar."""


class GrammarCodec(SequenceCodec):
    def __init__(self, grammar: Grammar, form: str = "as-written"):
        super().__init__(grammar, grammar.max_length, form)
        self.decoder = MaskedDecoder(grammar)

    @property
    def vocabulary(self) -> int:
        return self.grammar.num_rules

    def encode(self, strings: Sequence[str]) -> Tensor:
        out = np.full((len(strings), self.length), self.grammar.padding_rule, dtype=np.int64)
        for row, text in enumerate(strings):
            sequence = self.parser.parse(self.input_form(text))
            out[row, : len(sequence)] = sequence
        return torch.from_numpy(out)

    def decode(self, logits: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> list[str | None]:
        return self.decoder.to_strings(self.decoder.decode(logits, sample=sample, generator=generator))


class CharacterCodec(SequenceCodec):
    """Characters of ``alphabet`` (index 0 is the padding character)."""

    def __init__(self, grammar: Grammar, alphabet: Sequence[str], length: int, form: str = "as-written"):
        super().__init__(grammar, length, form)
        self.alphabet = list(alphabet)
        self._index = {c: i for i, c in enumerate(self.alphabet)}

    @property
    def vocabulary(self) -> int:
        return len(self.alphabet)

    def encode(self, strings: Sequence[str]) -> Tensor:
        out = np.zeros((len(strings), self.length), dtype=np.int64)
        for row, text in enumerate(strings):
            normalized = self.input_form(text)
            if len(normalized) > self.length:
                raise ParseError(f"{text!r}: {len(normalized)} characters, more than the model's {self.length}")
            try:
                out[row, : len(normalized)] = [self._index[c] for c in normalized]
            except KeyError as error:
                raise ParseError(f"{text!r}: character {error.args[0]!r} is not in the model's alphabet") from None
        return torch.from_numpy(out)

    def decode(self, logits: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> list[str | None]:
        if sample:
            uniform = torch.rand(logits.shape, generator=generator, device="cpu").to(logits.device)
            gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-20)).clamp_min(1e-20))
            indices = (logits + gumbel).argmax(-1)
        else:
            indices = logits.argmax(-1)
        characters = np.array(self.alphabet, dtype=object)[indices.cpu().numpy()]
        texts = ["".join(row).strip(self.alphabet[0]) for row in characters]
        return [text if text and self.is_grammatical(text) else None for text in texts]
