"""Exceptions raised for bad input; the CLI prints them as one line and exits non-zero."""


class GrammarAEError(Exception):
    """Base class of every error caused by the user's input or files."""


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


class OutputError(GrammarAEError):
    """An output cannot be written (unwritable, full, or being written by another process)."""
