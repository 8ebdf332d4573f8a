"""Shipped models: packaging a run, loading it by name, the models command, the shipped cards."""

import json

import pytest
import torch

from grammar_ae import load_latent_model
from grammar_ae.models import shipped
from grammar_ae.models.loading import load_run
from grammar_ae.models.sequence.config import SequenceRunConfig
from grammar_ae.pipelines.train_sequence import train_sequence_model

CARD_KEYS = {"name", "description", "trained_with", "data", "code_version", "training", "metrics", "parameters"}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("shipping")
    run = root / "run"
    config = SequenceRunConfig(grammar="expressions", model="grae", data="expressions-generated", limit=600, epochs=1,
                               batch_size=50, network={"latent_dim": 6, "hidden": 12, "gru_hidden": 12, "gru_layers": 1})
    train_sequence_model(config, run, quiet=True)
    out = root / "tiny"
    state = shipped.export_run(run, out)
    (out / shipped.CARD_FILE).write_text(json.dumps({"name": "tiny", "description": "a tiny test model"}))
    model = shipped.packaged_model(out)
    shipped.register_shipped_model(model)
    yield run, out, state
    del shipped.SHIPPED_MODELS["tiny"]


def test_a_packaged_run_loads_by_name_with_half_precision_weights(packaged):
    run, out, state = packaged
    saved = torch.load(out / "best.pt", weights_only=True)
    assert "optimizer_state" not in saved and all(
        v.dtype == torch.float16 for v in saved["model_state"].values() if v.is_floating_point())
    original, by_name = load_run(run, "cpu"), load_latent_model("tiny", "cpu")
    assert by_name.run_dir != out  # a copy in the cache, where samplers may be written
    assert by_name.training_strings() == original.training_strings()
    strings = ["x+1", "sin(x*x)/3"]
    assert torch.allclose(by_name.encode_means(strings), original.encode_means(strings), atol=5e-2)


def test_an_existing_path_wins_over_a_shipped_name(packaged, tmp_path, monkeypatch):
    run, _, _ = packaged
    (tmp_path / "tiny").symlink_to(run, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    assert load_run("tiny", "cpu").run_dir.resolve() == run.resolve()


def test_models_command_lists_the_cards(packaged, run_main):
    code, stdout, _ = run_main("models", "--json")
    assert code == 0 and json.loads(stdout)["tiny"]["description"] == "a tiny test model"
    code, stdout, _ = run_main("models")
    assert code == 0 and "tiny: a tiny test model" in stdout


def test_an_unknown_name_lists_the_shipped_models(run_main):
    code, _, stderr = run_main("sample", "no-such-model")
    assert code == 1 and "nor a shipped model" in stderr and "expressions" in stderr and "zinc" in stderr


@pytest.mark.parametrize("name, grammar", [("zinc", "smiles"), ("expressions", "expressions")])
def test_the_shipped_models_have_cards_and_decode(name, grammar):
    model = shipped.SHIPPED_MODELS[name]
    assert CARD_KEYS <= model.card.keys() and model.card["name"] == name
    assert (shipped.embedded_path("models") / name / "best.pt").stat().st_size <= 8_000_000
    loaded = load_latent_model(name, "cpu")
    assert loaded.grammar_name == grammar
    decoded = loaded.decode(torch.zeros(1, loaded.latent_dim))
    assert len(decoded) == 1


@pytest.mark.parametrize("name", ["zinc", "expressions"])
def test_the_shipped_models_sample_from_their_shipped_densities(name, run_main, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a shipped model fitted a latent density (it needs its data set and minutes of encoding)")

    monkeypatch.setattr("grammar_ae.models.run.fit_sampler", refuse)
    for sampler in ("prior", "gaussian", "gmm", "kde"):
        code, stdout, stderr = run_main("sample", name, "-n", "2", "--sampler", sampler)
        assert code == 0, stderr
        assert len(stdout.splitlines()) == 2


def test_a_cached_copy_made_before_the_densities_shipped_receives_them():
    model = shipped.SHIPPED_MODELS["expressions"]
    local = model.fetch()
    for path in local.glob(shipped.SAMPLER_FILES):
        path.unlink()
    assert model.fetch() == local
    packaged = {p.name for p in (shipped.embedded_path("models") / "expressions").glob(shipped.SAMPLER_FILES)}
    assert packaged and packaged <= {p.name for p in local.glob(shipped.SAMPLER_FILES)}
