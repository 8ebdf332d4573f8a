"""Readers for string data files: SMILES (.smi, .csv, gzipped or not) and expressions.

Every reader returns the strings with their 1-based line numbers, so that a line that
is skipped later can be reported by where it stands in the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

from grammar_ae.errors import DataError


@dataclass(frozen=True)
class StringRecords:
    """Strings read from a file, with their line numbers and the lines that held none."""

    path: Path
    strings: list[str]
    line_numbers: list[int]
    blank_lines: list[int]


def read_strings(path: str | Path, column: str | None = None) -> StringRecords:
    """Read one string per record.

    - ``.csv``/``.csv.gz``: the ``smiles`` column (any case) or ``column``; values are
      stripped, which handles the chemical VAE CSV whose SMILES end in a newline.
    - ``.smi``/``.smi.gz``: the first whitespace-separated field of each line.
    - anything else (``.txt``, ``.txt.gz``): the whole line, stripped (expressions keep
      their inner spaces).
    """
    path = Path(path)
    text = read_text(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        records = _read_csv(path, text, column)
    else:
        first_field = name.endswith(".smi")
        records = _read_lines(path, text, first_field)
    if not records.strings:
        raise DataError(f"{path}: holds no strings (empty file)")
    return records


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file, gzipped or not, without a byte-order mark; DataError when it
    cannot be read."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: corrupt or truncated gzip file ({error})") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None


def _collect(path: Path, numbered_values) -> StringRecords:
    """Records from (line number, value) pairs; empty values are kept as blank lines."""
    strings, numbers, blanks = [], [], []
    for number, value in numbered_values:
        if value:
            strings.append(value)
            numbers.append(number)
        else:
            blanks.append(number)
    return StringRecords(path, strings, numbers, blanks)


def _read_lines(path: Path, text: str, first_field: bool) -> StringRecords:
    return _collect(
        path,
        (
            (number, line.split()[0] if first_field and line.strip() else line.strip())
            for number, line in enumerate(text.splitlines(), start=1)
        ),
    )


def _read_csv(path: Path, text: str, column: str | None) -> StringRecords:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: holds no strings (empty file)")
    wanted = (column or "smiles").lower()
    columns = [h.strip().lower() for h in header]
    if wanted not in columns:
        raise DataError(f"{path}: no column {wanted!r} (columns: {', '.join(header)})")
    index = columns.index(wanted)
    return _collect(path, ((reader.line_num, row[index].strip() if index < len(row) else "") for row in reader))
