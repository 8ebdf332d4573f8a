"""Named image data sets as compact uint8 arrays, their splits, and batches for training.

Where the files of a data set are looked for, in order:
1. the ``path`` given by the caller (a folder; for cifar10 also the tar.gz);
2. ``$GRAMMAR_AE_DATA/<name>/``;
3. the cache folder ``$GRAMMAR_AE_CACHE/<name>/`` (default ``~/.cache/grammar-ae/<name>/``);
4. a download of the public files into that cache folder, verified by sha256.
"digits" is embedded in scikit-learn and needs no files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grammar_ae.data.images.sources import SPLITS, ImageSource, get_source
from grammar_ae.data.tensors import TensorBatchSource
from grammar_ae.errors import ConfigError, DataError
from grammar_ae.utils.download import CACHE_ENV, cache_root, download

DATA_ENV = "GRAMMAR_AE_DATA"


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """uint8 images (N, C, H, W), int64 labels (N,) or None, and where they came from."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray | None
    origin: str

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            found = f"{self.images.dtype} {self.images.shape}"
            raise DataError(f"{self.name}: images must be uint8 (N, C, H, W), found {found}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise DataError(f"{self.name}: {len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        return tuple(int(d) for d in self.images.shape[1:])

    @cached_property
    def checksum(self) -> str:
        """sha256 of the image bytes, shape and labels: identifies exactly the data used."""
        digest = hashlib.sha256(str(self.images.shape).encode())
        digest.update(np.ascontiguousarray(self.images).data)
        if self.labels is not None:
            digest.update(self.labels.astype("<i8").tobytes())
        return digest.hexdigest()

    def subset(self, indices: np.ndarray | slice, split: str | None = None) -> ImageDataset:
        labels = None if self.labels is None else self.labels[indices]
        return ImageDataset(self.name, split or self.split, self.images[indices], labels, self.origin)


def load_image_dataset(
    name: str, split: str = "train", path: str | os.PathLike | None = None, download_missing: bool = True
) -> ImageDataset:
    """Load a named data set's split ("train" or "test"); see the module docstring for where from."""
    source = get_source(name)
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    found = _locate(source, split, None if path is None else Path(path).expanduser(), download_missing)
    images, labels = source.read(found, split)
    origin = ", ".join(map(str, found)) if isinstance(found, tuple) else str(found)
    return ImageDataset(name, split, images, labels, origin)


def train_validation_split(
    dataset: ImageDataset, validation_fraction: float = 0.1, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """A seeded random split into training and validation parts."""
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(f"validation fraction {validation_fraction}: expected a number in (0, 1)")
    count = int(round(len(dataset) * validation_fraction))
    if count == 0 or count == len(dataset):
        raise ConfigError(f"validation fraction {validation_fraction} of {len(dataset)} images leaves a part empty")
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.subset(np.sort(order[count:])), dataset.subset(np.sort(order[:count]), split="validation")


def _locate(source: ImageSource, split: str, path: Path | None, download_missing: bool) -> Any:
    if source.embedded:
        if path is not None:
            raise ConfigError(f"{source.name} is embedded in scikit-learn and takes no data path")
        return source.find(None, split)
    if path is not None:
        if not path.exists():
            raise DataError(f"{source.name}: {path} does not exist")
        found = source.find(path, split)
        if found is None:
            raise DataError(f"{source.name} ({split} split): {path} does not hold {source.expected(split)}")
        return found
    cache = cache_root() / source.name
    for folder in (_data_folder(source.name), cache):
        if folder is not None and folder.is_dir() and (found := source.find(folder, split)) is not None:
            return found
    remotes = source.remote(split)
    if download_missing and remotes:
        try:
            for remote in remotes:
                if not (cache / remote.name).is_file():
                    download(remote, cache)
        except DataError as exc:
            raise DataError(f"{exc}. {_instructions(source, split)}") from exc
        return source.find(cache, split)
    raise DataError(_instructions(source, split, offline=bool(remotes)))


def _data_folder(name: str) -> Path | None:
    root = os.environ.get(DATA_ENV)
    return Path(root).expanduser() / name if root else None


def _instructions(source: ImageSource, split: str, offline: bool = False) -> str:
    data = _data_folder(source.name)
    places = f"${DATA_ENV}/{source.name}/" + (f" (now {data}/)" if data else " (set the variable)")
    text = (
        f"{source.name} ({split} split) not found: put {source.expected(split)} in {places} "
        f"or in {cache_root() / source.name}/ (${CACHE_ENV}), or pass the folder as the data path"
    )
    if offline:
        urls = ", ".join(r.url for r in source.remote(split))
        text += f"; or allow the download of {urls}"
    return text


class ImageBatchSource(TensorBatchSource):
    """Batches of uint8 image tensors (B, C, H, W); the model converts them to floats.

    The labels stay aside (for clustering accuracy); batches hold images only.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None):
        super().__init__(torch.from_numpy(np.ascontiguousarray(images)))
        self.labels = labels

    @classmethod
    def from_dataset(cls, dataset: ImageDataset) -> ImageBatchSource:
        return cls(dataset.images, dataset.labels)
