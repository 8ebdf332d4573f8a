"""Progress bars and warnings on stderr, so stdout stays machine-readable.

On a terminal a progress bar is drawn with rich; anywhere else (a pipe, a log file) it prints
plain lines instead: one per change of status and at least one every ``PLAIN_EVERY`` seconds,
each with the count, the elapsed time and an estimate of the time left.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

stderr_console = Console(stderr=True)
PLAIN_EVERY = 30.0
"""Seconds between plain progress lines when the status does not change."""


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(steps=1, status=None)``; shows progress on stderr when ``enabled``."""
    if not enabled:
        yield lambda steps=1, status=None: None
    elif stderr_console.is_terminal:
        with _rich_bar(description, total) as advance:
            yield advance
    else:
        yield PlainProgress(description, total).advance


@contextmanager
def _rich_bar(description: str, total: int) -> Iterator[Callable[..., None]]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
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


class PlainProgress:
    """Progress as plain lines: ``description: 3/10 (30%), 0:12 elapsed, ETA 0:28, status``."""

    def __init__(self, description: str, total: int, clock: Callable[[], float] = time.monotonic):
        self.description, self.total, self.clock = description, total, clock
        self.done, self.status = 0, ""
        self.started = self.printed = clock()

    def advance(self, steps: int = 1, status: str | None = None) -> None:
        finished = self.done < self.total <= self.done + steps
        self.done += steps
        changed = status is not None and status != self.status
        self.status = self.status if status is None else status
        if changed or finished or self.clock() - self.printed >= PLAIN_EVERY:
            print(self.line(), file=sys.stderr, flush=True)
            self.printed = self.clock()

    def line(self) -> str:
        elapsed = self.clock() - self.started
        share = self.done / self.total if self.total else 1.0
        eta = _clock_time(elapsed / share - elapsed) if self.done else "?"
        status = f", {self.status}" if self.status else ""
        return (
            f"{self.description}: {self.done:,}/{self.total:,} ({share:.0%}), "
            f"{_clock_time(elapsed)} elapsed, ETA {eta}{status}"
        )


def _clock_time(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def warn(message: str) -> None:
    """``warning: message`` on stderr, on one line (the message is not read as markup)."""
    stderr_console.print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True)
