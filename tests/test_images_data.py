"""Image data loaders on small files written in each real format, plus the real MNIST test split."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from grammar_ae.data.images import sources
from grammar_ae.data.images.datasets import ImageBatchSource, load_image_dataset, train_validation_split
from grammar_ae.errors import ConfigError, DataError
from grammar_ae.utils.download import RemoteFile, download

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GRAMMAR_AE_DATA", REPO.parent / "shared" / "data"))
# From ../shared/data/README.md.
MNIST_TEST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "1488b2253c7678056ecec4d0a5964be6cf8cf6dc6411b21a48d77a497fefe2be",
    "t10k-labels-idx1-ubyte.gz": "daa0ca80179b076764a51a527b4850de26f321125e4d2d55cf279fff0a4b4c4d",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No data folder, a private cache: tests never see the user's files or the network."""
    monkeypatch.delenv("GRAMMAR_AE_DATA", raising=False)
    monkeypatch.setenv("GRAMMAR_AE_CACHE", str(tmp_path / "cache"))


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_mnist_like(folder: Path, split: str, count: int, seed: int, gz: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_an_explicit_folder_is_padded_to_32(tmp_path, gz):
    images, labels = write_mnist_like(tmp_path / "m", "train", 7, seed=1, gz=gz)
    data = load_image_dataset("mnist", path=tmp_path / "m", download_missing=False)
    assert data.images.shape == (7, 1, 32, 32) and data.images.dtype == np.uint8
    assert np.array_equal(data.images[:, 0, 2:30, 2:30], images)
    assert data.images[:, :, :2].max() == 0 and data.images[:, :, :, 30:].max() == 0
    assert data.labels.dtype == np.int64 and np.array_equal(data.labels, labels)
    assert data.image_shape == (1, 32, 32) and len(data.checksum) == 64


def test_resolution_order_data_folder_then_cache(tmp_path, monkeypatch):
    cached, _ = write_mnist_like(tmp_path / "cache" / "fashion-mnist", "test", 3, seed=2, gz=True)
    from_cache = load_image_dataset("fashion-mnist", "test", download_missing=False)
    assert np.array_equal(from_cache.images[:, 0, 2:30, 2:30], cached)
    shared, _ = write_mnist_like(tmp_path / "data" / "fashion-mnist", "test", 4, seed=3, gz=False)
    monkeypatch.setenv("GRAMMAR_AE_DATA", str(tmp_path / "data"))
    data = load_image_dataset("fashion-mnist", "test", download_missing=False)
    assert len(data) == 4 and np.array_equal(data.images[:, 0, 2:30, 2:30], shared)
    assert "data/fashion-mnist" in data.origin


def test_missing_data_offline_says_which_files_go_where(tmp_path):
    with pytest.raises(DataError) as error:
        load_image_dataset("mnist", "train", download_missing=False)
    message = str(error.value)
    for part in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "$GRAMMAR_AE_DATA/mnist/",
                 str(tmp_path / "cache" / "mnist"), "https://"):
        assert part in message
    with pytest.raises(DataError, match="img_align_celeba"):
        load_image_dataset("celeba", download_missing=False)
    with pytest.raises(DataError, match="does not exist"):
        load_image_dataset("svhn", path=tmp_path / "nowhere")
    with pytest.raises(DataError, match="does not hold test_32x32.mat"):
        load_image_dataset("svhn", "test", path=tmp_path)


def test_unknown_name_and_split_are_config_errors():
    with pytest.raises(ConfigError, match="unknown image data set 'imagenet'"):
        load_image_dataset("imagenet")
    with pytest.raises(ConfigError, match="split 'valid'"):
        load_image_dataset("digits", "valid")


BAD_IDX_FILES = [
    ("empty", b"", "the file is empty"),
    ("short-header", bytes([0, 0, 0x08]), "truncated IDX header"),
    ("bad-magic", bytes([0x12, 0x34, 0x08, 3]) + bytes(12), "wrong IDX magic number 0x12340803"),
    ("short-dims", bytes([0, 0, 0x08, 3]) + np.asarray([2, 28], ">u4").tobytes(), "truncated IDX header"),
    ("short-data", idx_bytes(np.zeros((2, 28, 28)))[:-5], "truncated IDX data"),
    ("extra-bytes", idx_bytes(np.zeros((2, 28, 28))) + b"xx", "2 unexpected bytes"),
    ("bad-gzip", gzip.compress(idx_bytes(np.zeros((2, 28, 28))), mtime=0)[:-9], "corrupt or truncated gzip"),
    ("two-dims", idx_bytes(np.zeros((2, 28))), r"expected uint8 images of shape \(N, H, W\)"),
]


