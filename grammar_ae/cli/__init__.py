"""The ``grammar-ae`` command line."""
