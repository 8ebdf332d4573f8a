"""The image pipeline end to end on scikit-learn's digits: training, figures, evaluation, CLI, benchmark."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import matplotlib.image
import numpy as np
import pytest
import torch
import typer
from torch.distributions import Normal, kl_divergence
from typer.testing import CliRunner

from grammar_ae.cli.commands_images import register_benchmarks
from grammar_ae.errors import CheckpointError, ConfigError, OutputError
from grammar_ae.evaluation.image_features import extract_features
from grammar_ae.evaluation.image_metrics import clustering_accuracy, precision_recall
from grammar_ae.evaluation.images import _interpolate, _pairs, feature_extractor
from grammar_ae.evaluation.run import evaluate_run
from grammar_ae.models.image import presets
from grammar_ae.models.image.config import ImageRunConfig
from grammar_ae.models.image.figures import FIGURES, image_grid, loss_units
from grammar_ae.models.image.interpolation import slerp
from grammar_ae.models.loading import load_run
from grammar_ae.objectives import OBJECTIVES
from grammar_ae.pipelines.train_images import train_image_model
from grammar_ae.training import load_checkpoint, save_checkpoint
from grammar_ae.utils.output_lock import hold_output_lock
from tests.conftest import shared_file

TINY = {"width": 1 / 32, "latent_dim": 10}
DETERMINISTIC = {"ae", "ae-l2", "rae", "rae-l2", "rae-gp", "rae-sn"}
FID_KEYS = (
    "reconstruction_fid", "sample_fid_prior", "sample_fid_standard_normal", "sample_fid_gaussian", "sample_fid_gmm",
    "sample_fid_gmm100", "sample_fid_second_stage", "interpolation_fid", "interpolation_fid_random",
)
SMOOTHNESS_KEYS = ("reconstruction_mse", "els", "expected_gap_1e-2", "expected_gap_1e-3")
FAST_EVALUATION = {"two_stage_epochs": 1, "large_gmm_components": 3}


def tiny_config(model: str, **changes) -> ImageRunConfig:
    settings = {"dataset": "digits", "limit": 150, "epochs": 1, "batch_size": 50, "device": "cpu", "network": dict(TINY)}
    return ImageRunConfig(model=model, **{**settings, **changes})


@pytest.mark.parametrize("model", sorted(OBJECTIVES))
def test_every_objective_trains_draws_figures_and_evaluates(model, tmp_path):
    summary = train_image_model(tiny_config(model), tmp_path, quiet=True)
    assert summary["epochs_run"] == 1 and math.isfinite(summary["best_validation_loss"])
    assert summary["record"]["train_items"] == 135 and summary["record"]["validation_items"] == 15
    assert summary["figures"] == list(FIGURES)
    # rows of 10 images of 16 px (17 with the gap) upscaled 4 times, 170 px of row labels at the left:
    # samples by sampler (N(0, I), MVG, GMM-10, and the GMM prior); 15 validation images: 2 pairs of
    # rows (originals above reconstructions); 4 interpolation paths
    shapes = {name: matplotlib.image.imread(tmp_path / name).shape[:2] for name in FIGURES[:3]}
    sample_rows = 4 if model == "gmm" else 3
    assert shapes == {
        "samples.png": (4 * (17 * sample_rows + 1), 170 + 4 * 171),
        "reconstructions.png": (4 * 69, 170 + 4 * 171),
        "interpolations.png": (4 * 69, 170 + 4 * 171),
    }

    result = evaluate_run(tmp_path, "cpu", progress=False, options=FAST_EVALUATION)
    assert json.loads((tmp_path / "evaluation.json").read_text())["checkpoint_sha256"] == result["checkpoint_sha256"]
    for key in FID_KEYS:
        assert math.isfinite(result[key]) and result[key] > -1e-6, key
    for key in SMOOTHNESS_KEYS:
        assert math.isfinite(result[key]) and result[key] >= 0, key
    stochastic = OBJECTIVES[model].stochastic_encoder
    assert ("kl" in result) == ("sigma_z2" in result) == stochastic
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
    assert result["sample_fid_prior_source"] == expected_source
    assert ("clustering_accuracy" in result) == (model == "gmm")
    if stochastic:  # KL (nats per image) and sigma_z^2 of the validation images' encodings
        codes = run.encode_distribution(run.data.validation.images)
        posterior = Normal(codes.mu.double(), (0.5 * codes.logvar.double()).exp())
        kl = kl_divergence(posterior, Normal(0.0, 1.0)).sum(dim=1).mean()
        assert (result["kl"], result["sigma_z2"]) == pytest.approx((float(kl), float(posterior.variance.mean())))
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
    with pytest.raises(ConfigError, match="unknown network setting.*dilation"):
        ImageRunConfig(network={"dilation": 3}).resolved()
    with pytest.raises(ConfigError, match="network depth 0: expected an integer >= 1"):
        ImageRunConfig(network={"depth": 0}).resolved()
    with pytest.raises(ConfigError, match="latent_norm 'group': expected one of none, batch, spectral, layer, noise"):
        ImageRunConfig(network={"latent_norm": "group"}).resolved()
    with pytest.raises(ConfigError, match="latent_norm noise needs network.latent_noise_std=S"):
        ImageRunConfig(network={"latent_norm": "noise"}).resolved()
    with pytest.raises(ConfigError, match="latent_noise_std applies to latent_norm noise only"):
        ImageRunConfig(network={"latent_noise_std": 0.1}).resolved()
    with pytest.raises(ConfigError, match="latent_layer 'fixed': expected one of none, trainable, frozen"):
        ImageRunConfig(network={"latent_layer": "fixed"}).resolved()
    with pytest.raises(ConfigError, match="objective.reconstruction 'l1': expected one of mse, bce"):
        ImageRunConfig(objective={"reconstruction": "l1"}).resolved()
    with pytest.raises(ConfigError, match="ar-elbo models the Gaussian likelihood of the squared errors itself"):
        ImageRunConfig(model="ar-elbo", objective={"reconstruction": "bce"}).resolved()
    with pytest.raises(ConfigError, match="objective.beta: wae has no KL term"):
        ImageRunConfig(model="wae", objective={"beta": 0.1}).resolved()
    with pytest.raises(ConfigError, match="objective.beta .* or objective.kl_weight, not both"):
        ImageRunConfig(model="vae", objective={"beta": 0.1, "kl_weight": 1.0}).resolved()
    with pytest.raises(ConfigError, match="network width '1/16': expected a number"):
        ImageRunConfig(network={"width": "1/16"}).resolved()
    with pytest.raises(ConfigError, match="limit 5000 exceeds"):
        train_image_model(tiny_config("ae", limit=5000), "unused", quiet=True)


def test_interpolation_points_between_pairs_of_codes():
    codes = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0]])
    pairs = _pairs(3, 500, np.random.default_rng(0))
    assert (pairs[0] != pairs[1]).all() and set(pairs[0]) == {0, 1, 2}
    ends = [_interpolate(codes, pairs, torch.full((500, 1), t)) for t in (0.0, 1.0)]
    assert torch.allclose(ends[0], codes[pairs[0]], atol=1e-6) and torch.allclose(ends[1], codes[pairs[1]], atol=1e-6)
    third = _interpolate(codes, (np.array([0]), np.array([1])), torch.full((1, 1), 1 / 3))
    assert torch.allclose(third, torch.tensor([[math.sqrt(3), 1.0]]))  # 30 of the 90 degrees, on the circle of radius 2


def test_loss_curves_carry_units(tmp_path):
    train_image_model(tiny_config("vae", epochs=2, objective={"reconstruction": "bce", "beta": 0.01}), tmp_path / "vae", quiet=True)
    run = load_run(tmp_path / "vae", "cpu")
    units = loss_units(run.model.objective, run.spec.reconstruction)
    assert (units["rec"], units["kl"], units["loss"]) == ("BCE per pixel, nats", "nats per image", "weighted sum of the other terms")
    units = loss_units(OBJECTIVES["ar-elbo"], "mse")
    assert (units["rec"], units["nll"], units["loss"]) == (
        "MSE per pixel, [0, 1] scale", "nats per image, constants dropped", "nats per image, constants dropped")
    assert matplotlib.image.imread(tmp_path / "vae" / "loss_curves.png").shape[:2] == (320, 1260)  # loss, rec, kl


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
    assert {*FID_KEYS, *SMOOTHNESS_KEYS, "precision", "recall", "clustering_accuracy", "feature_extractor"} <= printed.keys()
    assert "warning: 15 held-out and 15 generated images: FID, precision and recall are unreliable below 1,000" in result.stderr
    result = runner.invoke(app, ["sample", str(tmp_path / "run"), "-n", "6", "--sampler", "gmm", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert matplotlib.image.imread(tmp_path / "s.png").shape[:2] == (4 * 35, 4 * 52)  # 2 rows x 3 columns of 16 px, 4x
    result = runner.invoke(app, ["sample", str(tmp_path / "run"), "--out", str(tmp_path / "s.txt")])
    assert isinstance(result.exception, ConfigError) and "--out FILE.png" in str(result.exception)
    result = runner.invoke(app, ["encode", str(tmp_path / "run"), "x"])
    assert isinstance(result.exception, CheckpointError) and "model of the image family" in str(result.exception)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "--dataset", "nope"], "error: unknown image data set 'nope'; expected one of digits, mnist"),
        (["train", "--dataset", "digits", "--set", "network.dilation=3"], "error: unknown network setting(s) dilation"),
        (["train", "--dataset", "digits", "--latent-norm", "group"], "error: network latent_norm 'group': expected one of"),
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
    assert csv_lines[0].startswith("model,objective,reconstruction_fid,reconstruction_mse,sample_fid_prior,sample_fid_standard_normal")
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


def test_benchmark_sweep_trains_the_grid_and_plots_fid_against_latent_size(tmp_path):
    benchmark = typer.Typer()
    register_benchmarks(benchmark)
    app = typer.Typer()
    app.add_typer(benchmark, name="benchmark")
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["ae", "vae-b"]\n[variants.vae-b]\nmodel = "vae"\nobjective = {beta = 0.01}\n')
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, [
        "benchmark", "images", "--dataset", "digits", "--epochs", "1", "--limit", "150", "--batch-size", "50",
        "--width", "0.03125", "--device", "cpu", "--out", str(out), "--quiet", "--config", str(grid),
        "--sweep", "latent=2,3", "--set", "objective.reconstruction=bce", "--latent-norm", "batch",
        "--samplers", "standard_normal,gaussian,gmm",
    ])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "image_benchmark.json").read_text())
    assert [(row["model"], row["latent"], row["run"]) for row in table["rows"]] == [
        ("ae", 2, "ae-latent2"), ("ae", 3, "ae-latent3"), ("vae-b", 2, "vae-b-latent2"), ("vae-b", 3, "vae-b-latent3"),
    ]
    spec = load_checkpoint(out / "vae-b-latent3" / "best.pt")["model_spec"]
    assert (spec["latent_dim"], spec["latent_norm"], spec["reconstruction"]) == (3, "batch", "bce")
    assert spec["objective"]["kl_weight"] == pytest.approx(0.01 / 256)
    assert all(row["sample_fid_gmm100"] is None and row["sample_fid_gmm"] > 0 for row in table["rows"])
    header = (out / "image_benchmark.csv").read_text().splitlines()[0]
    assert header.startswith("model,latent,objective,reconstruction_fid,reconstruction_mse,sample_fid_standard_normal,")
    assert "| latent |" in (out / "image_benchmark.md").read_text()
    assert matplotlib.image.imread(out / "image_benchmark.png").shape[:2] == (360, 4 * 420)  # N(0, I), MVG, GMM-10, rec.
    result = CliRunner().invoke(app, ["benchmark", "images", "--dataset", "digits", "--out", str(out), "--sweep", "latent"])
    assert isinstance(result.exception, ConfigError) and "expected KEY=V1,V2" in str(result.exception)


def test_cli_trains_with_the_network_and_objective_options_and_evaluates(tmp_path, run_main):
    out = tmp_path / "run"
    code, _, stderr = run_main(
        "train", "--dataset", "digits", "--model", "trainable-sigma", "--variant", "diag-d", "--latent-norm", "noise",
        "--set", "network.latent_noise_std=0.2", "--depth", "2", "--set", "network.latent_layer=frozen",
        "--set", "objective.beta=0.5", "--limit", "150", "--epochs", "1", "--batch-size", "50", "--device", "cpu",
        "--set", "network.width=0.03125", "--set", "network.latent_dim=4", "--out", str(out), "--quiet",
    )
    assert code == 0, stderr
    spec = load_checkpoint(out / "best.pt")["model_spec"]
    assert {key: spec[key] for key in ("depth", "latent_norm", "latent_noise_std", "latent_layer")} == {
        "depth": 2, "latent_norm": "noise", "latent_noise_std": 0.2, "latent_layer": "frozen"}
    assert (spec["objective"]["variant"], spec["objective"]["kl_weight"]) == ("diag-d", 0.5)
    code, stdout, stderr = run_main("evaluate", str(out), "--json", "--device", "cpu")
    assert code == 0, stderr
    printed = json.loads(stdout.strip().splitlines()[-1])
    issue_keys = {
        "sample_fid_standard_normal", "sample_fid_gaussian", "sample_fid_gmm", "sample_fid_gmm100",
        "sample_fid_second_stage", "interpolation_fid", "interpolation_fid_random", "els", "expected_gap_1e-2",
        "expected_gap_1e-3", "kl", "sigma_z2",
    }
    assert issue_keys <= printed.keys() and all(math.isfinite(printed[key]) for key in issue_keys)
