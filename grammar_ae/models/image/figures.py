"""PNG figures of an image run: labelled grids of samples (one row per sampler), reconstructions
(originals above reconstructions) and interpolations after training, the grid of ``grammar-ae
sample``, and the loss curves with their units.

Grids are upscaled ``SCALE`` times (nearest neighbour) so that 16-32 px images can be judged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from grammar_ae.errors import ConfigError
from grammar_ae.models.image.interpolation import slerp
from grammar_ae.models.image.run import TrainedImageModel
from grammar_ae.objectives import Objective
from grammar_ae.utils.files import atomic_figure

FIGURES = ("samples.png", "reconstructions.png", "interpolations.png", "loss_curves.png")
SCALE = 4
DPI = 100
LABEL_INCHES = 1.7  # at least, for the row labels; more for long ones
CHARACTER_INCHES = 0.085
# sampler kind, its fitter's options and the row label of samples.png
SAMPLE_ROWS = (
    ("standard-normal", {}, "N(0, I)"),
    ("gaussian", {}, "MVG"),
    ("gmm", {"components": 10, "seed": 0}, "GMM-10"),
)
TERM_UNITS = {
    "kl": "nats per image",
    "nll": "nats per image, constants dropped",
    "z_norm": "||z||^2 / 2 per image",
    "l2": "sum of squared decoder weights",
    "gp": "squared gradient norm per image",
    "mmd": "MMD^2, unitless",
    "ks": "unitless",
    "cv": "unitless",
    "gamma": "variance per pixel, [0, 1] scale",
    "sigma_x2": "variance per pixel, [0, 1] scale",
}
REC_UNITS = {"mse": "MSE per pixel, [0, 1] scale", "bce": "BCE per pixel, nats"}


def image_grid(images: Tensor, columns: int, pad: int = 1) -> np.ndarray:
    """uint8 images (N, C, H, W) tiled row by row into one (rows*(H+pad)+pad, ..., C) array."""
    n, channels, height, width = images.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 255, dtype=np.uint8)
    for index, image in enumerate(images.numpy()):
        top, left = pad + (index // columns) * (height + pad), pad + (index % columns) * (width + pad)
        grid[top : top + height, left : left + width] = image.transpose(1, 2, 0)
    return grid


def save_image_grid(path: str | Path, images: Tensor, columns: int) -> Path:
    """Write uint8 images (N, C, H, W) as one PNG grid upscaled ``SCALE`` times, atomically."""
    return _render(path, image_grid(images, columns), [])


def save_labelled_grid(path: str | Path, rows: list[tuple[str, Tensor]], columns: int) -> Path:
    """Write labelled rows of uint8 images, each padded to ``columns`` blank-filled places and
    labelled at its left, as one PNG grid upscaled ``SCALE`` times."""
    padded = []
    for _, images in rows:
        blank = torch.full((columns - len(images), *images.shape[1:]), 255, dtype=torch.uint8)
        padded.append(torch.cat([images, blank]))
    return _render(path, image_grid(torch.cat(padded), columns), [label for label, _ in rows])


def _render(path: str | Path, grid: np.ndarray, labels: list[str]) -> Path:
    grid = np.repeat(np.repeat(grid, SCALE, axis=0), SCALE, axis=1)
    height, width = grid.shape[0] / DPI, grid.shape[1] / DPI
    margin = max(LABEL_INCHES, 0.2 + CHARACTER_INCHES * max(map(len, labels))) if labels else 0.0
    with atomic_figure(path, DPI, figsize=(width + margin, height)) as figure:
        axes = figure.add_axes((margin / (width + margin), 0.0, width / (width + margin), 1.0))
        axes.imshow(grid[:, :, 0] if grid.shape[2] == 1 else grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        for side in axes.spines.values():
            side.set_visible(False)
        if labels:
            row_height = grid.shape[0] / len(labels)
            axes.set_yticks([(row + 0.5) * row_height for row in range(len(labels))], labels, fontsize=10)
            axes.tick_params(length=0)
    return Path(path)


def write_figures(run: TrainedImageModel, out_dir: Path, history: list[dict], seed: int = 0, columns: int = 10) -> list[str]:
    """samples.png (one row per sampler: N(0, I), MVG, GMM-10, and the training prior where it
    is none of them), reconstructions.png (validation originals above their reconstructions),
    interpolations.png (spherical paths between validation codes, t = 0 .. 1 left to right) and
    loss_curves.png (``history``: the trainer's rows, one per epoch)."""
    validation = torch.from_numpy(run.data.validation.images)
    rng = np.random.default_rng(seed)
    shown = validation[np.sort(rng.choice(len(validation), min(len(validation), 3 * columns), replace=False))]
    rebuilt = run.reconstruct(shown)
    pairs = list(zip(shown.split(columns), rebuilt.split(columns)))
    ends = run.encode(validation[rng.choice(len(validation), (2, 4), replace=True).reshape(-1)]).view(2, 4, -1)
    path = slerp(ends[0].unsqueeze(1), ends[1].unsqueeze(1), torch.linspace(0, 1, columns).view(1, -1, 1))
    rows = [(label, run.samples(kind, columns, seed, fit)) for kind, fit, label in SAMPLE_ROWS]
    prior = run.prior_sampler()
    if prior is not None and prior.kind != "standard-normal":
        rows.append((f"prior ({prior.kind})", run.samples("prior", columns, seed)))
    grids = {
        "samples.png": rows,
        "reconstructions.png": [(label, part) for pair in pairs for label, part in zip(("original", "reconstruction"), pair)],
        "interpolations.png": [(f"path {i + 1}", images) for i, images in enumerate(run.generate(path.reshape(-1, run.latent_dim)).split(columns))],
    }
    for name, labelled in grids.items():
        save_labelled_grid(out_dir / name, labelled, columns)
    plot_loss_curves(out_dir / "loss_curves.png", history, loss_units(run.model.objective, run.spec.reconstruction))
    return list(FIGURES)


def loss_units(objective: Objective | type[Objective], reconstruction: str) -> dict[str, str]:
    """The unit of every loss term of an image run (the total loss: by what its terms add up to)."""
    rec = REC_UNITS[reconstruction]
    total = "weighted sum of the other terms" if objective.uses_reconstruction_loss else "nats per image, constants dropped"
    return {**TERM_UNITS, "rec": rec, "loss": total}


def plot_loss_curves(path: str | Path, history: list[dict], units: dict[str, str]) -> Path:
    """One panel per loss term: train and validation values per epoch, the y axis in the term's unit."""
    from matplotlib.ticker import MaxNLocator

    terms = [key[len("train_") :] for key in history[0] if key.startswith("train_")]
    epochs = [row["epoch"] for row in history]
    columns = min(3, len(terms))
    panel_rows = math.ceil(len(terms) / columns)
    with atomic_figure(path, DPI, figsize=(4.2 * columns, 3.2 * panel_rows), layout="constrained") as figure:
        for index, term in enumerate(terms, start=1):
            axes = figure.add_subplot(panel_rows, columns, index)
            for stage in ("train", "val"):
                axes.plot(epochs, [row[f"{stage}_{term}"] for row in history], marker="o", markersize=3,
                          label="validation" if stage == "val" else stage)
            axes.set_title(term)
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_ylabel(units.get(term, "unitless"), fontsize=8)
            axes.legend(fontsize=8)
    return Path(path)


def write_sample_grid(
    run: TrainedImageModel, out: str | Path | None, n: int, sampler: str = "prior", seed: int = 0,
    fit: dict | None = None,
) -> Path:
    """``grammar-ae sample`` for image runs: ``n`` decoded samples of ``sampler`` (``fit``: its
    fitter's options) as a PNG grid at ``out``."""
    if out is None or Path(out).suffix.lower() != ".png":
        raise ConfigError(f"image runs write their samples as a PNG grid: pass --out FILE.png (got {out})")
    if n < 1:
        raise ConfigError(f"-n {n}: expected at least one sample")
    return save_image_grid(out, run.samples(sampler, n, seed, fit), columns=math.ceil(math.sqrt(n)))
