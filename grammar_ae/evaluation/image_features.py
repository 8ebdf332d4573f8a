"""Feature extractors for sample-quality metrics; each one names itself in every result.

- ``InceptionFeatures`` ("inception-v3-fid:<sha256 prefix>"): the standard FID Inception v3
  network, read from a local TorchScript file (NVIDIA's ``inception-2015-12-05.pt`` as used
  by StyleGAN2-ADA and clean-fid, which takes float images in [0, 255] and returns 2048 pool
  features when called with ``return_features=True``); ``fetch_inception`` downloads it
  into the cache. Only these features give FIDs comparable to papers.
- ``ClassifierFeatures`` ("lenet-fallback:<key>"): the offline fallback. A small CNN is
  trained once (seeded) to classify the data set's labelled training images; its
  penultimate layer gives the features. It is cached under the cache directory by the
  checksum of its training data and its settings, and the key is part of its name, so
  numbers are only compared between runs that used the same network.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grammar_ae.data.images.datasets import ImageDataset
from grammar_ae.errors import CheckpointError, DataError
from grammar_ae.utils.download import RemoteFile, cache_root, download
from grammar_ae.utils.files import atomic_path, sha256_file

INCEPTION_FILE = "pt_inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_SIZE = 299


class FeatureExtractor(Protocol):
    name: str

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 images (B, C, H, W) -> float features (B, D)."""


@torch.no_grad()
def extract_features(extractor: FeatureExtractor, images: np.ndarray | Tensor, batch_size: int = 256) -> np.ndarray:
    """Features of uint8 images (N, C, H, W), computed batch by batch."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(f"feature extraction needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    parts = [extractor(chunk).double().cpu() for chunk in images.split(batch_size)]
    return torch.cat(parts).numpy()


def to_unit_float(images: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return images.float().div_(255.0)


class InceptionFeatures:
    """2048-d pool features of the FID Inception v3 network (TorchScript file).

    ``name`` carries the first 12 hex digits of the file's sha256, so results computed with
    different weights files are never mixed up.
    """

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu"):
        path = Path(path).expanduser() if path is not None else cache_root() / INCEPTION_FILE
        if not path.is_file():
            raise DataError(
                f"FID Inception network not found at {path}: save NVIDIA's TorchScript "
                f"'inception-2015-12-05.pt' (the StyleGAN2-ADA / clean-fid FID network) as "
                f"{cache_root() / INCEPTION_FILE} or pass it with --inception PATH; without it, "
                "use the offline fallback features (lenet-fallback)"
            )
        try:
            self.model = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"{path}: not a TorchScript model ({exc})") from exc
        self.device = torch.device(device)
        self.name = f"inception-v3-fid:{sha256_file(path)[:12]}"

    def __call__(self, images: Tensor) -> Tensor:
        x = images.to(self.device).float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        return self.model(x, return_features=True)


def fetch_inception(url: str = INCEPTION_URL) -> InceptionFeatures:
    """Download the FID Inception network into the cache and check that it loads.

    NVIDIA publishes no checksum for the file; its sha256 becomes part of the extractor's
    name instead. A file that does not load as TorchScript is removed again.
    """
    path = download(RemoteFile(INCEPTION_FILE, url, None), cache_root())
    try:
        return InceptionFeatures(path)
    except DataError:
        path.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class FallbackConfig:
    """Training settings of the fallback classifier; they are part of its cache key."""

    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 1e-3
    max_images: int = 20000
    validation_fraction: float = 0.1
    feature_dim: int = 128
    seed: int = 0


class SmallClassifier(nn.Module):
    """Two conv/pool blocks, a dense feature layer and a class head (any side >= 4)."""

    def __init__(self, channels: int, num_classes: int, feature_dim: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(32 * 4 * 4, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class ClassifierFeatures:
    """Penultimate-layer features of a small CNN trained on the data set's labels."""

    def __init__(self, model: SmallClassifier, key: str, validation_accuracy: float):
        self.model = model.eval()
        self.key = key
        self.validation_accuracy = validation_accuracy
        self.name = f"lenet-fallback:{key[:12]}"

    def __call__(self, images: Tensor) -> Tensor:
        return self.model.features(to_unit_float(images))

    @classmethod
    def for_dataset(
        cls, dataset: ImageDataset, config: FallbackConfig = FallbackConfig(), cache_dir: Path | None = None
    ) -> ClassifierFeatures:
        """The cached network for ``dataset`` (its labelled training images), trained if absent."""
        if dataset.labels is None:
            raise DataError(
                f"{dataset.name}: the fallback feature network learns from labels and this data set has "
                "none; use the FID Inception network (--inception PATH)"
            )
        key = hashlib.sha256(f"{dataset.checksum} {json.dumps(asdict(config), sort_keys=True)}".encode()).hexdigest()
        path = (cache_dir or cache_root() / "features") / f"lenet-fallback-{key[:16]}.pt"
        if path.is_file():
            model = _classifier_for(dataset, config)
            return cls(model, key, _load_into(model, path, key))
        model, accuracy = _train_classifier(dataset, config)
        with atomic_path(path) as tmp:
            torch.save({"key": key, "validation_accuracy": accuracy, "state_dict": model.state_dict()}, tmp)
        return cls(model, key, accuracy)


def _load_into(model: SmallClassifier, path: Path, key: str) -> float:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") != key:
            raise CheckpointError(f"{path}: cached feature network was made for other data or settings")
        model.load_state_dict(saved["state_dict"])
    except (pickle.UnpicklingError, RuntimeError, OSError, KeyError, AttributeError, EOFError) as exc:
        raise CheckpointError(f"{path}: unreadable cached feature network, delete it to retrain ({exc})") from exc
    return float(saved["validation_accuracy"])


def _classifier_for(dataset: ImageDataset, config: FallbackConfig) -> SmallClassifier:
    return SmallClassifier(dataset.image_shape[0], int(dataset.labels.max()) + 1, config.feature_dim)


def _train_classifier(dataset: ImageDataset, config: FallbackConfig) -> tuple[SmallClassifier, float]:
    """Train on a seeded subset; return the network and its accuracy on a held-out part."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(dataset))[: config.max_images]
    held_out = max(1, int(len(order) * config.validation_fraction))
    images, labels = torch.from_numpy(dataset.images[order]), torch.from_numpy(dataset.labels[order])
    train_x, train_y, test_x, test_y = images[held_out:], labels[held_out:], images[:held_out], labels[:held_out]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = _classifier_for(dataset, config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        model.train()
        for _ in range(config.epochs):
            for rows in torch.randperm(len(train_x)).split(config.batch_size):
                loss = F.cross_entropy(model(to_unit_float(train_x[rows])), train_y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(to_unit_float(x)).argmax(1) for x in test_x.split(config.batch_size)])
    return model, float((predicted == test_y).double().mean())
