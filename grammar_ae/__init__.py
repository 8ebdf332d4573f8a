"""grammar-ae: grammar-based regularized autoencoders and latent-space Bayesian optimization."""

__version__ = "0.1.0"
