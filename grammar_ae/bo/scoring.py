"""Scoring whole data sets with a target: chunked over worker processes, cached on disk.

The cache lives in ``$GRAMMAR_AE_CACHE`` (default ``~/.cache/grammar-ae``) under
``bo_scores/<target>-v<version>[-rdkit<version>]-<sha256 of the strings>.npy`` (molecule
targets name the RDKit that scored them: another RDKit may compute other values or
canonical forms); scoring ZINC-250k with ``logp`` takes minutes, the cached array loads in
milliseconds. Canonical forms (what tells duplicates apart) are cached the same way under
``bo_keys/``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from grammar_ae.bo.targets import Target
from grammar_ae.utils.download import cache_root
from grammar_ae.utils.files import atomic_write_npy, atomic_write_text


def strings_sha256(strings: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for string in strings:
        digest.update(string.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _toolkit(target: Target) -> str:
    """The chemistry toolkit's version in a cache name, for molecule targets."""
    if target.grammar != "smiles":
        return ""
    import rdkit

    return f"-rdkit{rdkit.__version__}"


def score_cache_path(target: Target, strings: Sequence[str]) -> Path:
    name = f"{target.name}-v{target.version}{_toolkit(target)}-{strings_sha256(strings)}.npy"
    return cache_root() / "bo_scores" / name


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _score_chunk(target: Target, chunk: list[str]) -> list[float | None]:
    return target.score(chunk)


def _key_chunk(target: Target, chunk: list[str]) -> list[str]:
    return [target.key(string) for string in chunk]


def _as_array(scores: list[float | None]) -> np.ndarray:
    return np.array([np.nan if score is None else score for score in scores], dtype=np.float64)


def _map_chunks(function: Callable, target: Target, strings: list[str], workers: int | None, chunk_size: int) -> list:
    """``function(target, chunk)`` over chunks of ``strings``, concatenated; more than one chunk
    is spread over ``workers`` processes (default: the usable cores), unless the target's
    functions live in ``__main__`` (workers could not import them)."""
    workers = default_workers() if workers is None else workers
    chunks = [strings[i : i + chunk_size] for i in range(0, len(strings), chunk_size)]
    in_main = any(getattr(f, "__module__", None) == "__main__" for f in (target.function, target.canonical))
    if workers > 1 and len(chunks) > 1 and not in_main:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            results = list(pool.map(function, [target] * len(chunks), chunks))
    else:
        results = [function(target, chunk) for chunk in chunks]
    return [value for chunk in results for value in chunk]


def score_many(
    target: Target,
    strings: Sequence[str],
    *,
    workers: int | None = None,
    chunk_size: int = 2000,
    cache: bool = True,
) -> np.ndarray:
    """Scores of ``strings`` as float64, NaN where a string is invalid for the target."""
    strings = list(strings)
    path = score_cache_path(target, strings) if cache else None
    if path is not None and path.is_file():
        cached = np.load(path)
        if cached.shape == (len(strings),):
            return cached
    scores = _as_array(_map_chunks(_score_chunk, target, strings, workers, chunk_size))
    if path is not None:
        atomic_write_npy(path, scores)
    return scores


def key_many(target: Target, strings: Sequence[str], *, workers: int | None = None, chunk_size: int = 5000) -> list[str]:
    """``target.key`` of every string; canonical forms (RDKit's, for molecules) are cached
    under ``bo_keys/`` like scores, since canonicalising ZINC-250k takes half a CPU minute."""
    strings = list(strings)
    if target.canonical is None:
        return [target.key(string) for string in strings]
    name = f"{target.canonical.__module__}.{target.canonical.__qualname__}"
    path = cache_root() / "bo_keys" / f"{name}{_toolkit(target)}-{strings_sha256(strings)}.txt"
    if path.is_file():
        cached = path.read_text(encoding="utf-8").split("\n")
        if len(cached) == len(strings):
            return cached
    keys = _map_chunks(_key_chunk, target, strings, workers, chunk_size)
    atomic_write_text(path, "\n".join(keys))
    return keys