# Named ids: pytest-xdist workers must collect identical test names, and byte contents make poor ones.
@pytest.mark.parametrize(
    "content, problem", [case[1:] for case in BAD_IDX_FILES], ids=[case[0] for case in BAD_IDX_FILES]
)
def test_bad_idx_image_files_name_the_file_and_the_problem(tmp_path, content, problem):
    write_mnist_like(tmp_path, "test", 2, seed=0, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(content)
    with pytest.raises(DataError, match=problem) as error:
        load_image_dataset("mnist", "test", path=tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(error.value)


def test_label_count_and_range_are_checked(tmp_path):
    write_mnist_like(tmp_path, "test", 3, seed=0, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2)))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        load_image_dataset("mnist", "test", path=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 3, 12])))
    with pytest.raises(DataError, match=r"labels outside \[0, 10\)"):
        load_image_dataset("mnist", "test", path=tmp_path)


def cifar_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    return pickle.dumps({b"batch_label": b"x", b"data": images.reshape(len(images), -1), b"labels": labels.tolist()})


def write_cifar(folder: Path, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, 3)
        (folder / name).write_bytes(cifar_batch(images, labels))
        written[name] = (images, labels)
    return written


def test_cifar_batches_folder_and_archive(tmp_path):
    written = write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", seed=4)
    train = load_image_dataset("cifar10", path=tmp_path / "cifar10")
    expected = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert train.images.shape == (15, 3, 32, 32) and np.array_equal(train.images, expected)
    assert np.array_equal(train.labels, np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)]))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar10" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    test = load_image_dataset("cifar10", "test", path=archive)
    assert np.array_equal(test.images, written["test_batch"][0])
    (tmp_path / "archive_only").mkdir()
    (tmp_path / "archive_only" / archive.name).write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: corrupt or truncated archive"):
        load_image_dataset("cifar10", "test", path=tmp_path / "archive_only")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


