"""Context-free grammars as rule tables: productions, masks, right-hand non-terminals, hash.

A grammar file is NLTK CFG text. Optional settings go on a comment line
``# grammar-ae: max_length=277 ignore_whitespace=true``. Rule indices follow the order of
the productions in the file. The padding rule is the one whose left-hand side is
``Nothing`` (``Nothing -> None``); it is applied after a derivation has ended.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import nltk
import numpy as np

from grammar_ae.errors import GrammarError

BUILTIN_GRAMMARS = ("smiles", "expressions")
PADDING_SYMBOL = "Nothing"
DEFAULT_MAX_LENGTH = 300
_SETTINGS = re.compile(r"^\s*#\s*grammar-ae:\s*(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Rule:
    """One production: ``lhs -> rhs``; ``rhs`` items are terminal strings or non-terminal names."""

    index: int
    lhs: str
    rhs: tuple[str, ...]
    is_terminal: tuple[bool, ...]

    def __str__(self) -> str:
        items = (repr(s) if t else s for s, t in zip(self.rhs, self.is_terminal))
        return f"{self.lhs} -> {' '.join(items)}"


@dataclass(frozen=True)
class Grammar:
    """A CFG with the tables that encoding, parsing and masked decoding need."""

    name: str
    rules: tuple[Rule, ...]
    max_length: int
    ignore_whitespace: bool = False
    source: str = field(default="", compare=False, repr=False)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, name: str = "custom", max_length: int | None = None) -> Grammar:
        settings = _parse_settings(text, name)
        try:
            cfg = nltk.CFG.fromstring(text)
        except ValueError as error:
            raise GrammarError(f"grammar {name}: not a valid CFG ({error})") from None
        rules = tuple(
            Rule(
                index=i,
                lhs=p.lhs().symbol(),
                rhs=tuple(s if isinstance(s, str) else s.symbol() for s in p.rhs()),
                is_terminal=tuple(isinstance(s, str) for s in p.rhs()),
            )
            for i, p in enumerate(cfg.productions())
        )
        length = max_length or int(settings.get("max_length", DEFAULT_MAX_LENGTH))
        grammar = cls(
            name=name,
            rules=rules,
            max_length=length,
            ignore_whitespace=settings.get("ignore_whitespace", "false").lower() == "true",
            source=text,
        )
        grammar._validate()
        return grammar

    @classmethod
    def load(cls, name_or_path: str | Path, max_length: int | None = None) -> Grammar:
        """A built-in grammar by name (``smiles``, ``expressions``) or a grammar file."""
        key = str(name_or_path)
        if key in BUILTIN_GRAMMARS:
            return _builtin(key, max_length)
        path = Path(key)
        if not path.is_file():
            raise GrammarError(
                f"grammar {key!r}: not a built-in grammar ({', '.join(BUILTIN_GRAMMARS)}) "
                "and no such file"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise GrammarError(f"grammar file {path}: cannot be read ({error})") from None
        return cls.from_text(text, name=path.stem, max_length=max_length)

    def _validate(self) -> None:
        if self.max_length < 1:
            raise GrammarError(f"grammar {self.name}: max_length must be positive")
        padding = [r.index for r in self.rules if r.lhs == PADDING_SYMBOL]
        if len(padding) != 1:
            raise GrammarError(
                f"grammar {self.name}: needs exactly one padding rule "
                f"'{PADDING_SYMBOL} -> None' (found {len(padding)})"
            )
        if self.start == PADDING_SYMBOL:
            raise GrammarError(f"grammar {self.name}: the first rule must not be the padding rule")
        if len(self.rules) > 32767:
            raise GrammarError(f"grammar {self.name}: too many rules ({len(self.rules)})")

    # -- tables ---------------------------------------------------------------------------
    @property
    def start(self) -> str:
        return self.rules[0].lhs

    @property
    def num_rules(self) -> int:
        return len(self.rules)

    @cached_property
    def padding_rule(self) -> int:
        return next(r.index for r in self.rules if r.lhs == PADDING_SYMBOL)

    @cached_property
    def lhs_symbols(self) -> tuple[str, ...]:
        """Left-hand symbols in order of first appearance (the padding symbol included)."""
        return tuple(dict.fromkeys(r.lhs for r in self.rules))

    @cached_property
    def symbol_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.lhs_symbols)}

    @cached_property
    def rule_lhs(self) -> np.ndarray:
        """(R,) index of each rule's left-hand symbol in ``lhs_symbols``."""
        return np.array([self.symbol_index[r.lhs] for r in self.rules], dtype=np.int64)

    @cached_property
    def masks(self) -> np.ndarray:
        """(S, R) boolean: row s marks the rules whose left-hand side is symbol s."""
        masks = np.zeros((len(self.lhs_symbols), self.num_rules), dtype=bool)
        masks[self.rule_lhs, np.arange(self.num_rules)] = True
        return masks

    @cached_property
    def rhs_nonterminals(self) -> tuple[tuple[int, ...], ...]:
        """Per rule, the right-hand non-terminals (as ``lhs_symbols`` indices), left to right.

        Non-terminals without productions (dead symbols) are kept with index -1 so that a
        decoder that expands them fails visibly. The padding rule has none.
        """
        return tuple(
            ()
            if r.index == self.padding_rule
            else tuple(
                self.symbol_index.get(s, -1) for s, t in zip(r.rhs, r.is_terminal) if not t
            )
            for r in self.rules
        )

    @cached_property
    def terminals(self) -> tuple[str, ...]:
        """Every terminal string, in order of first appearance."""
        return tuple(
            dict.fromkeys(s for r in self.rules for s, t in zip(r.rhs, r.is_terminal) if t)
        )

    @cached_property
    def hash(self) -> str:
        """Stable hash of what makes sequences interchangeable: rules, order and max length."""
        canonical = "\n".join(str(r) for r in self.rules)
        canonical += f"\nmax_length={self.max_length}\nignore_whitespace={self.ignore_whitespace}"
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @cached_property
    def nltk_cfg(self) -> nltk.CFG:
        return nltk.CFG.fromstring(self.source)

    def describe(self) -> dict:
        """A summary for ``grammar-ae grammar info``."""
        return {
            "name": self.name,
            "hash": self.hash,
            "start": self.start,
            "rules": self.num_rules,
            "padding_rule": self.padding_rule,
            "max_length": self.max_length,
            "lhs_symbols": len(self.lhs_symbols),
            "terminals": len(self.terminals),
            "rules_per_symbol": {s: int(self.masks[i].sum()) for i, s in enumerate(self.lhs_symbols)},
        }


