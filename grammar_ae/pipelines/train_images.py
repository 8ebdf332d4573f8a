"""Train an image autoencoder on a named image data set (``grammar-ae train --dataset``).

Settings and their defaults: ``grammar_ae.models.image.config`` and ``.presets``. A resumed run
keeps the network settings it started with unless they are given again. After training,
``samples.png``, ``reconstructions.png`` and ``interpolations.png`` are written beside the
checkpoints (from the best checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from grammar_ae.data.images.datasets import ImageBatchSource
from grammar_ae.models.base import count_parameters
from grammar_ae.models.image.config import ImageRunConfig
from grammar_ae.models.image.data import load_run_data
from grammar_ae.models.image.figures import write_figures
from grammar_ae.models.image.model import FAMILY, image_model_spec
from grammar_ae.models.image.presets import image_objective_settings
from grammar_ae.models.loading import load_run
from grammar_ae.training import EpochCallback, Trainer, seed_everything
from grammar_ae.training.preflight import check_trainable
from grammar_ae.training.run_directory import check_resumable, kept_on_write_failure, stored_run
from grammar_ae.training.run_settings import save_run_settings
from grammar_ae.utils.output_lock import hold_output_lock


def train_image_model(
    config: ImageRunConfig,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    callbacks: Sequence[EpochCallback] = (),
) -> dict:
    """Train, write the figures, and return the trainer's summary (plus ``figures``); all lands in
    ``out_dir``, which is locked for the job and written only once every check has passed."""
    out_dir = Path(out_dir)
    with hold_output_lock(out_dir):
        stored = stored_run(out_dir, resume, overwrite)
        config = config.resolved(started_network=None if stored is None else stored["record"]["config"]["network"])
        seed_everything(config.seed)
        data = load_run_data(config)
        network = config.network_config()
        objective, reconstruction = image_objective_settings(config.model, config.objective, data.train.image_shape)
        model = image_model_spec(
            data.train.image_shape, network.latent_dim, config.model, network.width,
            network=network.changed_settings(), reconstruction=reconstruction, **objective,
        ).build()
        record = {
            "task": "image",
            "dataset": config.dataset,
            "split": config.split,
            "data_sha256": data.checksum,
            "config": config.identity(),
            "train_items": len(data.train),
            "validation_items": len(data.validation),
            "parameters": count_parameters(model),
        }
        trainer_config = config.trainer_config(model.objective.validation_monitor)
        sources = [ImageBatchSource.from_dataset(part) for part in (data.train, data.validation)]
        check_trainable(model, *sources, trainer_config, config.monitor)
        if stored is not None:
            check_resumable(stored, model.spec.to_dict(), record, trainer_config, out_dir)
        with kept_on_write_failure(out_dir):
            trainer = Trainer(
                model, *sources, trainer_config, out_dir, model.spec.to_dict(), record, quiet=quiet, callbacks=callbacks
            )
            summary = trainer.fit(resume=resume, overwrite=overwrite)
            save_run_settings(out_dir, config, record)
            run = load_run(out_dir, config.device, family=FAMILY)
            run.attach_data(data)
            return {**summary, "figures": write_figures(run, out_dir, trainer.history, config.seed)}
