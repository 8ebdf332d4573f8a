"""The model families (``sequence/``, ``image/``), their shared base classes and the one run loader.

``models.loading.load_run`` (also ``grammar_ae.load_run``) loads any trained run.
"""
