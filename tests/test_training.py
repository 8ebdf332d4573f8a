"""The shared trainer on a small real model: an MLP VAE on scikit-learn's 8x8 digits."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from grammar_ae.errors import CheckpointError, ConfigError, DataError, TrainingError
from grammar_ae.models.base import AutoEncoder
from grammar_ae.objectives import EncoderOutput, ReconstructionTerms, build_objective
from grammar_ae.training import (
    TensorBatchSource,
    Trainer,
    TrainerConfig,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)

PIXELS = 64
SPEC = {"kind": "digits-mlp", "hidden": 32, "latent_dim": 4, "objective": "vae"}
PIXEL_MAX = 16.0


class GaussianEncoder(nn.Module):
    def __init__(self, hidden: int, latent_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: Tensor) -> EncoderOutput:
        h = self.body(x)
        return EncoderOutput(self.mu(h), self.logvar(h))


class DigitsAutoEncoder(AutoEncoder):
    """Pixels 0..16 stored compactly; per-pixel squared error as reconstruction loss."""

    def __init__(self, hidden: int, latent_dim: int, objective: str, **_: object):
        decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, PIXELS), nn.Sigmoid())
        super().__init__(GaussianEncoder(hidden, latent_dim), decoder, build_objective(objective), latent_dim)

    def inputs(self, batch: Tensor) -> Tensor:
        return batch.float() / PIXEL_MAX

    def reconstruction(self, decoded: Tensor, batch: Tensor) -> ReconstructionTerms:
        squared_error = (decoded - self.inputs(batch)) ** 2
        return ReconstructionTerms(loss=squared_error.sum(dim=1).mean(), squared_error=squared_error)


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    images = torch.from_numpy(load_digits().data).to(torch.uint8)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    return images[order[:1500]], images[order[1500:]]


def record_of(train: Tensor) -> dict:
    return {"data_checksum": hashlib.sha256(train.numpy().tobytes()).hexdigest(), "grammar_hash": None}


def make_trainer(
    digits, out_dir: Path, epochs: int, model_seed: int = 0, spec: dict = SPEC, **config_changes
) -> Trainer:
    train, validation = digits
    seed_everything(model_seed)
    model = DigitsAutoEncoder(**spec)
    settings = {"epochs": epochs, "batch_size": 100, "learning_rate": 3e-3, **config_changes}
    return Trainer(
        model,
        TensorBatchSource(train),
        TensorBatchSource(validation),
        TrainerConfig(**settings),
        out_dir,
        model_spec=spec,
        record=record_of(train),
        quiet=True,
    )


def read_metrics(out_dir: Path) -> list[dict]:
    with open(out_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished_run(digits, tmp_path_factory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("run")
    summary = make_trainer(digits, out_dir, epochs=4).fit()
    return out_dir, summary


def test_loss_decreases_and_run_files_are_complete(finished_run):
    out_dir, summary = finished_run
    rows = read_metrics(out_dir)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {
        "epoch", "lr", "seconds", "cpu_seconds", "train_loss", "train_rec", "train_kl", "val_loss", "val_rec", "val_kl",
    }
    assert float(rows[-1]["train_loss"]) < 0.8 * float(rows[0]["train_loss"])
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])

    on_disk = json.loads((out_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["epochs_run"] == 4
    best_row = min(rows, key=lambda row: float(row["val_loss"]))
    assert on_disk["best_epoch"] == int(best_row["epoch"])
    assert on_disk["best_validation_loss"] == pytest.approx(float(best_row["val_loss"]))
    assert on_disk["final"]["train"]["loss"] == pytest.approx(float(rows[-1]["train_loss"]))
    assert on_disk["device"] == "cpu" and on_disk["model_spec"] == SPEC
    assert on_disk["record"]["data_checksum"] and "code_version" in on_disk["provenance"]
    assert (out_dir / "loss_curve.png").read_bytes().startswith(b"\x89PNG")

    last = load_checkpoint(out_dir / "last.pt")
    best = load_checkpoint(out_dir / "best.pt")
    assert last["epoch"] == 4 and best["epoch"] == on_disk["best_epoch"]
    assert last["model_spec"] == SPEC and last["config"]["batch_size"] == 100
    rebuilt = DigitsAutoEncoder(**best["model_spec"])
    rebuilt.load_state_dict(best["model_state"])


def test_resume_ends_identical_to_an_uninterrupted_run(digits, tmp_path):
    straight = make_trainer(digits, tmp_path / "straight", epochs=3)
    straight.fit()

    make_trainer(digits, tmp_path / "split", epochs=2).fit()
    resumed = make_trainer(digits, tmp_path / "split", epochs=3, model_seed=99)
    resumed.fit(resume=True)

    straight_state, resumed_state = straight.model.state_dict(), resumed.model.state_dict()
    assert straight_state.keys() == resumed_state.keys()
    for name, tensor in straight_state.items():
        assert torch.equal(tensor, resumed_state[name]), name

    def without_time(rows: list[dict]) -> list[dict]:
        return [{key: value for key, value in row.items() if key not in ("seconds", "cpu_seconds")} for row in rows]

    assert without_time(read_metrics(tmp_path / "split")) == without_time(read_metrics(tmp_path / "straight"))
    assert load_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 3


class PoisonedSource(TensorBatchSource):
    """Real digits whose training pass number ``poisoned_pass`` has a NaN pixel in batch ``poisoned_batch``."""

    def __init__(self, images: Tensor, poisoned_pass: int, poisoned_batch: int):
        super().__init__(images.float())
        self.poisoned_pass, self.poisoned_batch = poisoned_pass, poisoned_batch
        self.passes = 0

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterator[Tensor]:
        self.passes += shuffle
        for index, batch in enumerate(super().batches(batch_size, shuffle, generator), start=1):
            if self.passes == self.poisoned_pass and index == self.poisoned_batch:
                batch = batch.clone()
                batch[0, 0] = float("nan")
            yield batch


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    trainer = make_trainer(digits, tmp_path, epochs=3)
    trainer.train = PoisonedSource(digits[0], poisoned_pass=2, poisoned_batch=3)
    with pytest.raises(TrainingError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert "epoch 2" in message and "batch 3" in message and "loss" in message and "rec" in message
    assert "\n" not in message

    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in last["model_state"].values())
    assert len(read_metrics(tmp_path)) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
        lambda path: path.write_bytes(b"\x00garbage" * 100),
        lambda path: path.write_bytes(b""),
        lambda path: path.unlink(),
        lambda path: torch.save({"model_state": {}}, path),
        lambda path: save_checkpoint(path, {"epoch": 1}) or _set_version(path, 99),
    ],
    ids=["truncated", "garbage", "empty", "missing", "no-marker", "future-version"],
)
def test_unusable_checkpoint_raises_checkpoint_error(finished_run, tmp_path, damage):
    path = tmp_path / "last.pt"
    shutil.copy(finished_run[0] / "last.pt", path)
    damage(path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def _set_version(path: Path, version: int) -> None:
    state = torch.load(path, weights_only=True)
    state["grammar_ae_checkpoint"] = version
    torch.save(state, path)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"spec": {**SPEC, "kind": "other-model"}}, "model_spec.kind"),
        ({"batch_size": 50}, "config.batch_size"),
        ({"record": {"grammar_hash": "abc"}}, "record.grammar_hash"),
    ],
)
def test_resume_with_a_different_model_or_data_is_refused(digits, finished_run, tmp_path, changes, named):
    shutil.copy(finished_run[0] / "last.pt", tmp_path / "last.pt")
    changes = dict(changes)
    record_changes = changes.pop("record", {})
    trainer = make_trainer(digits, tmp_path, epochs=5, **changes)
    trainer.record.update(record_changes)
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        trainer.fit(resume=True)


def test_resume_without_a_run_names_the_missing_checkpoint(digits, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        make_trainer(digits, tmp_path, epochs=1).fit(resume=True)


def test_existing_run_needs_resume_or_overwrite(digits, finished_run, tmp_path):
    for name in ("last.pt", "metrics.csv"):
        shutil.copy(finished_run[0] / name, tmp_path / name)
    with pytest.raises(ConfigError, match="--resume"):
        make_trainer(digits, tmp_path, epochs=1).fit()
    summary = make_trainer(digits, tmp_path, epochs=1).fit(overwrite=True)
    assert summary["epochs_run"] == 1 and len(read_metrics(tmp_path)) == 1


def test_epoch_callback_and_before_training_hook(digits, tmp_path):
    seen: list[tuple[int, float]] = []
    trainer = make_trainer(digits, tmp_path, epochs=2)
    trainer.callbacks.append(lambda epoch, metrics: seen.append((epoch, metrics["val_loss"])))
    calls: list[int] = []
    trainer.model.before_training = calls.append
    summary = trainer.fit()
    assert [epoch for epoch, _ in seen] == [1, 2] and calls == [100]
    assert seen[-1][1] == summary["final"]["validation"]["loss"]


def test_check_compatible_names_the_nested_key():
    stored = {"model_spec": {"kind": "gvae", "layers": {"gru": 3}}, "record": {"grammar_hash": "a"}}
    check_compatible(stored, {"record": {"grammar_hash": "a"}})
    with pytest.raises(CheckpointError, match=r"model_spec\.layers\.gru is 3 there, expected 2"):
        check_compatible(stored, {"model_spec": {"kind": "gvae", "layers": {"gru": 2}}})
    with pytest.raises(CheckpointError, match=r"data_checksum is missing"):
        check_compatible(stored, {"data_checksum": "x"})


def test_tensor_batch_source_covers_every_item_once():
    items, labels = torch.arange(23, dtype=torch.int16), torch.arange(23) * 10
    source = TensorBatchSource(items, labels)
    batches = list(source.batches(5, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert [len(part) for part, _ in batches] == [5, 5, 5, 5, 3]
    assert sorted(torch.cat([part for part, _ in batches]).tolist()) == list(range(23))
    assert all(torch.equal(part.long() * 10, label) for part, label in batches)
    assert torch.equal(next(TensorBatchSource(items).batches(4, False, torch.Generator())), items[:4])
    with pytest.raises(DataError):
        TensorBatchSource(items, labels[:5])


def test_trainer_config_rejects_bad_settings():
    with pytest.raises(ConfigError, match="plateau_factor=1.5"):
        TrainerConfig(epochs=1, batch_size=10, plateau_factor=1.5)
    with pytest.raises(ConfigError, match="batch_size=0"):
        TrainerConfig(epochs=1, batch_size=0)
    with pytest.raises(ConfigError, match="optimizer 'lbfgs' is unknown; expected one of adam, adamw, sgd"):
        TrainerConfig(epochs=1, batch_size=10, optimizer="lbfgs")
    with pytest.raises(ConfigError, match="scheduler 'step' is unknown"):
        TrainerConfig(epochs=1, batch_size=10, scheduler="step")


def test_optimizer_and_schedule_come_from_the_config(digits, tmp_path):
    default = make_trainer(digits, tmp_path / "default", epochs=1)
    assert type(default.optimizer) is torch.optim.Adam
    assert type(default.scheduler.scheduler) is torch.optim.lr_scheduler.ReduceLROnPlateau
    trainer = make_trainer(digits, tmp_path / "cosine", epochs=3, optimizer="adamw", weight_decay=0.01,
                           scheduler="cosine", min_learning_rate=1e-4)
    assert type(trainer.optimizer) is torch.optim.AdamW and trainer.optimizer.param_groups[0]["weight_decay"] == 0.01
    trainer.fit()
    rates = [float(row["lr"]) for row in read_metrics(tmp_path / "cosine")]
    assert rates[0] == 3e-3 and rates[0] > rates[1] > rates[2] > 1e-4  # annealed every epoch, not on plateaus


def test_a_run_saved_with_the_old_trainer_settings_resumes(digits, tmp_path):
    """Checkpoints written before ``mixed_precision`` became ``autocast`` and ``num_workers`` went away."""
    make_trainer(digits, tmp_path, epochs=1).fit()
    state = load_checkpoint(tmp_path / "last.pt")
    config = dict(state["config"])
    config["mixed_precision"] = config.pop("autocast")
    for name in ("optimizer", "weight_decay", "scheduler"):
        del config[name]
    save_checkpoint(tmp_path / "last.pt", {**state, "config": {**config, "num_workers": 0}})
    summary = make_trainer(digits, tmp_path, epochs=2).fit(resume=True)
    assert summary["epochs_run"] == 2
    with pytest.raises(CheckpointError, match="config.optimizer is 'adam' there, expected 'sgd'"):
        make_trainer(digits, tmp_path, epochs=3, optimizer="sgd").fit(resume=True)


def test_monitor_picks_the_best_checkpoint_by_the_named_term(digits, tmp_path):
    summary = make_trainer(digits, tmp_path, epochs=3, monitor="kl", learning_rate=3e-2).fit()
    rows = read_metrics(tmp_path)
    kl_by_epoch = {int(row["epoch"]): float(row["val_kl"]) for row in rows}
    loss_by_epoch = {int(row["epoch"]): float(row["val_loss"]) for row in rows}
    best = min(kl_by_epoch, key=kl_by_epoch.get)
    assert best != min(loss_by_epoch, key=loss_by_epoch.get)  # judging by the whole loss would pick another epoch
    assert summary["best_epoch"] == best
    assert summary["best_validation_loss"] == pytest.approx(kl_by_epoch[best], rel=1e-6)
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best


def test_unknown_monitor_names_the_terms(digits, tmp_path):
    with pytest.raises(ConfigError, match=r"monitor 'ks' is not a loss term.*loss, rec, kl"):
        make_trainer(digits, tmp_path, epochs=1, monitor="ks").fit()


def test_a_resumed_run_may_lower_its_learning_rate(digits, tmp_path):
    make_trainer(digits, tmp_path, epochs=1).fit()
    make_trainer(digits, tmp_path, epochs=3, learning_rate=5e-4, min_learning_rate=5e-5).fit(resume=True)
    rates = [float(row["lr"]) for row in read_metrics(tmp_path)]
    assert rates == [3e-3, 5e-4, 5e-4]  # the new rate from the resumed epoch on
    with pytest.raises(CheckpointError, match="config.batch_size"):
        make_trainer(digits, tmp_path, epochs=4, batch_size=7).fit(resume=True)  # other settings must match


def test_a_learning_rate_below_the_familys_floor_lowers_the_floor():
    from grammar_ae.models.sequence.config import SequenceRunConfig

    config = SequenceRunConfig(grammar="smiles", learning_rate=5e-5).resolved()
    trainer = config.trainer_config("rec")
    assert trainer.learning_rate == trainer.min_learning_rate == 5e-5
    assert SequenceRunConfig(grammar="smiles", learning_rate=1e-3).resolved().trainer_config("rec").min_learning_rate == 1e-4
