"""grammar-ae: grammar-based regularized autoencoders and latent-space Bayesian optimization.

``grammar_ae.load_run(path_or_name)`` loads any trained run (see ``grammar_ae.models.loading``);
``grammar_ae.load_latent_model(path_or_name)`` a sequence model (for example the shipped
``zinc`` or ``expressions``), which encodes strings, decodes latents and drives the BO loop.
"""

import os

__version__ = "0.1.0"

# oneDNN (PyTorch's bf16 matrix products on CPUs) caches up to 1,024 primitives by default,
# one per shape, some holding tens of MB: with a new sequence length in every batch, training
# on ZINC-250k peaked at 2.6 GB; with 16, which still hold the products every step repeats,
# at 1.7 GB (benchmarks/molecule_memory.py). Read by oneDNN at its first product, so it must
# be set before any (a value already in the environment wins).
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")


def __getattr__(name: str):
    if name in ("load_run", "load_latent_model"):  # imported on first use: `import grammar_ae` stays light
        from grammar_ae.models import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'grammar_ae' has no attribute {name!r}")


__all__ = ["load_latent_model", "load_run"]
