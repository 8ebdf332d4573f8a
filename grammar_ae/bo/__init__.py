"""Latent-space Bayesian optimization, split like BoTorch into model, acquisition and loop,
with the optimizers it is judged against.

- ``latent_model``: the protocols a trained autoencoder implements for BO (encode / decode;
  fine-tuned copies for retraining).
- ``targets`` (+ ``expression_eval``, ``scoring``): objective functions, a registry for user
  targets, parallel cached scoring of whole data sets.
- ``starting_data``: the strings a search starts from and their cached latent means.
- ``surrogate``: the Gaussian-process model (exact, on a trust region's local data, or sparse
  variational).
- ``acquisition``: batch acquisition functions and their optimization.
- ``trust_region``: an adaptive box around the best point for the acquisition.
- ``retraining``: weighted retraining, the model fine-tuned on the best strings during a search.
- ``loop``: the BO loop (and random latent search) with resumable state (``state``), a
  budget of objective calls on new strings, and its outputs (``results``).
- ``genetic`` (+ ``ga_trees``): genetic algorithms on molecules and on derivation trees.
- ``benchmark``: the methods side by side over seeds, in one table.
"""
