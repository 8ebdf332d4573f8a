"""Scoring whole data sets with a target: chunked over worker processes, cached on disk.

The cache lives in ``$GRAMMAR_AE_CACHE`` (default ``~/.cache/grammar-ae``) under
``bo_scores/<target>-v<version>-<sha256 of the strings>.npy``; scoring ZINC-250k with
``logp`` takes minutes, the cached array loads in milliseconds.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from grammar_ae.bo.targets import Target
from grammar_ae.utils.download import cache_root
from grammar_ae.utils.files import atomic_write_npy


def strings_sha256(strings: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for string in strings:
        digest.update(string.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def score_cache_path(target: Target, strings: Sequence[str]) -> Path:
    return cache_root() / "bo_scores" / f"{target.name}-v{target.version}-{strings_sha256(strings)}.npy"


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _score_chunk(target: Target, chunk: list[str]) -> list[float | None]:
    return target.score(chunk)


def _as_array(scores: list[float | None]) -> np.ndarray:
    return np.array([np.nan if score is None else score for score in scores], dtype=np.float64)


def score_many(
    target: Target,
    strings: Sequence[str],
    *,
    workers: int | None = None,
    chunk_size: int = 2000,
    cache: bool = True,
) -> np.ndarray:
    """Scores of ``strings`` as float64, NaN where a string is invalid for the target.

    More than one chunk is spread over ``workers`` processes (default: the usable cores),
    unless the target's function lives in ``__main__`` (workers could not import it).
    """
    strings = list(strings)
    path = score_cache_path(target, strings) if cache else None
    if path is not None and path.is_file():
        cached = np.load(path)
        if cached.shape == (len(strings),):
            return cached
    workers = default_workers() if workers is None else workers
    chunks = [strings[i : i + chunk_size] for i in range(0, len(strings), chunk_size)]
    parallel = workers > 1 and len(chunks) > 1 and target.function.__module__ != "__main__"
    if parallel:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            results = list(pool.map(_score_chunk, [target] * len(chunks), chunks))
    else:
        results = [_score_chunk(target, chunk) for chunk in chunks]
    scores = _as_array([score for chunk in results for score in chunk])
    if path is not None:
        atomic_write_npy(path, scores)
    return scores
