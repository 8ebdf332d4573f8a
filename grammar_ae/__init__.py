"""grammar-ae: grammar-based regularized autoencoders and latent-space Bayesian optimization.

``grammar_ae.load_run(path_or_name)`` loads any trained run (see ``grammar_ae.models.loading``).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_run":  # imported on first use: `import grammar_ae` stays light
        from grammar_ae.models.loading import load_run

        return load_run
    raise AttributeError(f"module 'grammar_ae' has no attribute {name!r}")


__all__ = ["load_run"]
