"""`grammar-ae data prepare` and `grammar-ae data generate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from grammar_ae.cli.commands_grammar import GRAMMAR_HELP
from grammar_ae.data.datasets import resolve_input
from grammar_ae.data.generate import generate_strings
from grammar_ae.data.prepare import prepare
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.utils.files import atomic_write_text
from grammar_ae.utils.output_lock import hold_output_lock

data_app = typer.Typer(help="Prepare and generate data sets.", no_args_is_help=True)


@data_app.command("prepare")
def prepare_command(
    grammar: str = typer.Option(..., "--grammar", "-g", help=GRAMMAR_HELP),
    input_data: Optional[str] = typer.Option(
        None, "--input", "-i",
        help="Data file, or a named set (zinc250k, expressions, moses-sample, expressions-generated). "
        "Default: the grammar's embedded set.",
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the prepared arrays and summary."),
    workers: int = typer.Option(0, min=0, help="Parser processes (0: every core)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Parse a data set into compact rule-index arrays; writes summary.json and skipped.tsv."""
    loaded = Grammar.load(grammar)
    path = resolve_input(input_data, loaded)
    with hold_output_lock(output):
        prepared = prepare(path, loaded, output, workers=workers or None, progress=not quiet)
    keys = ("input", "total", "parsed", "skipped", "max_length", "seconds", "bytes_in_memory", "grammar_hash")
    typer.echo(json.dumps({k: prepared.summary[k] for k in keys}))


@data_app.command("generate")
def generate_command(
    grammar: str = typer.Option("expressions", "--grammar", "-g", help=GRAMMAR_HELP),
    count: int = typer.Option(100_000, "--count", "-n", help="Number of distinct strings."),
    seed: int = typer.Option(0, help="Random seed."),
    min_rules: int = typer.Option(8, help="Fewest productions per string."),
    max_rules: Optional[int] = typer.Option(None, help="Most productions per string (default: the grammar's max length)."),
    output: Path = typer.Option(..., "--output", "-o", help="Text file, one string per line."),
) -> None:
    """Draw distinct random strings from a grammar (deterministic for a seed)."""
    strings = generate_strings(Grammar.load(grammar), count, seed=seed, min_rules=min_rules, max_rules=max_rules)
    atomic_write_text(output, "".join(s + "\n" for s in strings))
    typer.echo(f"wrote {len(strings):,} strings to {output}")


@data_app.command("fetch-inception")
def fetch_inception_command(
    url: Optional[str] = typer.Option(None, "--url", help="Where to fetch it from (default: NVIDIA's StyleGAN2-ADA copy)."),
) -> None:
    """Download the FID Inception network into the cache; image evaluations use it from then on."""
    from grammar_ae.evaluation.image_features import INCEPTION_URL, fetch_inception

    features = fetch_inception(url or INCEPTION_URL)
    typer.echo(f"FID Inception network cached; image results will name their features {features.name}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
