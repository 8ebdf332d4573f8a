"""The optimizers side by side: budgets of objective calls, random search, the genetic
algorithms (derivation trees for expressions, mol_ga's Graph GA for molecules) and the
benchmark table of several methods; bad input is a one-line error."""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from grammar_ae.bo.benchmark import run_bo_benchmark
from grammar_ae.bo.ga_trees import TreeOperators
from grammar_ae.bo.genetic import GAConfig, run_ga
from grammar_ae.bo.loop import BOConfig, prepare_training_data, random_points, run_bo
from grammar_ae.bo.state import BOState, load_state, stage_seed
from grammar_ae.bo.targets import get_target, register_target
from grammar_ae.errors import ConfigError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser

from bo_fixtures import (  # noqa: F401 (private_cache: an autouse fixture)
    DATA, DEFAULTS, ProjectionModel, private_cache, read_rows, sample_expressions,
)


@pytest.fixture(scope="module")
def expressions() -> list[str]:
    return sample_expressions(1500, seed=1)


def assert_scores_are_the_targets(out, target_name: str) -> list[dict]:
    target = get_target(target_name)
    rows = read_rows(out)
    for row in rows:
        if row["valid"] == "true":
            assert float(row["score"]) == target.score_one(row["string"])
        else:
            assert row["score"] == ""
    return rows


def test_tree_operators_stay_in_the_grammar():
    grammar = Grammar.load("expressions")
    operators, parser, rng = TreeOperators(grammar), Parser(grammar), random.Random(0)
    parents = ["1 / 3 + x + sin( x * x )", "exp( x ) * 2", "x + 1", "sin( 3 ) / ( x + x )"]
    for string in parents:
        assert operators.string(operators.tree(string)) == string
    children = set()
    for _ in range(30):
        children |= operators.offspring(parents, 8, rng)
    assert len(children) > 20
    for child in children:
        assert len(parser.parse(child)) <= grammar.max_length  # parses: a string of the grammar
        assert operators.string(operators.tree(child)) == child
    tree = operators.random_tree("S", 5, rng)
    assert operators.string(tree) and len(parser.parse(operators.string(tree))) <= 5


def test_a_budget_counts_objective_calls_on_new_strings(expressions, tmp_path):
    config = replace(DEFAULTS, budget=9, batch_size=4, iterations=None)
    assert config.iterations == 12  # at most 4x the batches the budget needs
    summary = run_bo(ProjectionModel(expressions, invalid_rate=0.1), config, tmp_path, progress=False)
    rows = assert_scores_are_the_targets(tmp_path, "expression")
    new = [r for r in rows if r["valid"] == "true" and r["duplicate"] == "false"]
    assert summary["objective_calls"] == len(new) <= 9
    assert len(summary["best_new_by_call"]) == len(new)
    assert summary["objective_calls"] == 9 or summary["completed_iterations"] == 12
    state = load_state(tmp_path)
    for iteration in range(1, state.completed_iterations + 1):
        before = sum(p.valid and not p.duplicate for p in state.proposals if p.iteration < iteration)
        batch = [p for p in state.proposals if p.iteration == iteration]
        assert len(batch) == min(4, 9 - before)  # each batch shortened to what is left


