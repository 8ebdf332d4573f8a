"""The grid of an image benchmark: models (objective names or labelled variants with their own
settings) times every combination of swept settings, the run folder of each point, and the plot of
FID against the first swept setting (one line per model and combination of the others).

Sweep keys are run settings, dotted for nested ones (``objective.beta``), or the short names
``latent`` (``network.latent_dim``), ``width`` and ``depth`` (``network.*``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grammar_ae.errors import ConfigError
from grammar_ae.utils.config_files import merge
from grammar_ae.utils.files import atomic_figure

SWEEP_ALIASES = {"latent": "network.latent_dim", "width": "network.width", "depth": "network.depth"}
PLOTTED = (
    ("sample_fid_standard_normal", "samples N(0, I)"),
    ("sample_fid_gaussian", "samples MVG"),
    ("sample_fid_gmm", "samples GMM-10"),
    ("sample_fid_gmm100", "samples GMM-100"),
    ("sample_fid_second_stage", "samples 2nd stage"),
    ("sample_fid_prior", "samples prior"),
    ("reconstruction_fid", "reconstructions"),
)


@dataclass(frozen=True)
class GridPoint:
    """One run of the grid: its label, folder name, swept values and run settings."""

    label: str
    folder: str
    swept: dict[str, Any]
    settings: dict[str, Any]


def grid_points(
    labels: tuple[str, ...], base: dict[str, Any], variants: dict[str, dict[str, Any]], sweep: dict[str, list[Any]]
) -> list[GridPoint]:
    """Every (label, sweep combination); a label is a variant's name or an objective's name."""
    for key, values in sweep.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"sweep {key}: expected a non-empty list of values, got {values!r}")
    points = []
    for label in labels:
        variant = variants.get(label, {"model": label})
        if not isinstance(variant, dict) or "model" not in variant:
            raise ConfigError(f"variant {label!r}: expected a mapping of run settings with a 'model'")
        for combination in itertools.product(*sweep.values()):
            swept = dict(zip(sweep, combination))
            settings = merge(base, variant, *(_nested(key, value) for key, value in swept.items()))
            folder = label + "".join(f"-{_short(key)}{_show(value)}" for key, value in swept.items())
            points.append(GridPoint(label, folder, swept, settings))
    return points


def _nested(key: str, value: Any) -> dict[str, Any]:
    *parents, leaf = SWEEP_ALIASES.get(key, key).split(".")
    nested: dict[str, Any] = {leaf: value}
    for parent in reversed(parents):
        nested = {parent: nested}
    return nested


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot_sweep(path: str | Path, rows: list[dict], sweep: dict[str, list[Any]], feature_extractor: str) -> Path:
    """FID against the first swept setting, one panel per FID column present, one line per model
    label and combination of the other swept settings."""
    x_key, *others = sweep
    panels = [(key, title) for key, title in PLOTTED if any(row.get(key) is not None for row in rows)]
    with atomic_figure(path, 100, figsize=(4.2 * len(panels), 3.6), layout="constrained") as figure:
        lines: dict[str, list[dict]] = {}
        for row in rows:
            name = " ".join([row["model"], *(f"{_short(key)} {_show(row[key])}" for key in others)])
            lines.setdefault(name, []).append(row)
        numeric = all(isinstance(value, (int, float)) for value in sweep[x_key])
        for index, (key, title) in enumerate(panels, start=1):
            axes = figure.add_subplot(1, len(panels), index)
            values = []
            for name, points in lines.items():
                points = [point for point in points if point.get(key) is not None]
                values += [point[key] for point in points]
                axes.plot([point[x_key] for point in points], [point[key] for point in points], marker="o", label=name)
            if values and min(values) > 0 and max(values) / min(values) >= 10:  # a failed run must not flatten the others
                axes.set_yscale("log")
            if numeric and min(sweep[x_key]) > 0 and max(sweep[x_key]) / min(sweep[x_key]) >= 4:
                axes.set_xscale("log", base=2)
            if numeric:
                axes.set_xticks(sweep[x_key], [_show(value) for value in sweep[x_key]])
                axes.minorticks_off()
            axes.set_title(title)
            axes.set_xlabel(SWEEP_ALIASES.get(x_key, x_key))
            axes.set_ylabel(f"FID ({feature_extractor})", fontsize=8)
            if index == 1:
                axes.legend(fontsize=7)
    return Path(path)
