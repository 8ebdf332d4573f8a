"""Sequence autoencoders over production sequences (grammar models) or characters."""
