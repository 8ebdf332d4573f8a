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
)


def _register_commands() -> None:
    from grammar_ae.cli import commands_data, commands_grammar, commands_images, commands_model, commands_optimize

    for module in (commands_grammar, commands_data, commands_model, commands_optimize):
        module.register(app)
    commands_images.register_benchmarks(commands_optimize.benchmark_app)


_register_commands()


def main() -> None:
    """Run the CLI; input errors become one line on stderr and exit code 1."""
    try:
        app(standalone_mode=False)
    except GrammarAEError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:  # click usage errors and aborts
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        if isinstance(error, click.exceptions.Abort):
            sys.exit(1)
        raise
