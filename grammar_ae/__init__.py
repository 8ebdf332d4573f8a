"""grammar-ae: grammar-based regularized autoencoders and latent-space Bayesian optimization.

``grammar_ae.load_run(path_or_name)`` loads any trained run (see ``grammar_ae.models.loading``);
``grammar_ae.load_latent_model(path_or_name)`` a sequence model (for example the shipped
``zinc`` or ``expressions``), which encodes strings, decodes latents and drives the BO loop.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("load_run", "load_latent_model"):  # imported on first use: `import grammar_ae` stays light
        from grammar_ae.models import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'grammar_ae' has no attribute {name!r}")


__all__ = ["load_latent_model", "load_run"]
