"""Tokenizers: longest match over a grammar's terminals.

For the SMILES grammar this makes ``Cl``, ``Br`` and ``@@`` single tokens; for the
expression grammar it accepts both ``sin(x)+1`` and the data set's ``sin( x ) + 1``
(whitespace is dropped when the grammar says ``ignore_whitespace=true``).
"""

from __future__ import annotations

import re

from grammar_ae.errors import ParseError
from grammar_ae.grammar.cfg import Grammar


class Tokenizer:
    """Splits strings into the terminals of one grammar."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        by_length = sorted(grammar.terminals, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(t) for t in by_length))

    def normalize(self, text: str) -> str:
        """The string as the grammar sees it (whitespace removed where it is ignored)."""
        return "".join(text.split()) if self.grammar.ignore_whitespace else text

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text``; a character no terminal matches is a ParseError."""
        normalized = self.normalize(text)
        tokens = self._pattern.findall(normalized)
        if sum(map(len, tokens)) != len(normalized):
            raise ParseError(self._locate_error(text, normalized))
        if not tokens:
            raise ParseError(f"{text!r}: empty string")
        return tokens

    def _locate_error(self, text: str, normalized: str) -> str:
        position = 0
        while position < len(normalized):
            match = self._pattern.match(normalized, position)
            if match is None:
                break
            position = match.end()
        return (
            f"{text!r}: character {normalized[position]!r} at position {position} "
            f"is not a token of the {self.grammar.name} grammar"
        )
