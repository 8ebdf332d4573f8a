"""The model zoo: one place per model, shared base classes."""
