"""Helpers shared by the benchmark scripts: shared data location and result files."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def shared_data() -> Path:
    """``$GRAMMAR_AE_DATA`` or the ``shared/data`` folder beside the checkout."""
    return Path(os.environ.get("GRAMMAR_AE_DATA", REPO.parent / "shared" / "data"))


def machine() -> dict:
    import torch

    from grammar_ae.utils.device import cpu_has_native_bf16

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_has_native_bf16(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def cpu_model() -> str | None:
    """The CPU's model name as Linux reports it (None elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)


def write_result(name: str, result: dict) -> Path:
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, {**result, "machine": machine(), "provenance": provenance()})
    return path


@contextmanager
def ring_preference(model, max_ring_size: int | None) -> Iterator[None]:
    """Decode a SMILES ``model`` with this ring-size preference (None: none) inside the block."""
    checks = model.model.chemistry_checks
    default, checks.max_ring_size = checks.max_ring_size, max_ring_size
    try:
        yield
    finally:
        checks.max_ring_size = default
