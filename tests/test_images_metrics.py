"""Frechet distance, k-NN precision/recall, clustering accuracy, and the feature extractors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from grammar_ae.data.images.datasets import ImageDataset, load_image_dataset
from grammar_ae.errors import CheckpointError, DataError
from grammar_ae.evaluation.image_features import ClassifierFeatures, FallbackConfig, InceptionFeatures, extract_features
from grammar_ae.evaluation.image_metrics import (
    GaussianStatistics,
    clustering_accuracy,
    frechet_distance,
    precision_recall,
)


def random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """tr((A B)^(1/2)) = sum of sqrt(eigenvalues of A^(1/2) B A^(1/2)), by symmetric eigensolvers."""
    values, vectors = np.linalg.eigh(a)
    root = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ b @ root), 0, None)).sum())


def frechet_distance_of_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(GaussianStatistics.of(a), GaussianStatistics.of(b))


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = GaussianStatistics(rng.normal(size=5), random_spd(rng, 5))
    b = GaussianStatistics(rng.normal(size=5), random_spd(rng, 5))
    expected = (
        np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov) + np.trace(b.cov) - 2 * trace_sqrt_product(a.cov, b.cov)
    )
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_gaussian_samples():
    rng = np.random.default_rng(1)
    first = rng.normal(size=(20000, 4))
    second = rng.normal(size=(20000, 4)) * 2.0 + np.array([1.0, 0.0, 0.0, 1.0])
    # ||mu||^2 = 2, and each dimension adds (sqrt(1) - sqrt(4))^2 = 1.
    assert frechet_distance_of_features(first, second) == pytest.approx(6.0, abs=0.15)
    assert frechet_distance_of_features(first, first) == pytest.approx(0.0, abs=1e-8)
    shifts = [frechet_distance_of_features(first, first + shift) for shift in (0.5, 1.0, 2.0)]
    assert shifts == pytest.approx([4 * 0.25, 4 * 1.0, 4 * 4.0], rel=1e-6)


def test_frechet_distance_is_finite_for_singular_covariances():
    rng = np.random.default_rng(2)
    few = rng.normal(size=(5, 20))  # rank-4 covariance in 20 dimensions
    other = rng.normal(size=(6, 20)) + 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distance = frechet_distance_of_features(few, other)
    assert np.isfinite(distance) and distance > 20 * 0.5
    with pytest.raises(DataError, match="feature dimensions differ"):
        frechet_distance_of_features(few, other[:, :3])
    with pytest.raises(DataError, match="NaN or infinite"):
        frechet_distance_of_features(few, np.full((6, 20), np.nan))


def test_precision_and_recall():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(400, 8))
    same = precision_recall(real, real.copy())
    assert (same.precision, same.recall, same.k) == (1.0, 1.0, 3)
    far = precision_recall(real, rng.normal(size=(400, 8)) + 50.0)
    assert far.precision == 0.0 and far.recall == 0.0
    # Two modes in the real data, samples from only one: precise but half the recall.
    modes = np.concatenate([rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 20.0])
    collapsed = precision_recall(modes, rng.normal(size=(300, 2)))
    assert collapsed.precision > 0.9 and 0.4 < collapsed.recall < 0.55
    with pytest.raises(DataError, match="N >= 4"):
        precision_recall(real[:3], real)


def test_clustering_accuracy():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, 500)
    permutation = rng.permutation(10) + 100
    assert clustering_accuracy(labels, permutation[labels]) == 1.0
    assert clustering_accuracy([0, 0, 1, 1], [5, 5, 5, 7]) == 0.75
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 4, 5]) == pytest.approx(0.5)
    with pytest.raises(DataError, match="as many clusters as labels"):
        clustering_accuracy([0, 1], [0])


def test_inception_features_need_the_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAMMAR_AE_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="--inception") as error:
        InceptionFeatures()
    assert str(tmp_path / "pt_inception-2015-12-05.pt") in str(error.value)
    (tmp_path / "fake.pt").write_bytes(b"not a model")
    with pytest.raises(DataError, match="fake.pt: not a TorchScript model"):
        InceptionFeatures(tmp_path / "fake.pt")


class _PoolFeatures(torch.nn.Module):
    """A TorchScript file with the FID network's calling convention (NVIDIA's is not reachable offline)."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_fetch_inception_downloads_checks_and_names_the_file(tmp_path, monkeypatch, run_main):
    from grammar_ae.utils.files import sha256_file

    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAMMAR_AE_CACHE", str(cache))
    published = tmp_path / "inception.pt"
    torch.jit.script(_PoolFeatures()).save(str(published))
    code, out, err = run_main("data", "fetch-inception", "--url", published.as_uri())
    assert code == 0, err
    expected_name = f"inception-v3-fid:{sha256_file(published)[:12]}"
    assert expected_name in out
    features = InceptionFeatures()  # from the cache now
    assert features.name == expected_name
    images = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    assert extract_features(features, images).shape == (2, 3)

    (cache / "pt_inception-2015-12-05.pt").unlink()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"<html>not found</html>")
    code, out, err = run_main("data", "fetch-inception", "--url", broken.as_uri())
    assert code == 1 and err.startswith("error:") and "not a TorchScript model" in err and len(err.splitlines()) == 1
    assert not (cache / "pt_inception-2015-12-05.pt").exists()


def test_fallback_features_are_trained_once_cached_and_named(tmp_path):
    train, test = load_image_dataset("digits"), load_image_dataset("digits", "test")
    config = FallbackConfig(epochs=2, batch_size=32, learning_rate=3e-3, max_images=1000, feature_dim=32)
    extractor = ClassifierFeatures.for_dataset(train, config, cache_dir=tmp_path)
    assert extractor.name.startswith("lenet-fallback:") and extractor.validation_accuracy > 0.8
    assert len(list(tmp_path.glob("lenet-fallback-*.pt"))) == 1
    reloaded = ClassifierFeatures.for_dataset(train, config, cache_dir=tmp_path)
    assert reloaded.name == extractor.name and reloaded.validation_accuracy == extractor.validation_accuracy
    features = extract_features(extractor, train.images)
    assert features.shape == (len(train), 32) and np.array_equal(extract_features(reloaded, train.images), features)
    noise = np.random.default_rng(0).integers(0, 256, test.images.shape, dtype=np.uint8)
    real = extract_features(reloaded, test.images)
    faithful, noisy = (extract_features(reloaded, generated) for generated in (train.images[:400], noise))
    assert frechet_distance_of_features(real, faithful) * 5 < frechet_distance_of_features(real, noisy)
    faithful_pr, noisy_pr = precision_recall(real, faithful), precision_recall(real, noisy)
    assert faithful_pr.precision > 0.8 and faithful_pr.recall > 0.5 > noisy_pr.recall
    next(tmp_path.glob("lenet-fallback-*.pt")).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="delete it to retrain"):
        ClassifierFeatures.for_dataset(train, config, cache_dir=tmp_path)
    other_config = FallbackConfig(epochs=1, max_images=200, feature_dim=32)
    other = ClassifierFeatures.for_dataset(train, other_config, cache_dir=tmp_path)
    assert other.name != extractor.name
    unlabelled = ImageDataset("faces", "train", train.images, None, "memory")
    with pytest.raises(DataError, match="has none"):
        ClassifierFeatures.for_dataset(unlabelled, config, cache_dir=tmp_path)
    with pytest.raises(DataError, match="uint8 images"):
        extract_features(extractor, torch.zeros(2, 1, 16, 16))
