"""Entry point of the ``grammar-ae`` command: builds the typer app from the command modules."""

from __future__ import annotations

import sys

import typer

from grammar_ae.errors import GrammarAEError

app = typer.Typer(
    name="grammar-ae",
    help="Grammar-based regularized autoencoders: data, training, sampling and Bayesian optimization.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: brackets in help texts stay as written
)


def _register_commands() -> None:
    from grammar_ae.cli import commands_data, commands_grammar, commands_images, commands_model, commands_optimize

    for module in (commands_grammar, commands_data, commands_model, commands_optimize):
        module.register(app)
    commands_images.register_benchmarks(commands_optimize.benchmark_app)


_register_commands()


def main() -> None:
    """Run the CLI. Click prints usage errors (exit 2) and handles Ctrl-C (exit 130); input
    errors and failed reads or writes are one line on stderr and exit 1 (an interrupted
    training run: 130 or 143, after saving a resumable checkpoint)."""
    try:
        app()
    except GrammarAEError as error:
        _fail(str(error), error.exit_code)
    except OSError as error:
        _fail(_describe(error))


def _fail(message: str, exit_code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


def _describe(error: OSError) -> str:
    """``path: reason`` of a failed read or write, without Python's errno prefix."""
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename else reason
