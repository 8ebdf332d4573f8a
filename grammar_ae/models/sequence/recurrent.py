"""A GRU layer unrolled over time, with its cell fused by ``torch.compile`` where it can be.

``nn.GRU`` on a CPU under bf16 autocast runs its cell as a dozen separate small kernels per
step, and its backward pass zero-fills a copy of the whole input projection at every step
(quadratic in the length). Here the input projections of all steps are one matrix product,
each step is one matrix product plus the cell, and the backward pass stacks per-step
gradients. The cell (gates and update) is compiled once into one kernel when a compiler is
available (``GRAMMAR_AE_COMPILE=0`` turns this off); otherwise it runs eagerly with the same
results up to rounding.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn


def gru_cell(input_gates: Tensor, hidden_gates: Tensor, hidden: Tensor) -> Tensor:
    """One GRU update from the input's and the hidden state's (reset, update, new) projections,
    computed in float32 whatever the projections' precision (the state stays float32)."""
    r_x, z_x, n_x = input_gates.float().chunk(3, 1)
    r_h, z_h, n_h = hidden_gates.float().chunk(3, 1)
    reset = torch.sigmoid(r_x + r_h)
    update = torch.sigmoid(z_x + z_h)
    new = torch.tanh(n_x + reset * n_h)
    return new + update * (hidden.float() - new)


_compiled: Callable | None = None
_compile_failed = False


def _cell(input_gates: Tensor, hidden_gates: Tensor, hidden: Tensor) -> Tensor:
    """The compiled cell where possible, else the eager one."""
    global _compiled, _compile_failed
    if _compile_failed or os.environ.get("GRAMMAR_AE_COMPILE", "1") == "0":
        return gru_cell(input_gates, hidden_gates, hidden)
    if _compiled is None:
        # one graph per (grad mode, dtype, batch of one or more): more than dynamo's default 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _compiled = torch.compile(gru_cell, dynamic=True)
    try:
        return _compiled(input_gates, hidden_gates, hidden)
    except Exception as error:  # no C++ compiler, unsupported platform: run eagerly
        _compile_failed = True
        warnings.warn(f"torch.compile is unavailable here ({type(error).__name__}); the GRU cell runs eagerly", stacklevel=2)
        return gru_cell(input_gates, hidden_gates, hidden)


class UnrolledGRU(nn.Module):
    """One GRU layer over (B, T, input) sequences; state (B, hidden)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.input_projection = nn.Linear(input_size, 3 * hidden_size)
        self.hidden_projection = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, inputs: Tensor, hidden: Tensor) -> Tensor:
        """Outputs (B, T, hidden): the state after every step."""
        outputs = []
        for gates in self.input_projection(inputs).unbind(1):
            hidden = _cell(gates, self.hidden_projection(hidden), hidden)
            outputs.append(hidden)
        return torch.stack(outputs, dim=1)

    def step(self, inputs: Tensor, hidden: Tensor) -> Tensor:
        """The state after one step of (B, input) inputs."""
        gates = self.input_projection(inputs)
        return _cell(gates, self.hidden_projection(hidden), hidden)
