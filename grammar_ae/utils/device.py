"""Device selection: CUDA when present, else CPU; what the CPU computes natively."""

from __future__ import annotations

import torch

from grammar_ae.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"--device {name}: expected auto, cpu or cuda[:N]")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512 or AMX). Elsewhere (AVX2 only)
    bf16 matrix products are emulated and run far slower than fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
