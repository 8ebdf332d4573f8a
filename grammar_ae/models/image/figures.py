"""PNG grids of an image run: samples, reconstructions and interpolations after training, and
the grid of ``grammar-ae sample``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from grammar_ae.errors import ConfigError
from grammar_ae.models.image.interpolation import slerp
from grammar_ae.models.image.run import TrainedImageModel
from grammar_ae.utils.files import atomic_path

FIGURES = ("samples.png", "reconstructions.png", "interpolations.png")


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
    """Write uint8 images (N, C, H, W) as one PNG grid, atomically."""
    import matplotlib.image

    grid = image_grid(images, columns)
    with atomic_path(path) as tmp:
        if grid.shape[2] == 1:
            matplotlib.image.imsave(tmp, grid[:, :, 0], cmap="gray", vmin=0, vmax=255, format="png")
        else:
            matplotlib.image.imsave(tmp, grid, format="png")
    return Path(path)


def write_figures(run: TrainedImageModel, out_dir: Path, seed: int = 0, columns: int = 8) -> list[str]:
    """samples.png (prior, or a fitted Gaussian), reconstructions.png (validation inputs above their
    reconstructions) and interpolations.png (spherical paths between validation codes)."""
    validation = torch.from_numpy(run.data.validation.images)
    rng = np.random.default_rng(seed)
    shown = validation[np.sort(rng.choice(len(validation), min(len(validation), 4 * columns), replace=False))]
    rebuilt = run.reconstruct(shown)
    above = [part for pair in zip(shown.split(columns), rebuilt.split(columns)) for part in pair]
    ends = run.encode(validation[rng.choice(len(validation), (2, columns), replace=True).reshape(-1)]).view(2, columns, -1)
    steps = torch.linspace(0, 1, 10).view(1, -1, 1)
    path = slerp(ends[0].unsqueeze(1), ends[1].unsqueeze(1), steps).reshape(-1, run.latent_dim)
    grids = {
        "samples.png": (run.samples("prior", columns * columns, seed), columns),
        "reconstructions.png": (torch.cat(above), columns),
        "interpolations.png": (run.generate(path), 10),
    }
    return [save_image_grid(out_dir / name, images, width).name for name, (images, width) in grids.items()]


def write_sample_grid(run: TrainedImageModel, out: str | Path | None, n: int, sampler: str = "prior", seed: int = 0) -> Path:
    """``grammar-ae sample`` for image runs: ``n`` decoded samples of ``sampler`` as a PNG grid at ``out``."""
    if out is None or Path(out).suffix.lower() != ".png":
        raise ConfigError(f"image runs write their samples as a PNG grid: pass --out FILE.png (got {out})")
    if n < 1:
        raise ConfigError(f"-n {n}: expected at least one sample")
    return save_image_grid(out, run.samples(sampler, n, seed), columns=math.ceil(math.sqrt(n)))
