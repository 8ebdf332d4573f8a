"""Progress bars and warnings on stderr (rich), so stdout stays machine-readable."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stderr_console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(steps=1, **fields)``; shows a bar on stderr when ``enabled``."""
    if not enabled:
        yield lambda steps=1, **fields: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=stderr_console, transient=False) as progress:
        task = progress.add_task(description, total=total, status="")

        def advance(steps: int = 1, status: str | None = None) -> None:
            if status is None:
                progress.advance(task, steps)
            else:
                progress.update(task, advance=steps, status=status)

        yield advance


def warn(message: str) -> None:
    stderr_console.print(f"[yellow]warning:[/yellow] {message}")
