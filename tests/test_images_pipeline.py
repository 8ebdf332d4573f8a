"""The image pipeline end to end on scikit-learn's digits: training, figures, evaluation, CLI, benchmark."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import matplotlib.image
import pytest
import torch
import typer
from typer.testing import CliRunner

from grammar_ae.cli.commands_images import register_benchmarks
from grammar_ae.errors import CheckpointError, ConfigError, OutputError
from grammar_ae.evaluation.image_features import extract_features
from grammar_ae.evaluation.image_metrics import clustering_accuracy, precision_recall
from grammar_ae.evaluation.images import feature_extractor
from grammar_ae.evaluation.run import evaluate_run
from grammar_ae.models.image import presets
from grammar_ae.models.image.config import ImageRunConfig
from grammar_ae.models.image.figures import FIGURES, image_grid
from grammar_ae.models.image.interpolation import slerp
from grammar_ae.models.loading import load_run
from grammar_ae.objectives import OBJECTIVES
from grammar_ae.pipelines.train_images import train_image_model
from grammar_ae.training import load_checkpoint, save_checkpoint
from grammar_ae.utils.output_lock import hold_output_lock
from tests.conftest import shared_file

TINY = {"width": 1 / 32, "latent_dim": 10}
DETERMINISTIC = {"ae", "ae-l2", "rae", "rae-l2", "rae-gp", "rae-sn"}
FID_KEYS = ("reconstruction_fid", "sample_fid_gaussian", "sample_fid_gmm", "interpolation_fid")
FAST_EVALUATION = {"two_stage_epochs": 1}


def tiny_config(model: str, **changes) -> ImageRunConfig:
    settings = {"dataset": "digits", "limit": 150, "epochs": 1, "batch_size": 50, "device": "cpu", "network": dict(TINY)}
    return ImageRunConfig(model=model, **{**settings, **changes})


@pytest.mark.parametrize("model", sorted(OBJECTIVES))
def test_every_objective_trains_draws_figures_and_evaluates(model, tmp_path):
    summary = train_image_model(tiny_config(model), tmp_path, quiet=True)
    assert summary["epochs_run"] == 1 and math.isfinite(summary["best_validation_loss"])
    assert summary["record"]["train_items"] == 135 and summary["record"]["validation_items"] == 15
    assert summary["figures"] == list(FIGURES)
    # 8 x 8 samples; 15 validation images: 2 pairs of rows (inputs above reconstructions); 8 paths of 10 steps
    shapes = {name: matplotlib.image.imread(tmp_path / name).shape[:2] for name in FIGURES}
    assert shapes == {"samples.png": (137, 137), "reconstructions.png": (69, 137), "interpolations.png": (137, 171)}

    result = evaluate_run(tmp_path, "cpu", progress=False, options=FAST_EVALUATION)
    assert json.loads((tmp_path / "evaluation.json").read_text())["checkpoint_sha256"] == result["checkpoint_sha256"]
    for key in FID_KEYS:
        assert math.isfinite(result[key]) and result[key] > -1e-6, key
    assert result["feature_extractor"].startswith("lenet-fallback:")
    assert result["real_images"] == result["generated_images"] == 15
    # precision / recall are those of the prior's 15 samples against the 15 validation images
    run = load_run(tmp_path, "cpu")
    extractor = feature_extractor(run, None)
    assert extractor.name == result["feature_extractor"]
    real = extract_features(extractor, run.data.validation.images)
    expected = precision_recall(real, extract_features(extractor, run.samples("prior", 15, seed=0)), k=3)
    assert (result["precision"], result["recall"]) == pytest.approx((expected.precision, expected.recall))
    expected_source = (
        "fitted gaussian" if model in DETERMINISTIC
        else "prior (gmm-prior)" if model == "gmm" else "prior (standard-normal)"
    )
    assert result["sample_fid_gaussian_source"] == expected_source
    assert ("clustering_accuracy" in result) == (model == "gmm")
    assert ("sample_fid_two_stage" in result) == (model == "2svae")
    if model == "gmm":  # each validation code's nearest prior component, matched to the labels
        prior = run.model.objective.prior
        clusters = prior.component_of(run.encode(run.data.validation.images)).numpy()
        expected = clustering_accuracy(run.data.validation.labels, clusters)
        assert result["clustering_accuracy"] == pytest.approx(expected)


def test_resume_continues_exactly_and_checks_the_settings(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_image_model(tiny_config("ae", epochs=2), straight, quiet=True)
    train_image_model(tiny_config("ae", epochs=1), interrupted, quiet=True)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train_image_model(tiny_config("ae", epochs=2), interrupted, quiet=True)
    with pytest.raises(CheckpointError, match="model_spec.objective.beta"):
        train_image_model(tiny_config("ae", epochs=2, objective={"beta": 0.1}), interrupted, resume=True, quiet=True)
    summary = train_image_model(tiny_config("ae", epochs=2), interrupted, resume=True, quiet=True)
    assert summary["epochs_run"] == 2
    weights = [load_checkpoint(run / "last.pt")["model_state"] for run in (straight, interrupted)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_a_run_keeps_its_width_when_resumed_where_the_default_differs(tmp_path, monkeypatch):
    """The default width depends on the device a run starts on (1/16 on a CPU, 1 on CUDA); the
    stored spec and settings must not, so a CPU run resumes on CUDA (simulated here)."""
    started_on_cpu = tiny_config("ae", network={"latent_dim": 10})  # width left to the default
    train_image_model(started_on_cpu, tmp_path, quiet=True)
    before = load_checkpoint(tmp_path / "last.pt")
    assert before["model_spec"]["width"] == presets.CPU_WIDTH
    monkeypatch.setattr(presets, "resolve_device", lambda name: torch.device("cuda"))  # a machine with CUDA
    assert ImageRunConfig(dataset="digits", device="auto").resolved().network["width"] == presets.GPU_WIDTH
    resumed = dataclasses.replace(started_on_cpu, epochs=2, device="auto")
    assert train_image_model(resumed, tmp_path, resume=True, quiet=True)["epochs_run"] == 2
    after = load_checkpoint(tmp_path / "last.pt")
    assert after["model_spec"] == before["model_spec"] and after["record"] == before["record"]
    assert after["config"]["device"] == "auto" and "device" not in json.dumps(after["model_spec"])
    with pytest.raises(CheckpointError, match="model_spec.width is 0.0625 there, expected 1.0"):
        train_image_model(dataclasses.replace(resumed, epochs=3, network={"width": 1.0}), tmp_path, resume=True, quiet=True)


def test_runs_saved_before_the_family_key_load_and_resume(tmp_path):
    """Checkpoints of older versions: the image spec said "kind": "image", the trainer settings
    had mixed_precision and num_workers and no optimizer or scheduler."""
    train_image_model(tiny_config("ae"), tmp_path, quiet=True)
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(tmp_path / name)
        spec = {"kind": "image", **{key: value for key, value in state["model_spec"].items() if key != "family"}}
        config = {key: value for key, value in state["config"].items() if key not in ("optimizer", "weight_decay", "scheduler")}
        config["mixed_precision"] = config.pop("autocast")
        save_checkpoint(tmp_path / name, {**state, "model_spec": spec, "config": {**config, "num_workers": 0}})
    run = load_run(tmp_path, "cpu")
    assert run.family == "image" and run.spec.network.width == TINY["width"] and run.config.dataset == "digits"
    assert run.samples("gaussian", 4).shape == (4, 1, 16, 16)
    assert train_image_model(tiny_config("ae", epochs=2), tmp_path, resume=True, quiet=True)["epochs_run"] == 2


def test_split_limit_and_defaults(tmp_path):
    config = ImageRunConfig(dataset="mnist", device="cpu").resolved()
    assert config.epochs == 100 and config.network == {"latent_dim": 16, "width": 1 / 16}
    assert ImageRunConfig(dataset="cifar10", device="cpu").resolved().network["latent_dim"] == 128
    train_image_model(tiny_config("ae", split="test", limit=120), tmp_path, quiet=True)
    run = load_run(tmp_path, "cpu")
    assert run.record["split"] == "test" and len(run.data.train) + len(run.data.validation) == 120
    assert run.data.train.split == "test"  # the test split alone, split again into train / validation


def test_configuration_errors():
    with pytest.raises(ConfigError, match="unknown image setting.*colour.*known: batch_size"):
        ImageRunConfig.from_dict({"dataset": "digits", "colour": "red"})
    with pytest.raises(ConfigError, match="unknown image data set 'nope'"):
        ImageRunConfig(dataset="nope").resolved()
    with pytest.raises(ConfigError, match="image model 'vqvae' is unknown"):
        ImageRunConfig(model="vqvae").resolved()
    with pytest.raises(ConfigError, match="unknown network setting.*depth"):
        ImageRunConfig(network={"depth": 3}).resolved()
    with pytest.raises(ConfigError, match="network width '1/16': expected a number"):
        ImageRunConfig(network={"width": "1/16"}).resolved()
    with pytest.raises(ConfigError, match="limit 5000 exceeds"):
        train_image_model(tiny_config("ae", limit=5000), "unused", quiet=True)


def test_slerp_and_grid():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    middle = slerp(a, b, 0.5)
    assert torch.allclose(middle, torch.tensor([[math.sqrt(2), math.sqrt(2)]]))
    assert torch.allclose(slerp(a, 3 * a, 0.5), 2 * a)  # parallel: linear
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 2, 2).contiguous()
    grid = image_grid(images, columns=3)
    assert grid.shape == (7, 10, 1) and grid[1, 4, 0] == 1 and grid[4, 1, 0] == 3 and grid[4, 7, 0] == 255


def test_cli_evaluate_json_and_sample_grid(tmp_path):
    from grammar_ae.cli.main import app

    train_image_model(tiny_config("gmm"), tmp_path / "run", quiet=True)
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert {*FID_KEYS, "precision", "recall", "clustering_accuracy", "feature_extractor"} <= printed.keys()
    assert "warning: 15 held-out and 15 generated images: FID, precision and recall are unreliable below 1,000" in result.stderr
    result = runner.invoke(app, ["sample", str(tmp_path / "run"), "-n", "6", "--sampler", "gmm", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert matplotlib.image.imread(tmp_path / "s.png").shape[:2] == (35, 52)  # 2 rows x 3 columns of 16 px
    result = runner.invoke(app, ["sample", str(tmp_path / "run"), "--out", str(tmp_path / "s.txt")])
    assert isinstance(result.exception, ConfigError) and "--out FILE.png" in str(result.exception)
    result = runner.invoke(app, ["encode", str(tmp_path / "run"), "x"])
    assert isinstance(result.exception, CheckpointError) and "model of the image family" in str(result.exception)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "--dataset", "nope"], "error: unknown image data set 'nope'; expected one of digits, mnist"),
        (["train", "--dataset", "digits", "--set", "network.depth=3"], "error: unknown network setting(s) depth"),
    ],
)
def test_cli_errors_are_one_line(arguments, message, tmp_path, monkeypatch, capsys):
    from grammar_ae.cli.main import main

    monkeypatch.setattr(sys, "argv", ["grammar-ae", *arguments, "--out", str(tmp_path / "run"), "--device", "cpu"])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(message) and error.count("\n") == 1


def test_benchmark_command_writes_the_table(tmp_path):
    benchmark = typer.Typer()
    register_benchmarks(benchmark)
    app = typer.Typer()
    app.add_typer(benchmark, name="benchmark")
    common = ["benchmark", "images", "--dataset", "digits", "--epochs", "1", "--limit", "150", "--batch-size", "50",
              "--width", "0.03125", "--latent-dim", "10", "--device", "cpu", "--out", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(app, [*common, "--models", "ae", "gmm"])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "image_benchmark.json").read_text())
    assert [row["model"] for row in table["rows"]] == ["ae", "gmm"]
    csv_lines = (tmp_path / "image_benchmark.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,reconstruction_fid,sample_fid_gaussian,sample_fid_gmm,interpolation_fid")
    assert len(csv_lines) == 3 and "| gmm |" in (tmp_path / "image_benchmark.md").read_text()
    stored = (tmp_path / "gmm" / "evaluation.json").stat().st_mtime_ns
    assert CliRunner().invoke(app, [*common, "--models", "ae,gmm"]).exit_code == 0  # resumed, evaluation reused
    assert (tmp_path / "gmm" / "evaluation.json").stat().st_mtime_ns == stored
    result = CliRunner().invoke(app, [*common, "--models", "ae", "vqvae"])
    assert isinstance(result.exception, ConfigError) and "'vqvae' is unknown" in str(result.exception)
    with hold_output_lock(tmp_path):
        result = CliRunner().invoke(app, [*common, "--models", "ae"])
    assert isinstance(result.exception, OutputError) and f"PID {os.getpid()}" in str(result.exception)


@pytest.mark.parametrize("model", sorted(OBJECTIVES))
def test_every_objective_trains_on_the_mnist_test_split_from_the_cli(model, tmp_path, run_main):
    """The offline benchmark's data: MNIST's test split alone, from $GRAMMAR_AE_DATA/mnist."""
    shared_file("mnist/t10k-images-idx3-ubyte.gz")
    out = tmp_path / model
    code, stdout, stderr = run_main(
        "train", "--dataset", "mnist", "--split", "test", "--model", model, "--limit", "240", "--epochs", "1",
        "--batch-size", "60", "--device", "cpu", "--set", "network.width=0.03125", "--set", "network.latent_dim=10",
        "--out", str(out), "--quiet",
    )
    assert code == 0, stderr
    assert "trained 1 epochs" in stdout and (out / "best.pt").exists() and (out / "samples.png").exists()
