"""Weighted retraining in the BO loop, on tiny real sequence models trained here."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from grammar_ae.bo.latent_model import RetrainableModel
from grammar_ae.bo.loop import BOConfig, run_bo
from grammar_ae.bo.retraining import RetrainingConfig, rank_probabilities, weights_path
from grammar_ae.bo.state import load_state
from grammar_ae.bo.targets import get_target
from grammar_ae.errors import CheckpointError, ConfigError, ParseError
from grammar_ae.models.loading import load_latent_model
from grammar_ae.models.sequence.config import SequenceRunConfig
from grammar_ae.pipelines.train_sequence import train_sequence_model
from grammar_ae.training.fine_tuning import weights_sha256

from bo_fixtures import ProjectionModel, private_cache, read_rows, sample_expressions  # noqa: F401

NETWORKS = {  # tiny networks of both decoder kinds
    "published": {"decoder": "published", "latent_dim": 4, "hidden": 8, "gru_hidden": 8, "gru_layers": 1},
    "gru": {"decoder": "gru", "encoder": "gru", "latent_dim": 6, "embedding_dim": 8, "model_dim": 16, "encoder_dim": 8},
}
RETRAINING = RetrainingConfig(every=2, samples=40, batch_size=20, surrogate_points=60)
CONFIG = BOConfig(target="expression", iterations=3, batch_size=3, local_points=40, thompson_candidates=100, seed=3,
                  retraining=RETRAINING)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "expressions.txt"
    data.write_text("\n".join(sample_expressions(400, seed=1)) + "\n")
    root = tmp_path_factory.mktemp("runs")
    for name, network in NETWORKS.items():
        config = SequenceRunConfig(grammar="expressions", model="grae", data=str(data), epochs=1, batch_size=50,
                                   network=network)
        train_sequence_model(config, root / name, quiet=True)
    return root


def test_rank_probabilities_match_a_hand_computed_case():
    # scores 3, 1, 2 have ranks 0, 2, 1; with k N = 1 the weights are 1/1, 1/3, 1/2
    assert rank_probabilities([3.0, 1.0, 2.0], 1 / 3, maximize=True) == pytest.approx(np.array([6, 2, 3]) / 11)
    assert rank_probabilities([3.0, 1.0, 2.0], 1 / 3, maximize=False) == pytest.approx(np.array([2, 6, 3]) / 11)


@pytest.mark.parametrize("settings, message", [
    ({"every": -1}, "retraining every"), ({"samples": 0}, "retraining samples"),
    ({"rank_weight": 0.0}, "retraining rank_weight"), ({"learning_rate": -1.0}, "retraining learning_rate"),
])
def test_bad_retraining_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        RetrainingConfig(**settings)


def test_retraining_is_for_bo_and_retrainable_models(tmp_path):
    with pytest.raises(ConfigError, match="retraining is for method 'bo'"):
        BOConfig(target="expression", method="random", retraining={"every": 50})
    fixture = ProjectionModel(sample_expressions(50, seed=0))  # encodes by a projection: nothing to fine-tune
    with pytest.raises(ConfigError, match="cannot be fine-tuned"):
        run_bo(fixture, CONFIG, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("network", NETWORKS)
def test_fine_tuned_is_a_reproducible_copy(runs, tmp_path, network):
    model = load_latent_model(runs / network, "cpu")
    assert isinstance(model, RetrainableModel)
    before = weights_sha256(model.model)
    strings = model.training_strings()[:60]
    tuned, loss = model.fine_tuned(strings, 1e-3, 20, seed=5)
    again, loss_again = model.fine_tuned(strings, 1e-3, 20, seed=5)
    assert weights_sha256(model.model) == before  # the model itself is unchanged
    assert tuned.checkpoint_sha256 == again.checkpoint_sha256 != before and loss == loss_again and np.isfinite(loss)
    assert tuned.checkpoint_sha256 == weights_sha256(tuned.model) and not tuned.model.training
    tuned.save_weights(tmp_path / "weights.pt")
    restored = model.with_weights(tmp_path / "weights.pt")
    assert restored.checkpoint_sha256 == tuned.checkpoint_sha256
    assert restored.decode(torch.zeros(2, model.latent_dim)) == tuned.decode(torch.zeros(2, model.latent_dim))
    (tmp_path / "damaged.pt").write_bytes((tmp_path / "weights.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged.pt: not weights of this model"):
        model.with_weights(tmp_path / "damaged.pt")


def test_retraining_run_is_consistent_and_resumes_exactly(runs, tmp_path):
    model = load_latent_model(runs / "gru", "cpu")
    out = tmp_path / "whole"
    summary = run_bo(model, CONFIG, out, progress=False)
    state = load_state(out)
    # retrained before batch 1 and before the first batch after every 2 objective calls on new strings
    due, last = [], None
    for iteration in (1, 2, 3):
        calls = sum(p.valid and not p.duplicate for p in state.proposals if p.iteration < iteration)
        if last is None or calls - last >= RETRAINING.every:
            due.append(iteration)
            last = calls
    assert [r["iteration"] for r in state.retrainings] == due == [1, 2] and summary["retrainings"] == state.retrainings
    assert [len(summary["timings"]["cpu_seconds"][stage]) for stage in ("retraining", "reencode")] == [2, 2]
    assert sorted(p.name for p in out.glob("retrained-*.pt")) == ["retrained-2.pt"]  # the last weights only
    assert model.with_weights(weights_path(out, 2)).checkpoint_sha256 == state.retrainings[-1]["sha256"]
    target = get_target("expression")
    for row in read_rows(out):
        if row["valid"] == "true":
            assert float(row["score"]) == target.score_one(row["string"])
    # interrupted after iteration 2 (retrained before it), then resumed: the same run (the resumed run
    # rebuilds the retrained data; iteration 2's proposals stay in it as acquired, as in the whole run)
    parts = tmp_path / "parts"
    run_bo(model, replace(CONFIG, iterations=2), parts, progress=False)
    assert len(load_state(parts).retrainings) == 2
    resumed = run_bo(load_latent_model(runs / "gru", "cpu"), CONFIG, parts, resume=True, progress=False)
    assert read_rows(parts) == read_rows(out)
    assert np.array_equal(np.load(parts / "latents.npy"), np.load(out / "latents.npy"))
    assert resumed["retrainings"] == summary["retrainings"]
    # a resume without the saved weights is refused before any work
    weights_path(parts, 2).unlink()
    with pytest.raises(CheckpointError, match="retrained-2.pt: missing"):
        run_bo(model, replace(CONFIG, iterations=4), parts, resume=True, progress=False)


def test_cli_rejects_bad_retraining_settings_before_any_work(run_main, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = run_main("optimize", "--target", "expression", "--checkpoint", "expressions", "--out", str(out),
                               "--retrain-every", "-1")
    assert code == 1 and stderr.count("\n") == 1 and "retraining every must be 0 (never) or at least 1" in stderr
    assert not out.exists()


def test_can_encode_rejects_valid_molecules_outside_the_models_form():
    zinc = load_latent_model("zinc", "cpu")  # reads Kekule SMILES
    unkekulizable = "COC1=CC=C(C(C2=CC=CC(C3=CC=CC(OC=C3)=O)=C)=C2C=C3)[O@+3]=C13"  # a BO proposal that scored
    assert get_target("logp").score_one(unkekulizable) is not None
    assert zinc.can_encode("CC1=CC=C(Br)C=C1") and zinc.can_encode("Cc1ccc(Br)cc1")
    assert not zinc.can_encode(unkekulizable) and not zinc.can_encode("C1CC")
    assert zinc.can_train_on("CC1=CC=C(Br)C=C1") and not zinc.can_train_on(unkekulizable)


def test_the_recurrent_encoder_reads_strings_longer_than_the_decoder_writes():
    zinc = load_latent_model("zinc", "cpu")  # a bidirectional GRU encoder, at most 277 productions decoded
    chain = "C" * 100  # 100 heavy atoms: about 400 productions
    assert zinc.model.read_length == 4 * 277
    assert zinc.can_encode(chain) and not zinc.can_train_on(chain) and not zinc.can_encode("C" * 400)
    with pytest.raises(ParseError, match="more than the smiles grammar's max length 277"):
        zinc.model.training_batch([chain])
    short = ["CC1=CC=C(Br)C=C1", "CCO"]
    together = zinc.encode_means(short + [chain])  # a long string in the batch leaves the others' latents alone
    assert torch.equal(together[:2], zinc.encode_means(short)) and torch.isfinite(together[2]).all()


def test_offspring_candidates_with_retraining(runs, tmp_path):
    """Later retrainings leave no held-out points to judge the surrogate on; the offspring's GP fits without them."""
    model = load_latent_model(runs / "gru", "cpu")
    config = replace(CONFIG, candidates="offspring", offspring_population=100)
    summary = run_bo(model, config, tmp_path, progress=False)
    assert len(load_state(tmp_path).retrainings) >= 2 and summary["completed_iterations"] == 3
    target = get_target("expression")
    for row in read_rows(tmp_path):
        assert row["valid"] == "true" and float(row["score"]) == target.score_one(row["string"])