@pytest.mark.parametrize("kind", ["gaussian", "box"])
def test_random_search_decodes_random_latent_points(expressions, tmp_path, kind):
    config = BOConfig(target="expression", method="random", random_points=kind, budget=6, batch_size=3, seed=2)
    model = ProjectionModel(expressions)
    summary = run_bo(model, config, tmp_path, progress=False)
    assert summary["method"] == "random" and "fit" not in summary["timings"]["seconds"]
    assert_scores_are_the_targets(tmp_path, "expression")
    latents = torch.from_numpy(np.load(tmp_path / "latents.npy"))
    data = prepare_training_data(model, get_target("expression"), config, BOState(config={}, checkpoint_sha256=""))
    state = load_state(tmp_path)
    batches = [sum(p.iteration == i for p in state.proposals) for i in range(1, state.completed_iterations + 1)]
    offset = 0
    for iteration, size in enumerate(batches, 1):  # each batch: rows of that iteration's seeded draws
        drawn = random_points(data, kind, size * config.candidates_per_point,
                              stage_seed(config.seed, iteration, "acquisition"))
        rows = latents[offset : offset + size]
        assert ((rows[:, None, :] == drawn[None]).all(dim=2).sum(dim=1) == 1).all()
        offset += size
    assert offset == len(latents)
    many = random_points(data, kind, 5000, seed=0)
    inside = ((many >= data.bounds[0]) & (many <= data.bounds[1])).all(dim=1)
    if kind == "box":
        assert inside.all()
    else:  # the Gaussian fitted to the training latents, not held to their box
        assert not inside.all()
        assert torch.allclose(many.mean(dim=0), data.latents.mean(dim=0), atol=0.1)
        assert torch.allclose(many.std(dim=0), data.latents.std(dim=0), rtol=0.05)
    decoded = model.decode(latents.float())
    assert [r["string"] for r in read_rows(tmp_path)] == [s if s is not None else "" for s in decoded]


def test_expression_ga_spends_its_budget_on_new_strings(expressions, tmp_path):
    model = ProjectionModel(expressions)
    config = GAConfig(target="expression", budget=20, offspring=8, population=300, seed=3)
    summary = run_ga(model, config, tmp_path, progress=False)
    rows = assert_scores_are_the_targets(tmp_path, "expression")
    known = {"".join(s.split()) for s in expressions}
    assert summary["objective_calls"] == 20 == len(rows)
    assert all(r["duplicate"] == "false" and "".join(r["string"].split()) not in known for r in rows)
    assert len({r["string"] for r in rows}) == 20 and not (tmp_path / "latents.npy").exists()
    assert summary["method"] == "ga" and summary["training"]["best_score"] == min(get_target("expression").score(expressions))
    again = run_ga(model, config, tmp_path, progress=False)  # a finished run is kept
    assert again == json.loads((tmp_path / "summary.json").read_text())


def test_molecule_ga_is_mol_ga_seeded_with_the_data(tmp_path):
    with gzip.open(DATA / "zinc250k.smi.gz", "rt") as handle:
        smiles = [line.strip() for _, line in zip(range(300), handle)]
    model = ProjectionModel(smiles, latent_dim=3, grammar_name="smiles")
    summary = run_ga(model, GAConfig(target="logp", budget=12, offspring=6, population=100, seed=0), tmp_path,
                     progress=False)
    rows = assert_scores_are_the_targets(tmp_path, "logp")
    assert summary["objective_calls"] == 12 and all(r["valid"] == "true" for r in rows)
    assert all(entry["heavy_atoms"] > 0 for entry in summary["top3_new"])
    assert (tmp_path / "top3_new.png").stat().st_size > 1000


GA_IN_A_PROCESS = """
import gzip, sys
sys.path.insert(0, {tests!r})
from bo_fixtures import ProjectionModel
from grammar_ae.bo.genetic import GAConfig, run_ga
with gzip.open({data!r}, "rt") as handle:
    smiles = [line.strip() for _, line in zip(range(300), handle)]
model = ProjectionModel(smiles, latent_dim=3, grammar_name="smiles")
run_ga(model, GAConfig(target="logp", budget=30, offspring=20, population=100, seed=0), {out!r}, progress=False)
"""


def test_a_ga_run_does_not_depend_on_python_string_hashing(tmp_path):
    """mol_ga hands over children as sets, whose order follows PYTHONHASHSEED; a seed fixes the run anyway."""
    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        code = GA_IN_A_PROCESS.format(tests=str(Path(__file__).parent), data=str(DATA / "zinc250k.smi.gz"), out=str(out))
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        runs.append([(r["iteration"], r["string"], r["score"]) for r in read_rows(out)])
    assert len(runs[0]) >= 30 and runs[0] == runs[1]


