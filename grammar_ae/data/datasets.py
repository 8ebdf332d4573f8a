"""From a data argument (a name, a path or nothing) to prepared data for a grammar."""

from __future__ import annotations

from pathlib import Path

from grammar_ae.data.generate import generate_strings
from grammar_ae.data.prepare import PreparedData, prepare_cached
from grammar_ae.data.sources import DATA_SOURCES, DEFAULT_DATA, GENERATED_EXPRESSIONS, resolve_data
from grammar_ae.utils.download import cache_root
from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.utils.files import atomic_write_text

GENERATED_COUNT = 100_000
GENERATED_RULES = (8, 15)


def resolve_input(data: str | Path | None, grammar: Grammar) -> Path:
    """The file to read for ``data``; ``None`` means the grammar's embedded default."""
    if data is None:
        if grammar.name not in DEFAULT_DATA:
            raise ConfigError(f"grammar {grammar.name}: has no default data set; pass --data/--input PATH")
        data = DEFAULT_DATA[grammar.name]
    key = str(data)
    if key == GENERATED_EXPRESSIONS:
        _check_grammar(key, "expressions", grammar)
        return generated_expressions()
    if key in DATA_SOURCES:
        _check_grammar(key, DATA_SOURCES[key].grammar, grammar)
    return resolve_data(key)


def _check_grammar(name: str, expected: str, grammar: Grammar) -> None:
    if grammar.name != expected:
        raise ConfigError(f"data set {name!r} is for the {expected} grammar, not {grammar.name}")


def generated_expressions(seed: int = 0) -> Path:
    """The embedded expression set: 100k distinct expressions drawn from the grammar, cached."""
    path = cache_root() / "data" / f"expressions_generated_seed{seed}.txt"
    if not path.is_file():
        low, high = GENERATED_RULES
        strings = generate_strings(Grammar.load("expressions"), GENERATED_COUNT, seed=seed, min_rules=low, max_rules=high)
        atomic_write_text(path, "".join(s + "\n" for s in strings))
    return path


def load_prepared(data: str | Path | None, grammar: Grammar, progress: bool = True, form: str = "as-written") -> PreparedData:
    """Prepared data for a data argument, parsed at most once (cached by checksum, grammar and
    the form the strings are written in, see ``chemistry.STRING_FORMS``)."""
    path = Path(data) if data is not None and Path(str(data)).is_dir() else None
    if path is not None:
        prepared = PreparedData.load(path)
        if prepared.grammar_hash != grammar.hash:
            raise ConfigError(
                f"{path}: prepared with grammar hash {prepared.grammar_hash}, not {grammar.name} ({grammar.hash})"
            )
        if prepared.summary.get("form", "as-written") != form:
            raise ConfigError(f"{path}: prepared with strings {prepared.summary.get('form', 'as-written')}, not {form}")
        return prepared
    return prepare_cached(resolve_input(data, grammar), grammar, progress=progress, form=form)
