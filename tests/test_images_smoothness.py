"""Decoder smoothness (ELS, expected gap) against closed forms and autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grammar_ae.evaluation.smoothness import expected_gap, expected_local_smoothness, jacobian_norms
from grammar_ae.models.image.networks import ConvDecoder, ConvNetConfig


@pytest.fixture
def linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(5, 30).double()


def test_els_of_a_linear_decoder_is_the_frobenius_norm_of_its_weight(linear):
    codes = torch.randn(40, 5, dtype=torch.float64)
    frobenius = float(torch.linalg.matrix_norm(linear.weight.detach()))
    assert torch.allclose(jacobian_norms(linear, codes), torch.full((40,), frobenius, dtype=torch.float64), rtol=1e-12)
    assert expected_local_smoothness(linear, codes) == pytest.approx(frobenius, rel=1e-12)


@pytest.mark.parametrize("variance", [1e-2, 1e-3])
def test_expected_gap_of_a_linear_decoder_matches_its_closed_form(linear, variance):
    """E ||W (z + eps) + b - W z - b||^2 = E ||W eps||^2 = variance ||W||_F^2."""
    codes = torch.randn(500, 5, dtype=torch.float64)
    gap = expected_gap(linear, codes, variance, draws=40, generator=torch.Generator().manual_seed(1))
    closed_form = variance * float(linear.weight.detach().pow(2).sum())
    assert gap == pytest.approx(closed_form, rel=0.02)


def test_jacobian_norms_of_the_convolutional_decoder_match_autograd():
    torch.manual_seed(0)
    decoder = ConvDecoder(ConvNetConfig(1, 16, 3, width=1 / 32, depth=2)).eval()
    codes = torch.randn(3, 3)
    expected = [
        torch.autograd.functional.jacobian(lambda z: decoder(z.unsqueeze(0)).flatten(), code).norm().item()
        for code in codes
    ]
    assert jacobian_norms(decoder, codes).tolist() == pytest.approx(expected, rel=1e-5)
