"""End-to-end jobs that tie data, models and the trainer together."""