def test_benchmark_of_four_methods_with_one_budget(expressions, tmp_path):
    config = replace(DEFAULTS, budget=6, batch_size=3, iterations=None)
    rows = run_bo_benchmark(ProjectionModel(expressions), "expression", [0, 1], config, tmp_path, label="fixture",
                            methods=["bo", "random", "ga", "bo-offspring"], threshold=0.5)
    assert [row["method"] for row in rows] == ["bo", "random", "ga", "bo-offspring"]
    for row in rows:
        assert row["budget"] == 6 and row["objective_calls_mean"] <= 6 and row["threshold_seeds"] is not None
        for seed in (0, 1):
            summary = json.loads((tmp_path / row["method"] / f"seed_{seed}" / "summary.json").read_text())
            assert summary["seed"] == seed and summary["training"]["data"] == "the model's training strings"
    assert rows[2]["objective_calls_mean"] == 6
    table = (tmp_path / "bo_benchmark.md").read_text()
    assert table.startswith("Budget: 6 objective calls on new strings per seed")
    assert "| published | GRAE |" in table and "seeds below 0.5" in table
    assert len((tmp_path / "bo_benchmark.csv").read_text().splitlines()) == 5
    offspring = json.loads((tmp_path / "bo-offspring" / "seed_0" / "summary.json").read_text())
    assert offspring["config"]["candidates"] == "offspring" and offspring["config"]["method"] == "bo"
    assert (tmp_path / "best_so_far.png").stat().st_size > 1000


def test_bo_offspring_chooses_among_encoded_children_of_the_best_strings(tmp_path):
    with gzip.open(DATA / "zinc250k.smi.gz", "rt") as handle:
        smiles = [line.strip() for _, line in zip(range(300), handle)]
    config = replace(DEFAULTS, target="logp", candidates="offspring", budget=12, batch_size=6, iterations=None,
                     offspring_population=100, thompson_candidates=60, local_points=50)
    model = ProjectionModel(smiles, latent_dim=3, grammar_name="smiles")
    summary = run_bo(model, config, tmp_path / "whole", progress=False)
    rows = assert_scores_are_the_targets(tmp_path / "whole", "logp")
    logp = get_target("logp")
    known = {logp.key(string) for string in smiles}
    keys = [logp.key(row["string"]) for row in rows]
    assert summary["objective_calls"] == 12 == len(rows) and model.decode_calls == 0
    assert len(set(keys)) == 12 and not known & set(keys)
    assert all(model.can_encode(row["string"]) for row in rows)  # children the model cannot read are left out
    latents = np.load(tmp_path / "whole" / "latents.npy")  # each proposal's latent point is its encoding
    assert np.allclose(latents, model.encode_means([row["string"] for row in rows]).numpy())
    assert set(summary["timings"]["seconds"]) >= {"offspring", "encode_children", "fit", "acquisition", "scoring"}
    # stopped after one batch and resumed: the same run
    run_bo(ProjectionModel(smiles, latent_dim=3, grammar_name="smiles"), replace(config, iterations=1),
           tmp_path / "run", progress=False)
    assert len(read_rows(tmp_path / "run")) == 6
    run_bo(ProjectionModel(smiles, latent_dim=3, grammar_name="smiles"), config, tmp_path / "run", resume=True,
           progress=False)
    assert (tmp_path / "run" / "proposals.csv").read_text() == (tmp_path / "whole" / "proposals.csv").read_text()


def test_bo_offspring_without_held_out_points(expressions, tmp_path):
    config = replace(DEFAULTS, candidates="offspring", budget=8, batch_size=4, iterations=None, train_fraction=1.0,
                     thompson_candidates=40, local_points=20)
    summary = run_bo(ProjectionModel(expressions), config, tmp_path, progress=False)
    assert summary["objective_calls"] == 8 and summary["surrogate_test"] is None
    assert_scores_are_the_targets(tmp_path, "expression")


