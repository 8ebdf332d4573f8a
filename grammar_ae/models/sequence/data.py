"""Training and validation batches of a sequence model from a prepared data set."""

from __future__ import annotations

import numpy as np

from grammar_ae.data.batches import BucketedBatchSource, SequenceBatchSource
from grammar_ae.data.prepare import PreparedData
from grammar_ae.models.sequence.autoregressive import TokenSequenceAutoEncoder
from grammar_ae.models.sequence.model import StringAutoEncoder


def batch_sources(model: StringAutoEncoder, data: PreparedData, *item_sets: np.ndarray) -> list:
    """One batch source per item set: length-bucketed tokens for autoregressive models,
    fixed-length rule or character sequences for the published networks."""
    if isinstance(model, TokenSequenceAutoEncoder):
        flat, offsets = model.codec.ragged(data)
        return [BucketedBatchSource(flat, offsets, items, model.codec.padding_token) for items in item_sets]
    padding = model.codec.grammar.padding_rule
    return [SequenceBatchSource(data, items, model.spec.representation, model.codec.length, padding) for items in item_sets]
