"""Strict readers of the public image file formats, and the shape fixes applied to them.

Every reader returns uint8 images laid out (N, C, H, W) and int64 labels, and raises
`DataError` naming the file and the problem for empty, truncated or malformed input.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path

import numpy as np

from grammar_ae.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not raw:
        raise DataError(f"{path}: the file is empty")
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if not data:
        raise DataError(f"{path}: the gzip stream is empty")
    return data


def read_idx(path: Path) -> np.ndarray:
    """An array from an IDX file (the MNIST format), gzipped or not."""
    data = read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    zero, type_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or type_code not in IDX_DTYPES or ndim == 0:
        raise DataError(f"{path}: wrong IDX magic number 0x{data[:4].hex()} (not an IDX file)")
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise DataError(f"{path}: truncated IDX header (needs {ndim} dimension sizes)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_end
    if found < expected:
        raise DataError(f"{path}: truncated IDX data: dimensions {dims} need {expected} bytes, found {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} unexpected bytes after the IDX data of shape {dims}")
    return np.frombuffer(data, dtype, offset=header_end).reshape(dims).astype(dtype.newbyteorder("="))


def idx_images(path: Path) -> np.ndarray:
    """uint8 images (N, 1, H, W) from an IDX image file."""
    array = read_idx(path)
    if array.ndim != 3 or array.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 images of shape (N, H, W), found {array.dtype} {array.shape}")
    if array.shape[0] == 0:
        raise DataError(f"{path}: the file holds no images")
    return array[:, None]


def idx_labels(path: Path, count: int, num_classes: int) -> np.ndarray:
    """int64 labels from an IDX label file holding ``count`` labels in [0, num_classes)."""
    array = read_idx(path)
    if array.ndim != 1 or array.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 labels of shape (N,), found {array.dtype} {array.shape}")
    return checked_labels(array, count, num_classes, path)


def checked_labels(labels: np.ndarray, count: int, num_classes: int, path: Path | str) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(labels) != count:
        raise DataError(f"{path}: {len(labels)} labels for {count} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels outside [0, {num_classes}): min {labels.min()}, max {labels.max()}")
    return labels


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must not run code."""

    ALLOWED = {
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(data: bytes, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels from one pickled CIFAR-10 python batch."""
    if not data:
        raise DataError(f"{origin}: the file is empty")
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataError(f"{origin}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{origin}: expected a pickled dict, found {type(batch).__name__}")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{origin}: the batch has no 'data' and 'labels' entries (keys: {sorted(map(str, batch))})")
    images = np.asarray(batch["data"])
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise DataError(f"{origin}: 'data' must be uint8 of shape (N, 3072), found {images.dtype} {images.shape}")
    labels = checked_labels(np.asarray(batch["labels"]), len(images), 10, origin)
    return images.reshape(-1, 3, 32, 32), labels


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (digit 0 stored as 10 in the file) from an SVHN .mat file."""
    from scipy.io import loadmat

    if Path(path).stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    try:
        content = loadmat(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises several unrelated types for bad files
        raise DataError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    if "X" not in content or "y" not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DataError(f"{path}: expected variables 'X' and 'y', found {found}")
    images, labels = content["X"], np.asarray(content["y"]).reshape(-1)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: 'X' must be uint8 of shape (32, 32, 3, N), found {images.dtype} {images.shape}")
    if len(labels) and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path}: SVHN labels must be 1..10, found {labels.min()}..{labels.max()}")
    labels = checked_labels(labels % 10, images.shape[3], 10, path)
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels


def read_cropped_image(path: Path, crop: int, size: int) -> np.ndarray:
    """An RGB image (3, size, size): the central crop x crop square, resized with PIL."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    width, height = image.size
    if width < crop or height < crop:
        raise DataError(f"{path}: image is {width}x{height}, smaller than the {crop}x{crop} center crop")
    left, top = (width - crop) // 2, (height - crop) // 2
    image = image.crop((left, top, left + crop, top + crop)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def pad_to(images: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (N, C, H, W) images symmetrically to size x size."""
    height, width = images.shape[2:]
    if height > size or width > size:
        raise DataError(f"cannot pad {height}x{width} images to {size}x{size}")
    top, left = (size - height) // 2, (size - width) // 2
    return np.pad(images, ((0, 0), (0, 0), (top, size - height - top), (left, size - width - left)))


def upsample_nearest(images: np.ndarray, factor: int) -> np.ndarray:
    """Repeat every pixel of (N, C, H, W) images into a factor x factor block."""
    return images.repeat(factor, axis=2).repeat(factor, axis=3)
