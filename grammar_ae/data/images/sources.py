"""The image data sets the toolkit knows: which files each split needs, how to read them,
and where the public copies are.

Each source turns a directory (or archive) into uint8 images (N, C, H, W) and int64 labels.
MNIST-like 28x28 images are zero-padded to 32x32; the 8x8 scikit-learn digits are scaled
from 0..16 to 0..255 and every pixel repeated into a 2x2 block (16x16), which keeps the
values exact and avoids a border of constant pixels; CelebA faces are center-cropped to
140x140 and resized to 64x64.
"""

from __future__ import annotations

import hashlib
import tarfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grammar_ae.data.images import formats
from grammar_ae.errors import ConfigError, DataError
from grammar_ae.utils.download import RemoteFile, cache_root
from grammar_ae.utils.files import atomic_path

SPLITS = ("train", "test")
Arrays = tuple[np.ndarray, "np.ndarray | None"]


class ImageSource(ABC):
    """One named data set: where its files are, and how they become arrays."""

    name: str
    embedded = False  # shipped with a library: no files to look for

    @abstractmethod
    def find(self, path: Path, split: str) -> Any | None:
        """What ``read`` needs for ``split`` under ``path``, or None when it is not there."""

    @abstractmethod
    def read(self, found: Any, split: str) -> Arrays:
        """Images and labels (None without labels) of one split."""

    @abstractmethod
    def expected(self, split: str) -> str:
        """The files a user must provide for ``split``, in words."""

    def remote(self, split: str) -> tuple[RemoteFile, ...]:
        """Public files to download for ``split`` (empty: no automatic download)."""
        return ()


