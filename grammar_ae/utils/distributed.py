"""Data-parallel process groups (as ``torchrun`` starts them), seen from any layer.

Alone (no process group), every function here is the identity or a no-op, so code that
calls them runs unchanged in one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def launch_rank() -> int:
    """This process's rank as the launcher (``torchrun``) set it, before any group is joined."""
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def gather_rows(tensor: Tensor) -> Tensor:
    """Every process's rows of ``tensor`` (B_i, ...) concatenated in rank order, with gradients:
    the backward pass sends each process the gradient of its own rows, summed over processes."""
    if not active():
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def sum_over_processes(tensor: Tensor) -> Tensor:
    """The element-wise sum of ``tensor`` over all processes (a new tensor)."""
    if not active():
        return tensor.clone()
    total = tensor.clone()
    dist.all_reduce(total)
    return total
