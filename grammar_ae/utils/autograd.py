"""Whether the current computation may be differentiated twice (a gradient penalty).

Layers with a hand-written backward pass (``models.sequence.recurrent``) compute it outside
autograd's graph, so a second derivative through them would miss terms. Code that needs
one wraps the forward pass in :func:`double_backward`; such layers then fall back to plain
autograd inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_DOUBLE_BACKWARD = contextvars.ContextVar("double_backward", default=False)


@contextlib.contextmanager
def double_backward() -> Iterator[None]:
    """Within it, forward passes stay differentiable to second order."""
    token = _DOUBLE_BACKWARD.set(True)
    try:
        yield
    finally:
        _DOUBLE_BACKWARD.reset(token)


def double_backward_needed() -> bool:
    return _DOUBLE_BACKWARD.get()
