"""The per-run files that are redrawn every epoch: metrics.csv and loss_curve.png."""

from __future__ import annotations

import csv
import io
import os

from grammar_ae.utils.files import atomic_figure, atomic_write_text


def write_metrics_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """Rewrite the whole CSV (one row per epoch) atomically; columns in order of first appearance
    (a run resumed by a newer version may add some: earlier rows leave them empty)."""
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def plot_loss_curve(path: str | os.PathLike, rows: list[dict]) -> None:
    """Train and validation total loss per epoch; log scale when every value is positive."""
    epochs = [row["epoch"] for row in rows]
    curves = {"train": [row["train_loss"] for row in rows], "validation": [row["val_loss"] for row in rows]}
    with atomic_figure(path, 100, figsize=(6, 4)) as figure:
        axes = figure.add_subplot()
        figure.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.96)
        for label, values in curves.items():
            axes.plot(epochs, values, marker="o", markersize=3, label=label)
        if all(value > 0 for values in curves.values() for value in values):
            axes.set_yscale("log")
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss")
        axes.legend()
