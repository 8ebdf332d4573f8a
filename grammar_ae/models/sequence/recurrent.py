"""A GRU layer unrolled over time, with a hand-written backward pass and cells fused by
``torch.compile`` where it can be.

``nn.GRU`` on a CPU under bf16 autocast runs its cell as a dozen separate small kernels per
step, and its backward pass zero-fills a copy of the whole input projection at every step
(quadratic in the length). Here the input projections of all steps are one matrix product
and each step is one matrix product plus the cell. In training, the backward pass is
written out (:class:`_GRUSequence`): each step back costs one matrix product plus one fused
cell, and the recurrent weight's gradient is a single matrix product over all steps at the
end, instead of one small product and one accumulation per step. Independent layers of one
size (the two directions of a bidirectional GRU) step together, one batched product and one
cell per step for all (:func:`side_by_side`). Inside
:func:`grammar_ae.utils.autograd.double_backward` (a gradient penalty) the layer runs on
plain autograd instead, which can differentiate it twice.

The cells (forward and backward) are compiled once each into one kernel when a compiler is
available (``GRAMMAR_AE_COMPILE=0`` turns this off); otherwise they run eagerly with the
same results up to rounding.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from grammar_ae.utils.autograd import double_backward_needed


def _gates(input_gates: Tensor, hidden_gates: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The reset, update and new gates in float32 from the input's and the hidden state's
    (reset, update, new) projections, and the hidden state's projection for the new gate."""
    r_x, z_x, n_x = input_gates.float().chunk(3, -1)
    r_h, z_h, n_h = hidden_gates.float().chunk(3, -1)
    reset = torch.sigmoid(r_x + r_h)
    update = torch.sigmoid(z_x + z_h)
    new = 2 * torch.sigmoid(2 * (n_x + reset * n_h)) - 1  # tanh through the sigmoid, whose CPU kernels are faster
    return reset, update, new, n_h


def gru_cell(input_gates: Tensor, hidden_gates: Tensor, hidden: Tensor) -> Tensor:
    """One GRU update, computed in float32 whatever the projections' precision (the state
    stays float32)."""
    _, update, new, _ = _gates(input_gates, hidden_gates)
    return new + update * (hidden.float() - new)


def gru_cell_with_gates(input_gates: Tensor, hidden_gates: Tensor, hidden: Tensor) -> tuple[Tensor, ...]:
    """:func:`gru_cell` and what the backward pass needs, in the projections' precision: the
    reset, update and new gates and the hidden state's projection for the new gate."""
    gates = _gates(input_gates, hidden_gates)
    _, update, new, _ = gates
    return new + update * (hidden.float() - new), *(gate.to(hidden_gates.dtype) for gate in gates)


def gru_cell_backward(
    output_grad: Tensor, carried_grad: Tensor, recurrent_grad: Tensor, saved: tuple[Tensor, ...], previous: Tensor,
    input_dtype: torch.dtype, hidden_dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor]:
    """One step back through :func:`gru_cell_with_gates`, given what it saved.

    The state's gradient is the sum of the layer output's (``output_grad``) and the next
    step's, which arrives in two parts: through the update gate (``carried_grad``) and
    through the recurrent matrix product (``recurrent_grad``). Returns the gradients of the
    input projection (in ``input_dtype``) and of the hidden projection (``hidden_dtype``),
    and the part carried to the previous state through the update gate (float32)."""
    reset, update, new, new_hidden_gate = (gate.float() for gate in saved)
    grad = output_grad.float() + carried_grad + recurrent_grad.float()
    new_pre = grad * (1 - update) * (1 - new * new)
    update_pre = grad * (previous.float() - new) * update * (1 - update)
    reset_pre = new_pre * new_hidden_gate * reset * (1 - reset)
    input_grad = torch.cat([reset_pre, update_pre, new_pre], dim=-1)
    hidden_grad = torch.cat([reset_pre, update_pre, new_pre * reset], dim=-1)
    return input_grad.to(input_dtype), hidden_grad.to(hidden_dtype), grad * update


_compiled: dict[Callable, Callable] = {}
_compile_failed = False


def _run(function: Callable, *args):
    """``function(*args)``, compiled once where possible, else eagerly."""
    global _compile_failed
    # compiled backward passes cannot be differentiated again
    if _compile_failed or double_backward_needed() or os.environ.get("GRAMMAR_AE_COMPILE", "1") == "0":
        return function(*args)
    if function not in _compiled:
        # one graph per (grad mode, dtype, batch of one or more): more than dynamo's default 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _compiled[function] = torch.compile(function, dynamic=True)
    try:
        return _compiled[function](*args)
    except Exception as error:  # no C++ compiler, unsupported platform: run eagerly
        _compile_failed = True
        warnings.warn(f"torch.compile is unavailable here ({type(error).__name__}); the GRU cell runs eagerly", stacklevel=2)
        return function(*args)


