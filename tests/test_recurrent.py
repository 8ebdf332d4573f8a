"""The unrolled GRU layer: its hand-written backward pass against autograd's, and the
plain-autograd fallback a gradient penalty needs."""

import contextlib
import os
import subprocess
import sys

import pytest
import torch

from grammar_ae.models.sequence.recurrent import UnrolledGRU
from grammar_ae.utils.autograd import double_backward, double_backward_needed

from test_autoregressive import small_model


def _forward_and_grads(layer: UnrolledGRU, inputs: torch.Tensor, start: torch.Tensor, weights: torch.Tensor,
                       plain: bool, bf16: bool) -> list[torch.Tensor]:
    layer.zero_grad()
    inputs, start = inputs.clone().requires_grad_(), start.clone().requires_grad_()
    with double_backward() if plain else contextlib.nullcontext(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        outputs = layer(inputs, start)
    (outputs.float() * weights).sum().backward()
    return [outputs.detach().float(), inputs.grad, start.grad] + [p.grad.clone() for p in layer.parameters()]


@pytest.mark.parametrize("bf16, tolerance", [(False, 1e-5), (True, 2e-2)])
def test_hand_written_backward_matches_autograd(bf16, tolerance):
    torch.manual_seed(0)
    layer = UnrolledGRU(7, 16)
    inputs, start, weights = torch.randn(5, 9, 7), torch.randn(5, 16), torch.randn(5, 9, 16)
    fused = _forward_and_grads(layer, inputs, start, weights, plain=False, bf16=bf16)
    plain = _forward_and_grads(layer, inputs, start, weights, plain=True, bf16=bf16)
    names = ["outputs", "input grad", "state grad"] + [name for name, _ in layer.named_parameters()]
    for name, got, expected in zip(names, fused, plain, strict=True):
        error = float((got - expected).abs().max() / expected.abs().max())
        assert error <= tolerance, f"{name}: relative error {error:.2e}"


def test_hand_written_backward_refuses_a_second_derivative():
    layer = UnrolledGRU(3, 4)
    inputs = torch.randn(2, 5, 3, requires_grad=True)
    outputs = layer(inputs, torch.zeros(2, 4))
    with pytest.raises(RuntimeError, match="double_backward"):
        torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    with double_backward():
        outputs = layer(inputs, torch.zeros(2, 4))
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    grad.pow(2).sum().backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0


def test_gradient_penalty_trains_the_gru_model_through_plain_autograd(zinc_smiles):
    model = small_model("gru").train()
    model.objective.config.gp_weight = 1e-2
    with model.objective.decoding_context():
        assert double_backward_needed()
    assert not double_backward_needed()
    terms = model.loss(model.training_batch(zinc_smiles[:8]))
    terms["loss"].backward()  # a second derivative through the decoder: refused by the fused layer
    assert torch.isfinite(terms["gp"]) and terms["gp"] > 0
    grads = [p.grad for p in model.decoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_importing_the_package_bounds_onednns_primitive_cache():
    script = "import grammar_ae, os; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    assert subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True).stdout.strip() == "16"
    env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "256"  # the user's own setting wins
    assert subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True).stdout.strip() == "256"
