"""Sequence models end to end on tiny networks: every preset trains, evaluates, samples and round-trips."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from grammar_ae.cli.main import app
from grammar_ae.errors import CheckpointError, ConfigError
from grammar_ae.evaluation.sequence import EvaluationConfig, evaluate_sequence_model
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.models.loading import load_run
from grammar_ae.models.sequence.config import SequenceRunConfig, build_spec
from grammar_ae.models.sequence.model import SequenceAutoEncoder
from grammar_ae.models.sequence.presets import SEQUENCE_PRESETS
from grammar_ae.pipelines.train_sequence import train_sequence_model

TINY = {"latent_dim": 10, "hidden": 24, "gru_hidden": 24, "gru_layers": 1}
runner = CliRunner()


@pytest.fixture(scope="module")
def expression_file(tmp_path_factory, expressions):
    path = tmp_path_factory.mktemp("data") / "expressions.txt"
    path.write_text("\n".join(expressions[::100]) + "\n")  # 1,000 real expressions
    return path


def tiny_run(out, data, model="grae", grammar="expressions", epochs=1, **extra):
    extra.setdefault("network", TINY)
    config = SequenceRunConfig(grammar=grammar, model=model, data=str(data), epochs=epochs, batch_size=100, **extra)
    return train_sequence_model(config, out, quiet=True)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, expression_file):
    root = tmp_path_factory.mktemp("runs")
    return {name: (root / name, tiny_run(root / name, expression_file, model=name)) for name in SEQUENCE_PRESETS}


def test_every_preset_trains_evaluates_and_samples(trained_runs):
    for name, (run, summary) in trained_runs.items():
        assert summary["epochs_run"] == 1 and (run / "best.pt").exists() and (run / "metrics.csv").exists()
        model = load_run(run, "cpu")
        config = EvaluationConfig(items=20, encode_samples=2, decode_samples=3, prior_samples=30)
        result = evaluate_sequence_model(model, config, progress=False)
        assert result["held_out_items"] == 20 and result["model"] == name
        training = set(model.training_strings())
        for kind in ("prior", "gaussian", "gmm"):  # the fractions of the 30 decoded samples of each sampler
            decoded = model.decode(model.sampler(kind).sample(30, torch.Generator().manual_seed(0)))
            valid = [text for text in decoded if text is not None]
            distinct = set(valid)
            assert result[f"{kind}_validity"] == len(valid) / 30, (name, kind)
            assert result[f"{kind}_uniqueness"] == (len(distinct) / len(valid) if valid else 0.0), (name, kind)
            assert result[f"{kind}_novelty"] == (len(distinct - training) / len(distinct) if distinct else 0.0), (name, kind)
        if name in ("grae", "grae-gmm"):  # deterministic encoders: exact matches of the argmax decodes
            held_out = model.validation_strings()
            held_out = [held_out[i] for i in np.sort(np.random.default_rng(0).choice(len(held_out), 20, replace=False))]
            normalize = model.model.codec.parser.tokenizer.normalize
            hits = sum(decoded == normalize(text) for decoded, text in zip(model.decode(model.encode_means(held_out)), held_out))
            assert result["reconstruction_accuracy"] == hits / 20, name
        strings = model.decode(model.sampler("prior").sample(10, torch.Generator().manual_seed(0)))
        grammatical = [s for s in strings if s is not None]
        assert all(model.model.codec.is_grammatical(s) for s in grammatical)
        assert summary["config"]["monitor"] == ("rec" if name == "grae-gmm" else "loss"), name


def test_grammar_reconstruction_loss_is_the_masked_cross_entropy(expression_file):
    grammar = Grammar.load("expressions")
    config = SequenceRunConfig(grammar="expressions", model="grae", network=TINY).resolved()
    model = SequenceAutoEncoder(build_spec(config, grammar, [" "], 19))
    batch = model.codec.encode(["sin(x)+1", "x*2"])
    logits = torch.randn(2, 15, 12)
    manual = 0.0
    for b in range(2):
        for t in range(15):
            rule = int(batch[b, t])
            allowed = torch.tensor(grammar.masks[grammar.rule_lhs[rule]])
            log_p = F.log_softmax(logits[b, t][allowed], dim=0)
            manual -= float(log_p[allowed[:rule].sum()])
    assert model.reconstruction(logits, batch).loss.item() == pytest.approx(manual / 2, rel=1e-5)


def test_character_model_on_molecules(tmp_path):
    run = tmp_path / "cvae"
    summary = tiny_run(run, "moses-sample", model="cvae", grammar="smiles", limit=400, network={**TINY, "decoder": "published"})
    assert summary["record"]["train_items"] == 360
    model = load_run(run, "cpu")
    assert model.model.codec.vocabulary == len(model.model.spec.alphabet) and model.model.codec.length <= 120
    z = model.encode_means(["CCO", "c1ccccc1"])
    assert z.shape == (2, 10)
    assert len(model.decode(z)) == 2


def test_cli_encode_decode_sample_round_trip(trained_runs, tmp_path, run_main):
    run = str(tmp_path / "grae")  # a copy without the latent densities other tests fitted
    shutil.copytree(trained_runs["grae"][0], run, ignore=shutil.ignore_patterns("sampler_*.pt"))
    encoded = runner.invoke(app, ["encode", run, "sin(x)+1", "x*2"])
    assert encoded.exit_code == 0 and len(encoded.stdout.splitlines()) == 2
    decoded = runner.invoke(app, ["decode", run], input=encoded.stdout)
    assert decoded.exit_code == 0 and len(decoded.stdout.splitlines()) == 2
    sampled = runner.invoke(app, ["sample", run, "-n", "7", "--sampler", "gmm", "--seed", "3"])
    assert sampled.exit_code == 0 and len(sampled.stdout.splitlines()) == 7
    assert "training items for a latent density" in sampled.stderr  # fitting it shows progress
    again = runner.invoke(app, ["sample", run, "-n", "7", "--sampler", "gmm", "--seed", "3"])
    assert again.stdout == sampled.stdout and "latent density" not in again.stderr  # fitted once, then cached
    near = runner.invoke(app, ["sample", run, "-n", "7", "--sampler", "kde", "--bandwidth", "0.05"])
    assert near.exit_code == 0 and len(near.stdout.splitlines()) == 7
    for bad, message in ((["--sampler", "gmm", "--bandwidth", "0.1"], "applies to --sampler kde"),
                         (["--sampler", "kde", "--bandwidth", "0"], "> 0")):
        code, _, stderr = run_main("sample", run, *bad)
        assert code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1
    evaluated = runner.invoke(app, ["evaluate", run, "--json", "--items", "10", "--prior-samples", "20"])
    last = json.loads(evaluated.stdout.splitlines()[-1])
    assert {"reconstruction_accuracy", "prior_validity"} <= set(last)


def test_resume_continues_and_mismatches_are_refused(tmp_path, expression_file):
    run = tmp_path / "r"
    tiny_run(run, expression_file, epochs=1)
    summary = train_sequence_model(
        SequenceRunConfig(grammar="expressions", model="grae", data=str(expression_file), epochs=2, batch_size=100, network=TINY),
        run, resume=True, quiet=True,
    )
    assert summary["epochs_run"] == 2
    with pytest.raises(CheckpointError):
        train_sequence_model(
            SequenceRunConfig(grammar="expressions", model="gvae", data=str(expression_file), epochs=3, batch_size=100, network=TINY),
            run, resume=True, quiet=True,
        )
    with pytest.raises(ConfigError, match="--resume"):
        tiny_run(run, expression_file)


def test_bad_checkpoints_are_one_line_errors(tmp_path, trained_runs, run_main):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "best.pt").write_bytes((trained_runs["grae"][0] / "best.pt").read_bytes()[:1000])
    for path, message in ((broken, "truncated|corrupt"), (tmp_path / "missing", "no such checkpoint")):
        code, _, err = run_main("sample", str(path), "-n", "2")
        assert code == 1 and err.count("\n") == 1 and err.startswith("error: ")
        assert re.search(message, err), err


def test_load_run_takes_a_path_or_a_shipped_model_name(trained_runs, tmp_path, monkeypatch, run_main):
    import grammar_ae
    from grammar_ae.models import shipped
    from grammar_ae.training import load_checkpoint, save_checkpoint

    run = trained_runs["grae"][0]
    assert grammar_ae.load_run is load_run
    loaded = load_run(run / "last.pt", "cpu")
    assert loaded.family == "sequence" and loaded.checkpoint_file == run / "last.pt" and loaded.epoch == 1
    name = "tiny-expressions"
    monkeypatch.setitem(shipped.SHIPPED_MODELS, name, shipped.ShippedModel(name, fetch=lambda: run))
    monkeypatch.chdir(tmp_path)
    assert load_run(name, "cpu").checkpoint_file == run / "best.pt"
    code, out, err = run_main("encode", name, "sin(x)+1")
    assert code == 0 and len(out.split()) == TINY["latent_dim"], err
    with pytest.raises(CheckpointError, match=rf"nope: no such checkpoint or run directory, nor a shipped model \(.*{name}.*\)"):
        load_run("nope")
    with pytest.raises(ConfigError, match="registered already"):
        shipped.register_shipped_model(shipped.ShippedModel(name, fetch=lambda: run))
    (tmp_path / name).mkdir()  # an existing path wins over a name
    with pytest.raises(CheckpointError, match=f"{name}: no checkpoint"):
        load_run(name)
    with pytest.raises(CheckpointError, match="holds a model of the sequence family; this needs one of the image family"):
        load_run(run, family="image")
    state = load_checkpoint(run / "best.pt")
    save_checkpoint(tmp_path / "graph.pt", {**state, "model_spec": {**state["model_spec"], "family": "graph"}})
    with pytest.raises(CheckpointError, match="model_spec.family is 'graph'; expected one of sequence, image"):
        load_run(tmp_path / "graph.pt")


def test_bad_settings(tmp_path, expression_file):
    with pytest.raises(ConfigError, match="unknown"):
        tiny_run(tmp_path / "x", expression_file, model="nope")
    with pytest.raises(ConfigError, match="grae only"):
        tiny_run(tmp_path / "y", expression_file, model="gvae", regularizer="gp")


def test_cli_train_with_config_file_and_overrides(tmp_path, expression_file):
    config = tmp_path / "run.toml"
    config.write_text(
        f'grammar = "expressions"\nmodel = "grae"\ndata = "{expression_file}"\nepochs = 1\nbatch_size = 100\n'
        "[network]\nlatent_dim = 10\nhidden = 16\ngru_hidden = 16\ngru_layers = 1\n[objective]\nbeta = 0.5\n"
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(config), "--set", "objective.l2_weight=0.001", "--seed", "3", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    stored = json.loads((out / "summary.json").read_text())
    assert stored["model_spec"]["objective"] == {"name": "rae", "beta": 0.5, "l2_weight": 0.001}
    assert stored["model_spec"]["network"]["gru_hidden"] == 16 and stored["record"]["config"]["seed"] == 3
    clipped = runner.invoke(app, ["train", "--config", str(config), "--set", "grad_clip=1.5", "--set", "monitor=rec",
                                  "--out", str(tmp_path / "clipped"), "-q"])
    assert clipped.exit_code == 0, clipped.output
    trainer_settings = json.loads((tmp_path / "clipped" / "summary.json").read_text())["config"]
    assert trainer_settings["grad_clip"] == 1.5 and trainer_settings["monitor"] == "rec"
    yaml_config = tmp_path / "bad.yaml"
    yaml_config.write_text("colour: red\n")
    bad = runner.invoke(app, ["train", "--config", str(yaml_config), "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "colour" in str(bad.exception)


def test_evaluate_warns_about_fewer_held_out_items_and_collapsed_samples(trained_runs, monkeypatch, capsys):
    model = load_run(trained_runs["grae"][0], "cpu")
    monkeypatch.setattr(model, "decode", lambda z: ["x*2"] * len(z))  # every sample the same string
    evaluate_sequence_model(model, EvaluationConfig(items=1000, prior_samples=20), progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings[0] == "warning: the run holds 100 held-out items; reconstruction uses them all, not 1,000"
    assert warnings[1:] == [f"warning: {kind} samples collapse: uniqueness 0.05 (distinct among the valid ones)"
                            for kind in ("prior", "gaussian", "gmm")]
