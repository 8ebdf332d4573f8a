"""Settings as users write them: numbers in --set and config files, and impossible values
refused in one line that names the key, before anything is trained or written."""

from __future__ import annotations

import re

import pytest

from grammar_ae.errors import ConfigError
from grammar_ae.evaluation.sequence import EvaluationConfig
from grammar_ae.models.sequence.config import SequenceRunConfig
from grammar_ae.utils.config_files import parse_assignments, read_config_file


def test_numbers_parse_as_written(tmp_path):
    values = parse_assignments(["learning_rate=1e6", "objective.beta=1e-3", "a=1.5e3", "b=-2E+3", "c=3", "d=abc"])
    assert values == {"learning_rate": 1e6, "objective": {"beta": 1e-3}, "a": 1500.0, "b": -2000.0, "c": 3, "d": "abc"}
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: 1e-4\nobjective:\n  beta: 5e-2\n")
    assert read_config_file(config) == {"learning_rate": 1e-4, "objective": {"beta": 0.05}}
    assert SequenceRunConfig.from_dict({"learning_rate": values["learning_rate"]}).learning_rate == 1e6
    assert SequenceRunConfig.from_dict({"learning_rate": 1}).learning_rate == 1.0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--epochs", "0"], "sequence-model setting epochs=0: expected an integer >= 1"),
        (["--batch-size", "0"], "sequence-model setting batch_size=0: expected an integer >= 1"),
        (["--limit", "-5"], "sequence-model setting limit=-5: expected an integer >= 2"),
        (["--limit", "3000"], "limit 3000: more than the 300 items"),
        (["--set", "epochs=abc"], "sequence-model setting epochs='abc': expected an integer"),
        (["--set", "learning_rate=abc"], "sequence-model setting learning_rate='abc': expected a number"),
        (["--set", "monitor=foo"], "monitor 'foo' is not a loss term of this model; its terms are loss, rec"),
        (["--batch-size", "1", "--set", "network.batch_norm=true"], "batch_size 1: the network has batch normalisation"),
    ],
)
def test_impossible_settings_are_one_line_errors_before_training(run_main, tiny_train, tmp_path, arguments, message):
    out = tmp_path / "run"
    code, _, err = run_main(*tiny_train, *arguments, "--out", str(out))
    assert code == 1 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not out.exists()  # refused before the first epoch: nothing written, not even the folder


def test_image_batch_of_one_with_batch_norm_is_refused(run_main, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_main("train", "--dataset", "digits", "--limit", "150", "--batch-size", "1", "--device", "cpu",
                            "--out", str(out))
    assert code == 1 and "batch_size 1: the network has batch normalisation" in err and err.count("\n") == 1
    assert not out.exists()


def test_objective_numbers_in_exponent_form_train(run_main, tiny_train, tmp_path):
    code, out, err = run_main(*tiny_train, "--set", "objective.l2_weight=1e-3", "--set", "learning_rate=2e-3",
                              "--out", str(tmp_path / "run"))
    assert code == 0, err
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"l2_weight": 0.001' in summary and '"learning_rate": 0.002' in summary
    assert re.fullmatch(rf"trained 1 epochs; best validation loss \d+(\.\d{{1,3}})? at epoch 1; run in {tmp_path / 'run'}\n", out)


def test_impossible_counts_of_other_commands(run_main, tmp_path):
    code, _, err = run_main("data", "generate", "--count", "0", "--output", str(tmp_path / "g.txt"))
    assert code == 1 and err == "error: count 0: expected at least 1 string\n"
    code, _, err = run_main("data", "prepare", "-g", "expressions", "--workers", "-1", "--output", str(tmp_path / "p"))
    assert code == 2 and "Invalid value for '--workers'" in err
    with pytest.raises(ConfigError, match="evaluation setting items=0: expected an integer >= 1"):
        EvaluationConfig(items=0)
    with pytest.raises(ConfigError, match="evaluation setting encode_samples='2': expected an integer"):
        EvaluationConfig(encode_samples="2")
