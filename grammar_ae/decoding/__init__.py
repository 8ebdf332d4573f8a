"""Masked grammar decoding, vectorized in torch."""

from grammar_ae.decoding.masked import DecodedRules, MaskedDecoder

__all__ = ["DecodedRules", "MaskedDecoder"]
