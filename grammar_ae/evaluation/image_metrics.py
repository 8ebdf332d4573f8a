"""Sample-quality and clustering metrics on feature vectors and labels.

- Frechet distance between the Gaussians fitted to two feature sets (FID when the features
  come from the FID Inception network).
- k-nearest-neighbour precision and recall (Kynkaanniemi et al., 2019): precision is the
  fraction of generated points inside the real manifold (the union of balls around every
  real point reaching its k-th nearest real neighbour), recall the converse.
- Unsupervised clustering accuracy: accuracy under the best one-to-one matching of clusters
  to classes (Hungarian algorithm).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg
from scipy.optimize import linear_sum_assignment

from grammar_ae.errors import DataError

DISTANCE_CHUNK = 1024


@dataclass(frozen=True)
class GaussianStatistics:
    """Mean and covariance of a feature set."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> GaussianStatistics:
        features = _checked(features, "features", minimum=2)
        return cls(features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], -1))


def frechet_distance(a: GaussianStatistics, b: GaussianStatistics, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    When the product is singular (its square root is not finite), ``eps`` is added to both
    diagonals, as is usual for FID.
    """
    if a.mean.shape != b.mean.shape:
        raise DataError(f"feature dimensions differ: {a.mean.shape[0]} vs {b.mean.shape[0]}")
    root = _product_sqrt(a.cov, b.cov)
    if root is None:
        offset = eps * np.eye(len(a.cov))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            root = linalg.sqrtm((a.cov + offset) @ (b.cov + offset))
    if np.iscomplexobj(root):
        root = root.real
    diff = a.mean - b.mean
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * np.trace(root))


def _product_sqrt(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """sqrtm(a @ b), or None when scipy finds the product singular or the result is not finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            root = linalg.sqrtm(a @ b)
        except linalg.LinAlgWarning:
            return None
    return root if np.isfinite(root).all() else None


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> PrecisionRecall:
    """k-NN precision and recall of ``generated`` against ``real`` features."""
    real = torch.as_tensor(_checked(real, "real features", minimum=k + 1), dtype=torch.float64)
    generated = torch.as_tensor(_checked(generated, "generated features", minimum=k + 1), dtype=torch.float64)
    if real.shape[1] != generated.shape[1]:
        raise DataError(f"feature dimensions differ: {real.shape[1]} vs {generated.shape[1]}")
    precision = _fraction_inside(generated, real, _knn_radii(real, k))
    recall = _fraction_inside(real, generated, _knn_radii(generated, k))
    return PrecisionRecall(precision, recall, k)


def _knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of every point to its k-th nearest other point."""
    radii = [torch.cdist(chunk, points).kthvalue(k + 1, dim=1).values for chunk in points.split(DISTANCE_CHUNK)]
    return torch.cat(radii)


def _fraction_inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    inside = [(torch.cdist(chunk, centres) <= radii).any(dim=1) for chunk in queries.split(DISTANCE_CHUNK)]
    return float(torch.cat(inside).double().mean())


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy of ``clusters`` under the best one-to-one assignment of clusters to labels."""
    labels, clusters = np.asarray(labels).reshape(-1), np.asarray(clusters).reshape(-1)
    if len(labels) != len(clusters) or len(labels) == 0:
        raise DataError(
            f"clustering accuracy needs as many clusters as labels (> 0), got {len(clusters)} and {len(labels)}"
        )
    label_ids, label_index = np.unique(labels, return_inverse=True)
    cluster_ids, cluster_index = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(cluster_ids), len(label_ids)), dtype=np.int64)
    np.add.at(counts, (cluster_index, label_index), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def _checked(features: np.ndarray, what: str, minimum: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < minimum:
        raise DataError(f"{what}: expected an (N, D) array with N >= {minimum}, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise DataError(f"{what}: contains NaN or infinite values")
    return features