def test_a_bad_setting_of_one_benchmark_method_is_refused_before_any_run(run_main, tmp_path, monkeypatch, expressions):
    from grammar_ae.cli import commands_optimize

    monkeypatch.setattr(commands_optimize, "load_sequence_run", lambda path, device: ProjectionModel(expressions))
    code, _, err = run_main("benchmark", "bo", "--target", "expression", "--checkpoint", str(tmp_path), "--out",
                            str(tmp_path / "out"), "--method", "bo,bo-offspring", "--acquisition", "ei")
    assert code == 1 and err == ("error: offspring candidates are for method 'bo' with the thompson acquisition, "
                                 "not method 'bo' with 'ei'\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings, message", [
    ({"candidates": "nope"}, "candidates 'nope': expected one of latent, offspring"),
    ({"candidates": "offspring", "acquisition": "ei"},
     "offspring candidates are for method 'bo' with the thompson acquisition, not method 'bo' with 'ei'"),
    ({"candidates": "offspring", "method": "random"},
     "offspring candidates are for method 'bo' with the thompson acquisition, not method 'random' with 'thompson'"),
    ({"offspring_population": 0}, "offspring_population must be at least 1, got 0"),
    ({"candidates": "offspring", "local_points": 1},
     "offspring candidates fit the GP on at least 2 best points: local_points 1 is too few"),
])
def test_bad_offspring_settings_are_one_line(settings, message):
    with pytest.raises(ConfigError) as error:
        BOConfig("logp", **settings)
    assert str(error.value) == message


def _custom(string: str) -> float | None:
    return float(len(string))


@pytest.mark.parametrize("arguments, message", [
    (["--method", "bo,nope"], "unknown method 'nope'; expected some of bo, bo-offspring, random, ga"),
    (["--budget", "0"], "budget must be at least 1, got 0"),
    (["--batch-size", "0"], "batch_size must be at least 1, got 0"),
])
def test_bad_benchmark_input_is_one_line(run_main, tmp_path, arguments, message):
    code, out, err = run_main("benchmark", "bo", "--target", "expression", "--checkpoint", str(tmp_path / "none"),
                              "--out", str(tmp_path / "out"), *arguments)
    assert code == 1 and err == f"error: {message}\n" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["benchmark", "bo", "--method", "ga"], ["benchmark", "bo", "--method", "bo-offspring"],
                                     ["optimize", "--candidates", "offspring"]])
def test_a_grammar_without_a_ga_is_one_line(run_main, tmp_path, monkeypatch, expressions, command):
    from grammar_ae.cli import commands_optimize

    register_target("test_custom", _custom, grammar="custom-grammar", direction="maximize", replace=True)
    model = ProjectionModel(expressions)
    model.grammar_name = "custom-grammar"
    monkeypatch.setattr(commands_optimize, "load_sequence_run", lambda path, device: model)
    code, _, err = run_main(*command, "--target", "test_custom", "--checkpoint", str(tmp_path),
                            "--out", str(tmp_path / "out"))
    assert code == 1 and err == (
        "error: no genetic algorithm for the 'custom-grammar' grammar (there is one for smiles, expressions)\n")
    assert not (tmp_path / "out").exists()


def test_starting_data_from_a_named_set_or_file(expressions, tmp_path):
    data = tmp_path / "start.txt"
    data.write_text("\n".join(expressions[:50]) + "\n")
    config = replace(DEFAULTS, iterations=1, batch_size=2, data=str(data), local_points=30)
    summary = run_bo(ProjectionModel(expressions), config, tmp_path / "out", progress=False)
    scores = get_target("expression").score(expressions[:50])
    assert summary["training"]["strings"] == 50 and summary["training"]["data"] == str(data)
    assert summary["training"]["best_score"] == min(scores)
    with pytest.raises(ConfigError, match="data set 'moses-sample' is for the smiles grammar"):
        run_bo(ProjectionModel(expressions), replace(config, data="moses-sample"), tmp_path / "other", progress=False)
    assert math.isfinite(summary["best_so_far"][-1])