def _first_existing(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


@dataclass(frozen=True)
class IdxSource(ImageSource):
    """MNIST-format data sets: IDX image and label files per split, gzipped or not."""

    name: str
    base_url: str
    sha256: dict[str, str]  # file name (.gz) -> digest of the public copy

    STEMS = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def find(self, path: Path, split: str) -> tuple[Path, Path] | None:
        images, labels = (_first_existing(path, (f"{s}.gz", s)) for s in self.STEMS[split])
        return (images, labels) if images and labels else None

    def read(self, found: tuple[Path, Path], split: str) -> Arrays:
        images = formats.idx_images(found[0])
        labels = formats.idx_labels(found[1], len(images), 10)
        return formats.pad_to(images, 32), labels

    def expected(self, split: str) -> str:
        return " and ".join(f"{s}.gz (or {s})" for s in self.STEMS[split])

    def remote(self, split: str) -> tuple[RemoteFile, ...]:
        names = [f"{s}.gz" for s in self.STEMS[split]]
        return tuple(RemoteFile(n, self.base_url + n, self.sha256[n]) for n in names)


@dataclass(frozen=True)
class CifarSource(ImageSource):
    """CIFAR-10 python batches, unpacked (cifar-10-batches-py/) or inside the tar.gz."""

    name: str = "cifar10"
    ARCHIVE = RemoteFile(
        "cifar-10-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    )
    FOLDER = "cifar-10-batches-py"
    BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

    def find(self, path: Path, split: str) -> Path | None:
        if path.is_file():
            return path if path.name.endswith((".tar.gz", ".tgz", ".tar")) else None
        for folder in (path / self.FOLDER, path):
            if all((folder / b).is_file() for b in self.BATCHES[split]):
                return folder
        return _first_existing(path, (self.ARCHIVE.name,))

    def read(self, found: Path, split: str) -> Arrays:
        if found.is_dir():
            blobs = [(str(found / b), formats.read_bytes(found / b)) for b in self.BATCHES[split]]
        else:
            blobs = self._archive_members(found, split)
        parts = [formats.read_cifar_batch(data, origin) for origin, data in blobs]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _archive_members(self, archive: Path, split: str) -> list[tuple[str, bytes]]:
        try:
            with tarfile.open(archive) as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                missing = [b for b in self.BATCHES[split] if b not in members]
                if missing:
                    raise DataError(f"{archive}: the archive has no {', '.join(missing)}")
                return [(f"{archive}:{b}", tar.extractfile(members[b]).read()) for b in self.BATCHES[split]]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: corrupt or truncated archive ({exc})") from exc

    def expected(self, split: str) -> str:
        return f"{self.ARCHIVE.name}, or its {self.FOLDER}/ folder with {', '.join(self.BATCHES[split])}"

    def remote(self, split: str) -> tuple[RemoteFile, ...]:
        return (self.ARCHIVE,)


@dataclass(frozen=True)
class SvhnSource(ImageSource):
    """SVHN cropped digits: train_32x32.mat / test_32x32.mat."""

    name: str = "svhn"
    BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
    SHA256 = {
        "train_32x32.mat": "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
        "test_32x32.mat": "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
    }

    def find(self, path: Path, split: str) -> Path | None:
        return _first_existing(path, (f"{split}_32x32.mat",))

    def read(self, found: Path, split: str) -> Arrays:
        return formats.read_svhn_mat(found)

    def expected(self, split: str) -> str:
        return f"{split}_32x32.mat"

    def remote(self, split: str) -> tuple[RemoteFile, ...]:
        name = f"{split}_32x32.mat"
        return (RemoteFile(name, self.BASE_URL + name, self.SHA256[name]),)


@dataclass(frozen=True)
class CelebaSource(ImageSource):
    """Aligned CelebA faces (img_align_celeba/), 140x140 center crop resized to 64x64.

    With ``list_eval_partition.txt`` beside the images (or one folder up) the train split is
    partition 0 and the test split partition 2; without it every image is training data.
    Decoded arrays are cached under the cache directory, keyed by the file list.
    """

    name: str = "celeba"
    crop: int = 140
    size: int = 64
    FOLDER = "img_align_celeba"
    PARTITIONS = "list_eval_partition.txt"
    SUFFIXES = (".jpg", ".jpeg", ".png")

    def find(self, path: Path, split: str) -> Path | None:
        for folder in (path / self.FOLDER, path):
            if folder.is_dir() and any(self._is_image(f) for f in folder.iterdir()):
                return folder
        return None

    def _is_image(self, path: Path) -> bool:
        return path.suffix.lower() in self.SUFFIXES and path.is_file()

    def read(self, found: Path, split: str) -> Arrays:
        files = self._split_files(found, split)
        return self._cached_decode(files, split), None

    def _split_files(self, folder: Path, split: str) -> list[Path]:
        files = sorted(f for f in folder.iterdir() if self._is_image(f))
        partitions = _first_existing(folder, (self.PARTITIONS,)) or _first_existing(folder.parent, (self.PARTITIONS,))
        if partitions is None:
            if split == "test":
                raise DataError(f"{folder}: the celeba test split needs {self.PARTITIONS} beside the images")
            return files
        wanted = {"train": "0", "test": "2"}[split]
        chosen = set()
        for number, line in enumerate(partitions.read_text().splitlines(), 1):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise DataError(f"{partitions}:{number}: expected '<image name> <0|1|2>', found {line!r}")
            if fields[1] == wanted:
                chosen.add(fields[0])
        selected = [f for f in files if f.name in chosen]
        if not selected:
            raise DataError(f"{folder}: no image of the {split} split listed in {partitions} is present")
        return selected

    def _cached_decode(self, files: list[Path], split: str) -> np.ndarray:
        listing = "\n".join(f"{f.name} {f.stat().st_size} {f.stat().st_mtime_ns}" for f in files)
        key = hashlib.sha256(f"{self.crop} {self.size}\n{files[0].parent.resolve()}\n{listing}".encode()).hexdigest()
        cached = cache_root() / self.name / "prepared" / f"{split}-{key[:16]}.npy"
        if cached.is_file():
            return np.load(cached)
        images = np.stack([formats.read_cropped_image(f, self.crop, self.size) for f in files])
        with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
            np.save(handle, images)
        return images

    def expected(self, split: str) -> str:
        partitions = f" and {self.PARTITIONS}" if split == "test" else ""
        return (
            f"the aligned images ({self.FOLDER}/*.jpg from img_align_celeba.zip on the CelebA web site){partitions}"
        )


@dataclass(frozen=True)
class DigitsSource(ImageSource):
    """scikit-learn's 8x8 digits (1,797 images, shipped with the library, always offline).

    There is no official split: every sixth image (index % 6 == 5) is the test split.
    """

    name: str = "digits"
    embedded = True
    TEST_EVERY = 6

    def find(self, path: Path | None, split: str) -> str:
        return "sklearn.datasets.load_digits"

    def read(self, found: str, split: str) -> Arrays:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        test = np.arange(len(images)) % self.TEST_EVERY == self.TEST_EVERY - 1
        keep = test if split == "test" else ~test
        return formats.upsample_nearest(images[keep], 2), digits.target[keep].astype(np.int64)

    def expected(self, split: str) -> str:
        return "nothing (embedded in scikit-learn)"


MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

SOURCES: dict[str, ImageSource] = {
    "digits": DigitsSource(),
    "mnist": IdxSource("mnist", "https://storage.googleapis.com/cvdf-datasets/mnist/", MNIST_SHA256),
    "fashion-mnist": IdxSource(
        "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", FASHION_SHA256
    ),
    "cifar10": CifarSource(),
    "svhn": SvhnSource(),
    "celeba": CelebaSource(),
}


def get_source(name: str) -> ImageSource:
    if name not in SOURCES:
        raise ConfigError(f"unknown image data set {name!r}; expected one of {', '.join(SOURCES)}")
    return SOURCES[name]
