"""Parse a string data set once and store it as compact integer arrays, with a cache.

A prepared directory holds ragged arrays (never one-hot): ``sequences.npy`` (all rule
sequences back to back, int8 when the grammar has at most 127 rules) with
``offsets.npy``, the same for characters (``characters.npy``, ``character_offsets.npy``),
``strings.txt``, ``summary.json`` (counts, checksums, grammar hash, alphabet) and
``skipped.tsv`` (every line that was not used, with the reason).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from grammar_ae.chemistry import STRING_FORMS, in_form
from grammar_ae.data.readers import read_strings
from grammar_ae.utils.download import cache_root
from grammar_ae.errors import ConfigError, DataError, GrammarAEError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser
from grammar_ae.grammar.tokenize import Tokenizer
from grammar_ae.utils.files import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from grammar_ae.utils.progress import progress_bar, warn
from grammar_ae.utils.provenance import provenance

PADDING_CHARACTER = " "
_ARRAYS = ("sequences", "offsets", "characters", "character_offsets")
_CHUNK = 2000
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ParsedStrings:
    sequences: np.ndarray  # flat rule indices
    offsets: np.ndarray  # (N + 1,) start of each kept string's sequence
    kept: np.ndarray  # (N,) indices into the input strings
    errors: list[tuple[int, str]]  # (input index, reason) of every string not kept


def parse_strings(grammar: Grammar, strings: list[str], workers: int | None = None, progress: bool = True) -> ParsedStrings:
    """Parse ``strings`` on every core, keeping the input order."""
    workers = workers or _available_cores()
    chunks = [(start, strings[start : start + _CHUNK]) for start in range(0, len(strings), _CHUNK)]
    results = []
    with progress_bar(f"parsing {len(strings):,} strings", total=len(strings), enabled=progress) as advance:
        if workers == 1 or len(chunks) == 1:
            _init_worker(grammar)
            for chunk in chunks:
                results.append(_parse_chunk(chunk))
                advance(len(chunk[1]))
        else:
            context = multiprocessing.get_context("fork")
            with context.Pool(workers, initializer=_init_worker, initargs=(grammar,)) as pool:
                for result in pool.imap(_parse_chunk, chunks):
                    results.append(result)
                    advance(len(result[1]))
    sequences = [r[0] for r in results]
    lengths = np.concatenate([r[1] for r in results]) if results else np.zeros(0, np.int64)
    kept = np.concatenate([r[2] for r in results]) if results else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    dtype = np.int8 if grammar.num_rules <= 127 else np.int16
    flat = np.concatenate(sequences).astype(dtype) if sequences else np.zeros(0, dtype)
    return ParsedStrings(flat, offsets, kept, [e for r in results for e in r[3]])


_WORKER_PARSER: Parser | None = None


def _init_worker(grammar: Grammar) -> None:
    global _WORKER_PARSER
    _WORKER_PARSER = Parser(grammar)


def _parse_chunk(chunk: tuple[int, list[str]]):
    start, strings = chunk
    parser = _WORKER_PARSER
    sequences, lengths, kept, errors = [], [], [], []
    for i, text in enumerate(strings, start=start):
        try:
            sequence = parser.parse(text)
        except GrammarAEError as error:
            errors.append((i, str(error)))
            continue
        sequences.append(sequence)
        lengths.append(len(sequence))
        kept.append(i)
    flat = np.concatenate(sequences) if sequences else np.zeros(0, np.int16)
    return flat, np.asarray(lengths, np.int64), np.asarray(kept, np.int64), errors


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class PreparedData:
    """A prepared data set: strings, rule sequences and character codes as ragged arrays."""

    def __init__(self, directory: Path, summary: dict, arrays: dict[str, np.ndarray], strings: list[str]):
        self.directory = directory
        self.summary = summary
        self.strings = strings
        self.sequences = arrays["sequences"]
        self.offsets = arrays["offsets"]
        self.characters = arrays["characters"]
        self.character_offsets = arrays["character_offsets"]

    def __len__(self) -> int:
        return len(self.strings)

    @property
    def grammar_hash(self) -> str:
        return self.summary["grammar_hash"]

    @property
    def input_sha256(self) -> str:
        return self.summary["input_sha256"]

    @property
    def alphabet(self) -> list[str]:
        return self.summary["alphabet"]

    @property
    def max_characters(self) -> int:
        return self.summary["max_characters"]

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def padded_sequences(self, indices: np.ndarray, length: int, padding_rule: int) -> np.ndarray:
        """(B, length) rule indices of the given items, padded with the padding rule."""
        return _pad(self.sequences, self.offsets, indices, length, padding_rule)

    def padded_characters(self, indices: np.ndarray, length: int | None = None) -> np.ndarray:
        """(B, length) alphabet indices of the given items, padded with the padding character."""
        return _pad(self.characters, self.character_offsets, indices, length or self.max_characters, 0)

    @classmethod
    def load(cls, directory: str | Path) -> PreparedData:
        """Load and verify a prepared directory; anything missing or altered is a DataError."""
        directory = Path(directory)
        summary_path = directory / "summary.json"
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            checksums = summary["array_sha256"]
            if summary.get("format_version") != FORMAT_VERSION:
                raise KeyError("format_version")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{directory}: not a prepared data set ({summary_path}: {error})") from None
        arrays = {}
        for name in _ARRAYS:
            path = directory / f"{name}.npy"
            if not path.is_file() or sha256_file(path) != checksums.get(name):
                raise DataError(f"{directory}: {name}.npy is missing or does not match its checksum")
            arrays[name] = np.load(path, allow_pickle=False)
        strings_path = directory / "strings.txt"
        if not strings_path.is_file() or sha256_file(strings_path) != checksums.get("strings"):
            raise DataError(f"{directory}: strings.txt is missing or does not match its checksum")
        strings = strings_path.read_text(encoding="utf-8").splitlines()
        if len(strings) != len(arrays["offsets"]) - 1 or len(strings) != summary.get("parsed"):
            raise DataError(f"{directory}: strings.txt and the arrays disagree on the number of items")
        return cls(directory, summary, arrays, strings)


def _pad(flat: np.ndarray, offsets: np.ndarray, indices: np.ndarray, length: int, fill: int) -> np.ndarray:
    indices = np.asarray(indices)
    starts = offsets[indices]
    lengths = np.minimum(offsets[indices + 1] - starts, length)
    steps = np.arange(length)
    valid = steps[None, :] < lengths[:, None]
    out = np.full((len(indices), length), fill, dtype=np.int64)
    out[valid] = flat[(starts[:, None] + steps[None, :])[valid]]
    return out


def prepare(
    input_path: str | Path,
    grammar: Grammar,
    output: str | Path,
    workers: int | None = None,
    progress: bool = True,
    form: str = "as-written",
) -> PreparedData:
    """Parse every string of ``input_path`` and write a prepared directory at ``output``;
    ``form`` "kekule" rewrites SMILES as canonical Kekulé SMILES first (``chemistry.in_form``)."""
    started = time.perf_counter()
    input_path = Path(input_path)
    records = read_strings(input_path)
    strings, form_errors = _in_form(records.strings, form, progress)
    usable = np.flatnonzero([text is not None for text in strings])
    parsed = parse_strings(grammar, [strings[i] for i in usable], workers=workers, progress=progress)
    errors = sorted(form_errors + [(int(usable[i]), reason) for i, reason in parsed.errors])
    parsed = ParsedStrings(parsed.sequences, parsed.offsets, usable[parsed.kept], errors)
    if len(parsed.kept) == 0:
        first = parsed.errors[0][1] if parsed.errors else "no strings"
        raise DataError(f"{input_path}: no line could be parsed with the {grammar.name} grammar (first error: {first})")
    tokenizer = Tokenizer(grammar)
    kept_strings = [tokenizer.normalize(strings[i]) for i in parsed.kept.tolist()]
    alphabet = [PADDING_CHARACTER] + sorted(set("".join(kept_strings)) - {PADDING_CHARACTER})
    if len(alphabet) > 255:
        raise DataError(f"{input_path}: {len(alphabet)} distinct characters, more than 255")
    characters, character_offsets = _encode_characters(kept_strings, alphabet)

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    checksums = {}
    arrays = {
        "sequences": parsed.sequences,
        "offsets": parsed.offsets,
        "characters": characters,
        "character_offsets": character_offsets,
    }
    for name, array in arrays.items():
        path = output / f"{name}.npy"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
        checksums[name] = sha256_file(path)
    atomic_write_text(output / "strings.txt", "".join(s + "\n" for s in kept_strings))
    checksums["strings"] = sha256_file(output / "strings.txt")
    skipped_rows = ["line\tstring\treason"]
    skipped_rows += [f"{n}\t\tempty line" for n in records.blank_lines]
    skipped_rows += [
        f"{records.line_numbers[i]}\t{records.strings[i]}\t{reason}" for i, reason in parsed.errors
    ]
    atomic_write_text(output / "skipped.tsv", "\n".join(skipped_rows) + "\n")
    lengths = np.diff(parsed.offsets)
    summary = {
        "format_version": FORMAT_VERSION,
        "input": str(input_path),
        "input_sha256": sha256_file(input_path),
        "grammar": grammar.name,
        "grammar_hash": grammar.hash,
        "form": form,
        "total": len(records.strings) + len(records.blank_lines),
        "parsed": int(len(parsed.kept)),
        "skipped": len(parsed.errors) + len(records.blank_lines),
        "max_length": int(lengths.max()),
        "mean_length": float(lengths.mean()),
        "grammar_max_length": grammar.max_length,
        "alphabet": alphabet,
        "max_characters": int(np.diff(character_offsets).max()),
        "seconds": round(time.perf_counter() - started, 3),
        "bytes_in_memory": int(sum(a.nbytes for a in arrays.values())),
        "array_sha256": checksums,
        "provenance": provenance(),
    }
    atomic_write_json(output / "summary.json", summary)
    return PreparedData(output, summary, arrays, kept_strings)


def _in_form(strings: list[str], form: str, progress: bool) -> tuple[list[str | None], list[tuple[int, str]]]:
    """The strings in ``form`` (None where they cannot be written so) and an error per failure."""
    if form == "as-written":
        return strings, []
    if form not in STRING_FORMS:
        raise ConfigError(f"form {form!r} is unknown; expected one of {', '.join(STRING_FORMS)}")
    converted: list[str | None] = []
    with progress_bar(f"writing {len(strings):,} SMILES in {form} form", total=len(strings), enabled=progress) as advance:
        for start in range(0, len(strings), _CHUNK):
            converted += [in_form(text, form) for text in strings[start : start + _CHUNK]]
            advance(min(_CHUNK, len(strings) - start))
    errors = [(i, f"RDKit cannot write it in {form} form") for i, text in enumerate(converted) if text is None]
    return converted, errors


def _encode_characters(strings: list[str], alphabet: list[str]) -> tuple[np.ndarray, np.ndarray]:
    lookup = np.zeros(0x110000 if any(ord(c) > 255 for c in alphabet) else 256, dtype=np.uint8)
    for index, character in enumerate(alphabet):
        lookup[ord(character)] = index
    joined = "".join(strings)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strings], out=offsets[1:])
    return lookup[codes], offsets


def prepare_cached(input_path: str | Path, grammar: Grammar, progress: bool = True, form: str = "as-written") -> PreparedData:
    """Prepared data for (input, grammar, form), parsed once and reused; a corrupt cache is rebuilt."""
    input_path = Path(input_path)
    key = f"{sha256_file(input_path)[:16]}-{grammar.hash}" + ("" if form == "as-written" else f"-{form}")
    directory = cache_root() / "prepared" / key
    if (directory / "summary.json").exists():
        try:
            return PreparedData.load(directory)
        except DataError as error:
            warn(f"rebuilding the prepared-data cache: {error}")
    return prepare(input_path, grammar, directory, progress=progress, form=form)