@pytest.mark.parametrize(
    "content, problem",
    [
        (pickle.dumps({b"data": Evil(), b"labels": []}), "refusing to load"),
        (pickle.dumps([1, 2]), "expected a pickled dict"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "no 'data' and 'labels'"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), r"shape \(N, 3072\)"),
        (b"\x80\x04garbage", "not a CIFAR-10 python batch"),
    ],
)
def test_bad_cifar_batches(tmp_path, content, problem):
    write_cifar(tmp_path / "c", seed=0)
    (tmp_path / "c" / "test_batch").write_bytes(content)
    with pytest.raises(DataError, match=problem) as error:
        load_image_dataset("cifar10", "test", path=tmp_path / "c")
    assert "test_batch" in str(error.value)


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.array([[10], [1], [5], [10]], np.uint8)})
    data = load_image_dataset("svhn", path=tmp_path)
    assert data.images.shape == (4, 3, 32, 32)
    assert data.images[2, 1, 7, 9] == x[7, 9, 1, 2]
    assert data.labels.tolist() == [0, 1, 5, 0]
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[0], [1], [2], [3]])})
    with pytest.raises(DataError, match="SVHN labels must be 1..10"):
        load_image_dataset("svhn", "test", path=tmp_path)
    savemat(tmp_path / "test_32x32.mat", {"images": x})
    with pytest.raises(DataError, match="expected variables 'X' and 'y'"):
        load_image_dataset("svhn", "test", path=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file at all, just text" * 8)
    with pytest.raises(DataError, match="test_32x32.mat: not a readable MATLAB file"):
        load_image_dataset("svhn", "test", path=tmp_path)


def face(size=(178, 218), center=(200, 30, 60), border=(10, 220, 10)) -> "PIL.Image.Image":
    from PIL import Image

    image = Image.new("RGB", size, border)
    left, top = (size[0] - 140) // 2, (size[1] - 140) // 2
    image.paste(Image.new("RGB", (140, 140), center), (left, top))
    return image


def test_celeba_crop_resize_partitions_and_cache(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    for index in range(1, 5):
        face(center=(index * 40, 30, 60)).save(folder / f"{index:06d}.png")
    face().save(folder / "000005.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    train = load_image_dataset("celeba", path=tmp_path / "celeba")
    assert train.images.shape == (5, 3, 64, 64) and train.labels is None
    assert (train.images[2] == np.array([120, 30, 60], np.uint8)[:, None, None]).all()  # border cropped away
    assert abs(int(train.images[4, 0].mean()) - 200) < 6  # JPEG, lossy
    cached = list((tmp_path / "cache" / "celeba" / "prepared").glob("train-*.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.zeros_like(train.images))  # the second load must come from the cache
    assert load_image_dataset("celeba", path=tmp_path / "celeba").images.max() == 0

    with pytest.raises(DataError, match="needs list_eval_partition.txt"):
        load_image_dataset("celeba", "test", path=tmp_path / "celeba")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(
        "000001.png 0\n000002.png 0\n000003.png 1\n000004.png 2\n000005.jpg 2\n"
    )
    test = load_image_dataset("celeba", "test", path=tmp_path / "celeba")
    assert len(test) == 2 and (test.images[0] == np.array([160, 30, 60], np.uint8)[:, None, None]).all()
    assert len(load_image_dataset("celeba", "train", path=tmp_path / "celeba")) == 2


def test_bad_celeba_images(tmp_path):
    from PIL import Image

    Image.new("RGB", (120, 150)).save(tmp_path / "000001.png")
    with pytest.raises(DataError, match="000001.png: image is 120x150, smaller than the 140x140 center crop"):
        load_image_dataset("celeba", path=tmp_path)
    (tmp_path / "000001.png").unlink()
    (tmp_path / "000002.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match="000002.jpg: not a readable image"):
        load_image_dataset("celeba", path=tmp_path)


def test_digits_are_embedded_scaled_and_upsampled():
    train, test = load_image_dataset("digits"), load_image_dataset("digits", "test")
    assert train.images.shape == (1498, 1, 16, 16) and len(test) == 299
    assert train.images.max() == 255 and set(np.unique(train.labels)) == set(range(10))
    blocks = train.images[:, 0].reshape(-1, 8, 2, 8, 2)
    assert (blocks == blocks[:, :, :1, :, :1]).all()
    assert train.checksum != test.checksum
    with pytest.raises(ConfigError, match="takes no data path"):
        load_image_dataset("digits", path="/tmp")


def test_train_validation_split_is_seeded_and_disjoint():
    data = load_image_dataset("digits")
    train, validation = train_validation_split(data, 0.2, seed=3)
    again, _ = train_validation_split(data, 0.2, seed=3)
    other, _ = train_validation_split(data, 0.2, seed=4)
    assert len(validation) == round(0.2 * len(data)) and len(train) + len(validation) == len(data)
    assert validation.split == "validation" and np.array_equal(train.images, again.images)
    assert not np.array_equal(train.images, other.images)
    rows = {row.tobytes() + bytes([label]) for row, label in zip(data.images, data.labels)}
    assert {row.tobytes() + bytes([label]) for row, label in zip(train.images, train.labels)} <= rows
    with pytest.raises(ConfigError, match="expected a number in"):
        train_validation_split(data, 1.5)


def test_batch_source_yields_each_image_once_per_pass():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(4, axis=2).repeat(4, axis=3)
    source = ImageBatchSource(images, labels=np.arange(10))
    assert len(source) == 10
    batches = list(source.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4, 2] and batches[0].dtype == torch.uint8
    assert sorted(torch.cat(batches)[:, 0, 0, 0].tolist()) == list(range(10))
    replay = list(source.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, replay))
    assert torch.equal(next(source.batches(3, shuffle=False, generator=None)), torch.from_numpy(images[:3]))


def test_download_verifies_sha256_and_resolution_downloads_into_the_cache(tmp_path, monkeypatch):
    served = tmp_path / "served"
    images, labels = write_mnist_like(served, "test", 5, seed=6, gz=True)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in served.iterdir()}
    good = RemoteFile("t10k-labels-idx1-ubyte.gz", (served / "t10k-labels-idx1-ubyte.gz").as_uri(), "0" * 64)
    with pytest.raises(DataError, match="expected 0000"):
        download(good, tmp_path / "target")
    assert not any((tmp_path / "target").iterdir())  # nothing half-written is left behind

    mirror = sources.IdxSource("mnist", served.as_uri() + "/", digests)
    monkeypatch.setitem(sources.SOURCES, "mnist", mirror)
    data = load_image_dataset("mnist", "test")
    assert np.array_equal(data.images[:, 0, 2:30, 2:30], images) and np.array_equal(data.labels, labels)
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(digests)


def test_real_mnist_test_split(monkeypatch):
    folder = SHARED_DATA / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST test files not in {folder}")
    for name, digest in MNIST_TEST_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    monkeypatch.setenv("GRAMMAR_AE_DATA", str(SHARED_DATA))
    data = load_image_dataset("mnist", "test", download_missing=False)
    assert data.images.shape == (10000, 1, 32, 32) and data.labels.shape == (10000,)
    assert data.labels[:5].tolist() == [7, 2, 1, 0, 4] and np.bincount(data.labels).min() > 850
    assert data.images[:, :, :2].max() == 0 and data.images.max() == 255
