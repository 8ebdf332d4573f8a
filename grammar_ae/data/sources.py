"""Named data sets and where to find them.

A name resolves, in order, to: an explicit path; the directory in ``$GRAMMAR_AE_DATA``;
the user cache (``$GRAMMAR_AE_CACHE`` or ``~/.cache/grammar-ae``); a download from the
public source, verified by checksum. The embedded sets ship with the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from grammar_ae.errors import DataError
from grammar_ae.utils.download import RemoteFile, cache_root, download


@dataclass(frozen=True)
class DataSource:
    name: str
    grammar: str
    file_names: tuple[str, ...]  # accepted names in $GRAMMAR_AE_DATA and the cache
    url: str | None = None
    sha256_uncompressed: str = ""  # of the public (uncompressed) file
    description: str = ""


DATA_SOURCES: dict[str, DataSource] = {
    "zinc250k": DataSource(
        name="zinc250k",
        grammar="smiles",
        file_names=("zinc250k.smi.gz", "zinc250k.smi", "250k_rndm_zinc_drugs_clean.smi"),
        url="https://raw.githubusercontent.com/mkusner/grammarVAE/master/data/250k_rndm_zinc_drugs_clean.smi",
        sha256_uncompressed="f900b46bb42b77aab37cd827d1ea474e2a037ecab2bd7def2b6027492216d36a",
        description="ZINC-250k, 249,456 drug-like molecules (grammar VAE repository)",
    ),
    "expressions": DataSource(
        name="expressions",
        grammar="expressions",
        file_names=("equation2_15_dataset.txt.gz", "equation2_15_dataset.txt"),
        url="https://raw.githubusercontent.com/mkusner/grammarVAE/master/data/equation2_15_dataset.txt",
        sha256_uncompressed="ae9850311e884f888491f56dca57ef3c2f9880899e63d26b5da3b71840591ca2",
        description="100,000 expressions of up to 15 productions (grammar VAE repository)",
    ),
    "moses-sample": DataSource(
        name="moses-sample",
        grammar="smiles",
        file_names=("moses_sample.smi.gz",),
        description="5,000 molecules from the MOSES training set, embedded (MIT license)",
    ),
}

GENERATED_EXPRESSIONS = "expressions-generated"
"""The embedded expression set, drawn from the grammar (``grammar_ae.data.datasets``)."""

DEFAULT_DATA = {"smiles": "moses-sample", "expressions": GENERATED_EXPRESSIONS}


def embedded_path(file_name: str) -> Path:
    """A file shipped with the package (the checkout's data/ when run from source)."""
    try:
        path = Path(str(resources.files("grammar_ae.embedded").joinpath(file_name)))
        if path.is_file():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "data" / file_name


def resolve_data(name_or_path: str | Path, download: bool = True) -> Path:
    """The file of a named data set, or ``name_or_path`` itself if it is a path."""
    key = str(name_or_path)
    source = DATA_SOURCES.get(key)
    if source is None:
        path = Path(key)
        if not path.exists():
            known = ", ".join([*DATA_SOURCES, GENERATED_EXPRESSIONS])
            raise DataError(f"data {key!r}: no such file, and not a named data set ({known})")
        return path
    if source.url is None:
        return embedded_path(source.file_names[0])
    for directory in _search_dirs():
        for file_name in source.file_names:
            candidate = directory / file_name
            if candidate.is_file():
                return candidate
    if not download:
        raise DataError(_missing_message(source))
    return _download(source)


def _search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("GRAMMAR_AE_DATA"):
        dirs.append(Path(os.environ["GRAMMAR_AE_DATA"]))
    dirs.append(cache_root() / "data")
    return dirs


def _missing_message(source: DataSource) -> str:
    return (
        f"data set {source.name!r} ({source.description}) was not found and could not be "
        f"downloaded from {source.url}. Put {source.file_names[0]} (or "
        f"{source.file_names[-1]}) in the directory named by $GRAMMAR_AE_DATA or in "
        f"{cache_root() / 'data'}, or pass the file's path."
    )


def _download(source: DataSource) -> Path:
    remote = RemoteFile(name=source.file_names[-1], url=source.url, sha256=source.sha256_uncompressed)
    try:
        return download(remote, cache_root() / "data")
    except DataError as error:
        raise DataError(f"{_missing_message(source)} ({error})") from None
