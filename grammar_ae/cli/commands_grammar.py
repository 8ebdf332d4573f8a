"""`grammar-ae grammar info`, `parse` and `unparse`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from grammar_ae.data.readers import read_text
from grammar_ae.errors import DataError, GrammarAEError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser

BYTE_ORDER_MARK = "\ufeff"
GRAMMAR_HELP = "Built-in grammar (smiles, expressions) or a grammar file (.cfg)."

grammar_app = typer.Typer(help="Inspect grammars.", no_args_is_help=True)


@grammar_app.command("info")
def info(grammar: str = typer.Argument(..., help=GRAMMAR_HELP), json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Rules, left-hand symbols and their masks, max length and hash of a grammar."""
    loaded = Grammar.load(grammar)
    description = loaded.describe()
    if json_output:
        import json

        typer.echo(json.dumps(description, indent=2))
        return
    typer.echo(f"grammar {loaded.name}  hash {loaded.hash}  start {loaded.start}")
    typer.echo(f"{loaded.num_rules} rules, padding rule {loaded.padding_rule}, max length {loaded.max_length}")
    typer.echo(f"mask matrix {len(loaded.lhs_symbols)} x {loaded.num_rules} (rules per left-hand symbol):")
    for symbol, count in description["rules_per_symbol"].items():
        typer.echo(f"  {symbol:<20} {count}")
    typer.echo("rules:")
    for rule in loaded.rules:
        typer.echo(f"  {rule.index:>3}  {rule}")


def _lines(values: list[str], input_file: Optional[Path]) -> list[str]:
    if values and input_file:
        raise typer.BadParameter("give strings as arguments or --input, not both")
    if input_file is None:
        if not values:
            raise typer.BadParameter("nothing to do: give strings as arguments or --input FILE")
        return values
    text = sys.stdin.read() if str(input_file) == "-" else read_text(input_file)
    return text.removeprefix(BYTE_ORDER_MARK).splitlines()


def _convert_each(lines: list[str], convert, from_file: bool) -> None:
    """Print one output line per input line; with a file, a bad line prints an empty line, and
    a file whose every line fails is an error."""
    failures = 0
    for number, line in enumerate(lines, start=1):
        try:
            typer.echo(convert(line))
        except GrammarAEError as error:
            if not from_file:
                raise
            failures += 1
            typer.echo("")
            typer.echo(f"line {number}: {error}", err=True)
    if failures and failures == len(lines):
        raise DataError(f"all {failures} lines failed")
    if failures:
        typer.echo(f"{failures} of {len(lines)} lines failed", err=True)


def parse(
    strings: list[str] = typer.Argument(None, help="Strings to parse."),
    grammar: str = typer.Option(..., "--grammar", "-g", help=GRAMMAR_HELP),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="File with one string per line ('-' for stdin)."),
) -> None:
    """Print the leftmost derivation of each string as rule indices separated by spaces."""
    parser = Parser(Grammar.load(grammar))
    _convert_each(
        _lines(strings or [], input_file),
        lambda line: " ".join(map(str, parser.parse(line).tolist())),
        from_file=input_file is not None,
    )


def unparse(
    sequences: list[str] = typer.Argument(None, help="Rule indices of one sequence (separated by spaces)."),
    grammar: str = typer.Option(..., "--grammar", "-g", help=GRAMMAR_HELP),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i", help="File with one sequence per line ('-' for stdin)."),
) -> None:
    """Print the string each rule sequence derives (the inverse of parse)."""
    parser = Parser(Grammar.load(grammar))
    lines = [" ".join(sequences)] if sequences and input_file is None else _lines([], input_file)
    _convert_each(lines, lambda line: parser.unparse(_indices(line)), from_file=input_file is not None)


def _indices(line: str) -> list[int]:
    try:
        return [int(v) for v in line.split()]
    except ValueError:
        raise GrammarAEError(f"{line!r}: expected rule indices (integers separated by spaces)") from None


def register(app: typer.Typer) -> None:
    app.add_typer(grammar_app, name="grammar")
    app.command("parse")(parse)
    app.command("unparse")(unparse)
