"""Exceptions raised for bad input; the CLI prints them as one line and exits non-zero."""


class GrammarAEError(Exception):
    """Base class of every error caused by the user's input or files."""

    exit_code = 1  # the command's exit status when this error ends it


class GrammarError(GrammarAEError):
    """A grammar file is missing, unreadable or not a usable CFG."""


class ParseError(GrammarAEError):
    """A string is outside the grammar."""


class SequenceError(GrammarAEError):
    """A production sequence is not a valid derivation of the grammar."""


class DataError(GrammarAEError):
    """A data file is missing, empty, corrupt or in the wrong format."""


class CheckpointError(GrammarAEError):
    """A checkpoint is missing, truncated or does not match what it is used with."""


class TrainingError(GrammarAEError):
    """Training cannot go on (for example a NaN or infinite loss)."""


class ConfigError(GrammarAEError):
    """A configuration value or file is invalid."""


class TrainingInterrupted(TrainingError):
    """Training stopped on a signal after saving a resumable checkpoint; the exit status is
    128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class OutputError(GrammarAEError):
    """An output cannot be written (unwritable, full, or being written by another process)."""


def is_number(value: object, integer: bool = False) -> bool:
    """Whether ``value`` is an int or, unless ``integer``, a float (a bool is neither)."""
    return isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)


def require_counts(settings: object, names: tuple[str, ...], what: str = "") -> None:
    """A ConfigError naming the first of the attributes ``names`` of ``settings`` that is
    below 1 (None, an unset optional count, passes); ``what`` prefixes the name."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ConfigError(f"{what}{name} must be at least 1, got {value}")
