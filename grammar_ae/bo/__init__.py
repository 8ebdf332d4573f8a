"""Latent-space Bayesian optimization, split like BoTorch into model, acquisition and loop.

- ``latent_model``: the protocol a trained autoencoder implements for BO (encode / decode).
- ``targets`` (+ ``expression_eval``, ``scoring``): objective functions, a registry for user
  targets, parallel cached scoring of whole data sets.
- ``surrogate``: the Gaussian-process model (sparse variational or exact).
- ``acquisition``: batch acquisition functions and their optimization.
- ``trust_region``: an optional adaptive box around the best point for the acquisition.
- ``loop``: the BO loop with resumable state (``state``) and its outputs (``results``).
- ``benchmark``: the multi-seed protocol and its table.
"""
