"""Train an image autoencoder on a named image data set (``grammar-ae train --dataset``) and load it back.

Defaults follow the RAE paper's image protocol (PROTOCOLS section 4): batch 100, Adam 1e-3
halved when the validation loss stops improving, 100 epochs for MNIST-like sets, CIFAR-10 and
SVHN, 70 for CelebA (30 for scikit-learn's small digits), latent size 16 (MNIST-like and
digits), 128 (CIFAR-10, SVHN) or 64 (CelebA). The network ``width`` (a multiplier of every
filter count) defaults to 1.0, the paper's networks, when training on CUDA and to 1/16 on a
CPU, where the full networks take hours per epoch; set ``network.width`` to choose.

The data of a run is the chosen split of the data set (``--split test`` uses the test split
alone), optionally a seeded random subset of ``limit`` images, split again by a seeded shuffle
into training and validation parts; the split's checksum is stored with the run, so the same
images are found again for evaluation. After training, ``samples.png``, ``reconstructions.png``
and ``interpolations.png`` are written beside the checkpoints (from the best checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from grammar_ae.errors import CheckpointError, ConfigError, DataError
from grammar_ae.data.images.datasets import (
    ImageBatchSource,
    ImageDataset,
    load_image_dataset,
    train_validation_split,
)
from grammar_ae.data.images.sources import SPLITS, get_source
from grammar_ae.models.image.model import (
    ImageAutoEncoder,
    build_image_model,
    image_model_spec,
)
from grammar_ae.models.run import TrainedRun
from grammar_ae.objectives import (
    OBJECTIVES,
    LatentSampler,
    fit_sampler,
    load_sampler,
    save_sampler,
)
from grammar_ae.pipelines.settings import RunSettings
from grammar_ae.training import EpochCallback, Trainer, TrainerConfig, seed_everything
from grammar_ae.utils.device import resolve_device
from grammar_ae.utils.files import atomic_path, atomic_write_json

PUBLISHED_EPOCHS = {"mnist": 100, "fashion-mnist": 100, "cifar10": 100, "svhn": 100, "celeba": 70, "digits": 30}
LATENT_DIMS = {"mnist": 16, "fashion-mnist": 16, "digits": 16, "cifar10": 128, "svhn": 128, "celeba": 64}
CPU_WIDTH = 1 / 16
NETWORK_KEYS = ("latent_dim", "width")
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 5
LR_FLOOR_FRACTION = 1 / 64  # the learning rate is halved at most six times
RESUMABLE = ("epochs", "device")  # settings that may change when a run is resumed
SAMPLER_LATENTS = 20_000  # training codes used to fit ex-post densities
ENCODE_BATCH = 500
FIGURES = ("samples.png", "reconstructions.png", "interpolations.png")
SAMPLER_KINDS = ("prior", "gaussian", "gmm", "two-stage")


@dataclass
class ImageRunConfig(RunSettings):
    """Settings of one image run; None / empty values are filled in by :meth:`resolved`."""

    kind = "image"

    dataset: str = "digits"
    model: str = "rae-l2"
    split: str = "train"
    data: str | None = None
    batch_size: int = 100

    def resolved(self) -> ImageRunConfig:
        """A checked copy with the data set's defaults filled in (see the module docstring)."""
        get_source(self.dataset)
        if self.model not in OBJECTIVES:
            raise ConfigError(f"image model {self.model!r} is unknown; expected one of {', '.join(OBJECTIVES)}")
        if self.split not in SPLITS:
            raise ConfigError(f"split {self.split!r}: expected one of {', '.join(SPLITS)}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 2):
            raise ConfigError(f"limit {self.limit!r}: expected an integer >= 2 (images to use)")
        for name in ("objective", "network"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} settings must be a mapping, got {getattr(self, name)!r}")
        unknown = sorted(set(self.network) - set(NETWORK_KEYS))
        if unknown:
            raise ConfigError(f"unknown network setting(s) {', '.join(unknown)}; known: {', '.join(NETWORK_KEYS)}")
        on_cuda = resolve_device(self.device).type == "cuda"
        network = {"latent_dim": LATENT_DIMS[self.dataset], "width": 1.0 if on_cuda else CPU_WIDTH, **self.network}
        if not isinstance(network["latent_dim"], int) or isinstance(network["latent_dim"], bool):
            raise ConfigError(f"network latent_dim {network['latent_dim']!r}: expected an integer")
        if not isinstance(network["width"], (int, float)) or isinstance(network["width"], bool):
            raise ConfigError(f"network width {network['width']!r}: expected a number (e.g. 0.0625)")
        return replace(
            self,
            data=None if self.data is None else str(self.data),
            epochs=self.epochs or PUBLISHED_EPOCHS[self.dataset],
            network=network,
        )

    def identity(self) -> dict[str, Any]:
        """What must stay the same when the run is resumed (everything but epochs and device)."""
        return {name: value for name, value in asdict(self).items() if name not in RESUMABLE}


def pixel_scale_defaults(model: str, image_shape: tuple[int, ...]) -> dict[str, float]:
    """Weights that put the prior terms on the scale of the per-pixel mean squared error.

    Image REC is the mean over pixels, D times smaller than a per-image sum, so a KL
    weight of 1 (or KS/CV weights calibrated to about 1) would outweigh it and collapse
    the posterior. Dividing the KL by D (VAE, CV-VAE) or multiplying REC by D (GMM prior)
    restores the per-image balance of the published models.
    """
    pixels = float(np.prod(image_shape))
    if model in ("vae", "cvvae"):
        return {"kl_weight": 1.0 / pixels}
    if model == "gmm":
        return {"rec_weight": pixels}
    return {}


@dataclass(frozen=True)
class RunData:
    """The training and validation images of a run and the checksum of the split they come from."""

    train: ImageDataset
    validation: ImageDataset
    checksum: str


def load_run_data(config: ImageRunConfig) -> RunData:
    """The split named by ``config`` (seeded subset of ``limit`` images), split into train / validation."""
    dataset = load_image_dataset(config.dataset, config.split, config.data)
    checksum = dataset.checksum
    if config.limit is not None:
        if config.limit > len(dataset):
            raise ConfigError(f"limit {config.limit} exceeds the {len(dataset)} images of {config.dataset} ({config.split})")
        chosen = np.random.default_rng(config.seed).choice(len(dataset), config.limit, replace=False)
        dataset = dataset.subset(np.sort(chosen))
    train, validation = train_validation_split(dataset, config.validation_fraction, config.seed)
    return RunData(train, validation, checksum)


def train_image_model(
    config: ImageRunConfig,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    callbacks: Sequence[EpochCallback] = (),
) -> dict:
    """Train, write the figures, and return the trainer's summary (plus ``figures``); all lands in ``out_dir``."""
    config = config.resolved()
    seed_everything(config.seed)
    data = load_run_data(config)
    if len(data.train) < config.batch_size:
        raise ConfigError(
            f"{len(data.train)} training images are fewer than one batch of {config.batch_size}; lower --batch-size"
        )
    objective = {**pixel_scale_defaults(config.model, data.train.image_shape), **config.objective}
    spec = image_model_spec(
        data.train.image_shape, config.network["latent_dim"], config.model, config.network["width"], **objective
    )
    model = build_image_model(spec)
    record = {
        "task": "image",
        "dataset": config.dataset,
        "split": config.split,
        "data_sha256": data.checksum,
        "config": config.identity(),
        "train_items": len(data.train),
        "validation_items": len(data.validation),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    trainer_config = TrainerConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        plateau_factor=PLATEAU_FACTOR,
        plateau_patience=PLATEAU_PATIENCE,
        min_learning_rate=config.learning_rate * LR_FLOOR_FRACTION,
        seed=config.seed,
        device=config.device,
        grad_clip=config.grad_clip,
        monitor=config.monitor or model.objective.validation_monitor,
    )
    sources = [ImageBatchSource.from_dataset(part) for part in (data.train, data.validation)]
    trainer = Trainer(model, *sources, trainer_config, out_dir, model.spec, record, quiet=quiet, callbacks=callbacks)
    summary = trainer.fit(resume=resume, overwrite=overwrite)
    atomic_write_json(Path(out_dir) / "config.json", {"config": asdict(config), "record": record})
    run = TrainedImageModel(out_dir, config.device, data=data)
    return {**summary, "figures": write_figures(run, Path(out_dir), config.seed)}


class TrainedImageModel(TrainedRun):
    """An image run loaded from its directory (best.pt, else last.pt): encode, decode, sample."""

    def __init__(self, path: str | Path, device: str = "auto", data: RunData | None = None):
        super().__init__(path, device)
        self.config = ImageRunConfig(**self.record["config"], epochs=self.state["config"]["epochs"], device=str(self.device))
        self._given_data = data
        self._samplers: dict[tuple, LatentSampler] = {}

    def build_model(self, spec: dict) -> ImageAutoEncoder:
        if spec.get("kind") != "image":
            raise CheckpointError(f"{self.checkpoint_file}: not an image model")
        self.spec = spec
        return build_image_model(spec)

    @cached_property
    def data(self) -> RunData:
        """The run's images, checked against the checksum recorded at training time."""
        data = self._given_data or load_run_data(self.config)
        if data.checksum != self.record["data_sha256"]:
            raise DataError(
                f"{self.config.dataset} ({self.config.split}): the images found have checksum {data.checksum[:12]}, "
                f"the run was trained on {self.record['data_sha256'][:12]}"
            )
        return data

    @torch.no_grad()
    def encode(self, images: np.ndarray | Tensor) -> Tensor:
        """Latent means (N, d) on the CPU of uint8 images (N, C, H, W)."""
        images = torch.as_tensor(images)
        parts = [self.model.latent_means(chunk.to(self.device)).float().cpu() for chunk in images.split(ENCODE_BATCH)]
        return torch.cat(parts)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Decoded uint8 images (N, C, H, W) on the CPU."""
        parts = [self.model.generate(chunk.float().to(self.device)).cpu() for chunk in z.split(ENCODE_BATCH)]
        return torch.cat(parts)

    def reconstruct(self, images: np.ndarray | Tensor) -> Tensor:
        return self.generate(self.encode(images))

    @cached_property
    def training_latents(self) -> Tensor:
        """Codes of (at most ``SAMPLER_LATENTS``, seeded) training images, for ex-post densities."""
        images = self.data.train.images
        if len(images) > SAMPLER_LATENTS:
            images = images[np.sort(np.random.default_rng(0).choice(len(images), SAMPLER_LATENTS, replace=False))]
        return self.encode(images)

    def prior_name(self) -> str:
        """What the "prior" sampler is: the training prior's kind, or the fitted Gaussian."""
        prior = self.model.objective.prior_sampler(self.latent_dim)
        return f"prior ({prior.kind})" if prior is not None else "fitted gaussian"

    def sampler(self, kind: str, **options: Any) -> LatentSampler:
        """``prior`` (the training prior; a fitted Gaussian for models without one), or an ex-post
        ``gaussian``, ``gmm`` or ``two-stage`` density fitted on training codes (``options`` go to
        its fitter). Fitted samplers are cached in the run directory per checkpoint and options."""
        if kind == "prior":
            prior = self.model.objective.prior_sampler(self.latent_dim)
            return prior if prior is not None else self.sampler("gaussian")
        if kind not in SAMPLER_KINDS:
            raise ConfigError(f"sampler {kind!r} is unknown; expected one of {', '.join(SAMPLER_KINDS)}")
        key = (kind, json.dumps(options, sort_keys=True))
        if key not in self._samplers:
            digest = hashlib.sha256(f"{self.checkpoint_sha256} {key[1]}".encode()).hexdigest()[:12]
            path = self.run_dir / f"sampler_{kind}_{digest}.pt"
            try:
                self._samplers[key] = load_sampler(path)
            except CheckpointError:  # absent or damaged: fitted now
                self._samplers[key] = fit_sampler(kind, self.training_latents, **options)
                save_sampler(path, self._samplers[key])
        return self._samplers[key]

    def samples(self, kind: str, n: int, seed: int = 0, fit: dict[str, Any] | None = None) -> Tensor:
        """``n`` decoded uint8 images from the sampler ``kind`` (``fit``: its fitter's options); deterministic given ``seed``."""
        z = self.sampler(kind, **(fit or {})).sample(n, torch.Generator().manual_seed(seed))
        return self.generate(z.cpu())


def slerp(a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (linear where they are parallel)."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12).clamp(-1.0, 1.0).unsqueeze(-1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    t = torch.as_tensor(t, dtype=a.dtype)
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / safe
    return torch.where(parallel, (1 - t) * a + t * b, spherical)


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


def load_image_run(path: str | Path, device: str = "auto") -> TrainedImageModel:
    return TrainedImageModel(path, device)


def write_sample_grid(
    run_path: str | Path, out: str | Path | None, n: int, sampler: str = "prior", seed: int = 0, device: str = "auto"
) -> Path:
    """``grammar-ae sample`` for image runs: ``n`` decoded samples of ``sampler`` as a PNG grid at ``out``."""
    if out is None or Path(out).suffix.lower() != ".png":
        raise ConfigError(f"image runs write their samples as a PNG grid: pass --out FILE.png (got {out})")
    if n < 1:
        raise ConfigError(f"-n {n}: expected at least one sample")
    run = load_image_run(run_path, device)
    return save_image_grid(out, run.samples(sampler, n, seed), columns=math.ceil(math.sqrt(n)))