def live_rules(grammar: Grammar) -> np.ndarray:
    """(R,) True for rules that can finish: every right-hand non-terminal derives a string.

    A rule naming a symbol without productions (index -1), or only symbols that can never
    finish, would leave a derivation open forever; the decoder never picks it.
    """
    productive = np.zeros(len(grammar.lhs_symbols), dtype=bool)
    while True:
        live = np.array(
            [all(s >= 0 and productive[s] for s in rhs) for rhs in grammar.rhs_nonterminals]
        )
        grown = productive.copy()
        grown[grammar.rule_lhs[live]] = True
        if (grown == productive).all():
            break
        productive = grown
    if not productive[grammar.symbol_index[grammar.start]]:
        raise GrammarError(f"grammar {grammar.name}: the start symbol {grammar.start!r} derives no string")
    return live


def _parse_settings(text: str, name: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in _SETTINGS.findall(text):
        for item in line.split():
            key, sep, value = item.partition("=")
            if not sep or key not in ("max_length", "ignore_whitespace"):
                raise GrammarError(f"grammar {name}: unknown setting {item!r} in '# grammar-ae:' line")
            settings[key] = value
    if "max_length" in settings and not settings["max_length"].isdigit():
        raise GrammarError(f"grammar {name}: max_length must be an integer")
    return settings


def builtin_grammar_path(name: str) -> Path:
    """The file of a built-in grammar (installed package data, or the checkout's grammars/)."""
    try:
        path = Path(str(resources.files("grammar_ae.grammars").joinpath(f"{name}.cfg")))
        if path.is_file():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "grammars" / f"{name}.cfg"


@lru_cache(maxsize=None)
def _builtin(name: str, max_length: int | None) -> Grammar:
    path = builtin_grammar_path(name)
    return Grammar.from_text(path.read_text(encoding="utf-8"), name=name, max_length=max_length)
