"""Sample quality of generated images against real ones, under a named feature extractor."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from torch import Tensor

from grammar_ae.images.features import FeatureExtractor, extract_features
from grammar_ae.images.metrics import GaussianStatistics, frechet_distance, precision_recall


@dataclass(frozen=True)
class SampleQuality:
    """FID is only comparable to published numbers when ``extractor`` is "inception-v3-fid"."""

    extractor: str
    fid: float
    precision: float
    recall: float
    k: int
    real_count: int
    generated_count: int

    def to_dict(self) -> dict:
        return asdict(self)


def sample_quality(
    extractor: FeatureExtractor, real: np.ndarray | Tensor, generated: np.ndarray | Tensor, k: int = 3,
    batch_size: int = 256,
) -> SampleQuality:
    """FID and k-NN precision/recall of uint8 images ``generated`` against ``real``."""
    real_features = extract_features(extractor, real, batch_size)
    generated_features = extract_features(extractor, generated, batch_size)
    fid = frechet_distance(GaussianStatistics.of(real_features), GaussianStatistics.of(generated_features))
    pr = precision_recall(real_features, generated_features, k)
    return SampleQuality(extractor.name, fid, pr.precision, pr.recall, k, len(real_features), len(generated_features))