class _GRUSequence(torch.autograd.Function):
    """States after every step of D independent layers side by side, given every step's input
    projections (D, B, T, 3H), starting states (D, B, H) and recurrent weights (D, 3H, H),
    biases (D, 3H); each step is one (batched) matrix product and one cell for all D. The
    backward pass is written out."""

    @staticmethod
    def forward(ctx: FunctionCtx, input_gates: Tensor, hidden: Tensor, weight: Tensor, bias: Tensor, dtype: torch.dtype) -> Tensor:
        layers, batch, steps, _ = input_gates.shape
        weight, bias, start = weight.to(dtype), bias.to(dtype), hidden
        previous = hidden.new_empty((layers, steps, batch, hidden.shape[2]), dtype=dtype)  # each step's product input
        outputs, saved = [], []
        for step in range(steps):
            previous[:, step].copy_(hidden)
            hidden_gates = _hidden_product(previous[:, step], weight, bias)
            hidden, *step_saved = _run(gru_cell_with_gates, input_gates[:, :, step], hidden_gates, hidden)
            outputs.append(hidden)
            saved.append(step_saved)
        output = torch.stack(outputs, dim=2)
        ctx.save_for_backward(output, previous, weight, start)
        ctx.saved, ctx.input_dtype = saved, input_gates.dtype
        return output

    @staticmethod
    def backward(ctx: FunctionCtx, output_grad: Tensor) -> tuple:
        if torch.is_grad_enabled():  # create_graph: the gradients below would be taken as constants
            raise RuntimeError(
                "UnrolledGRU: a second derivative needs the forward pass inside grammar_ae.utils.autograd.double_backward()"
            )
        output, previous, weight, start = ctx.saved_tensors
        layers, steps, batch, width = previous.shape
        input_grad = output.new_empty((layers, batch, steps, 3 * width), dtype=ctx.input_dtype)
        hidden_grad = output.new_empty((layers, steps, batch, 3 * width), dtype=weight.dtype)
        carried = output.new_zeros((layers, batch, width))
        recurrent = carried.to(weight.dtype)
        for step in range(steps - 1, -1, -1):
            before = output[:, :, step - 1] if step > 0 else start
            input_grad[:, :, step], hidden_grad[:, step], carried = _run(
                gru_cell_backward, output_grad[:, :, step], carried, recurrent, ctx.saved[step], before,
                ctx.input_dtype, weight.dtype,
            )
            ctx.saved[step] = None
            recurrent = _product(hidden_grad[:, step], weight)
        hidden_grad = hidden_grad.flatten(1, 2)  # (D, T * B, 3H)
        weight_grad = _product(hidden_grad.transpose(1, 2), previous.flatten(1, 2))
        ones = hidden_grad.new_ones((layers, hidden_grad.shape[1], 1))
        bias_grad = _product(hidden_grad.transpose(1, 2), ones)[..., 0]
        return input_grad, carried + recurrent.float(), weight_grad.float(), bias_grad.float(), None


def _hidden_product(hidden: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """(D, B, H) states times (D, 3H, H) weights plus (D, 3H) biases."""
    if len(weight) == 1:  # addmm: several times faster than baddbmm over one matrix here
        return torch.addmm(bias[0], hidden[0], weight[0].t()).unsqueeze(0)
    return torch.baddbmm(bias.unsqueeze(1), hidden, weight.transpose(1, 2))


def _product(left: Tensor, right: Tensor) -> Tensor:
    """Matrix products over the leading dimension (one ``mm`` when it is 1)."""
    if len(left) == 1:
        return torch.mm(left[0], right[0]).unsqueeze(0)
    return torch.bmm(left, right)


class UnrolledGRU(nn.Module):
    """One GRU layer over (B, T, input) sequences; state (B, hidden)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.input_projection = nn.Linear(input_size, 3 * hidden_size)
        self.hidden_projection = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, inputs: Tensor, hidden: Tensor) -> Tensor:
        """Outputs (B, T, hidden): the state after every step."""
        return side_by_side([self], [inputs], hidden)[0]

    def step(self, inputs: Tensor, hidden: Tensor) -> Tensor:
        """The state after one step of (B, input) inputs."""
        gates = self.input_projection(inputs)
        return _run(gru_cell, gates, self.hidden_projection(hidden), hidden)


def side_by_side(layers: Sequence[UnrolledGRU], inputs: Sequence[Tensor], hidden: Tensor) -> list[Tensor]:
    """Outputs (B, T, hidden) of independent layers of one size (the two directions of a
    bidirectional GRU), each over its own inputs, all from the state ``hidden``: in training
    they step together, one batched matrix product and one cell per step for all."""
    input_gates = [layer.input_projection(x) for layer, x in zip(layers, inputs, strict=True)]
    if torch.is_grad_enabled() and not double_backward_needed():
        weight = torch.stack([layer.hidden_projection.weight for layer in layers])
        bias = torch.stack([layer.hidden_projection.bias for layer in layers])
        start = hidden.float().expand(len(layers), *hidden.shape)
        return list(_GRUSequence.apply(torch.stack(input_gates), start, weight, bias, _matmul_dtype(weight)).unbind(0))
    return [_unrolled(layer, gates, hidden) for layer, gates in zip(layers, input_gates)]


def _unrolled(layer: UnrolledGRU, input_gates: Tensor, hidden: Tensor) -> Tensor:
    """The layer step by step on plain autograd (or none)."""
    outputs = []
    for gates in input_gates.unbind(1):
        hidden = _run(gru_cell, gates, layer.hidden_projection(hidden), hidden)
        outputs.append(hidden)
    return torch.stack(outputs, dim=1)


def _matmul_dtype(weight: Tensor) -> torch.dtype:
    """The precision autocast would give the hidden projection's matrix product."""
    device = weight.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
