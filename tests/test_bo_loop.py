"""The BO loop end to end on a small test-local latent model over real expressions."""

from __future__ import annotations

import errno
import gzip
import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from grammar_ae.bo.benchmark import benchmark_row, run_bo_benchmark, table_csv, table_markdown
from grammar_ae.bo.latent_model import LatentModel
from grammar_ae.bo.loop import BOConfig, prepare_training_data, run_bo
from grammar_ae.bo.state import BOState, load_state
from grammar_ae.bo.targets import TARGET_EXPRESSION, get_target, register_target
from grammar_ae.bo.trust_region import TrustRegionConfig, region_centre
from grammar_ae.cli import commands_optimize
from grammar_ae.chemistry import molecule
from grammar_ae.errors import CheckpointError, ConfigError, OutputError
from grammar_ae.utils.output_lock import hold_output_lock

from bo_fixtures import (  # noqa: F401 (private_cache: an autouse fixture)
    DATA, DEFAULTS, TARGET, Interrupted, ProjectionModel, private_cache, read_rows, sample_expressions,
)


@pytest.fixture(scope="module")
def expressions() -> list[str]:
    chosen = sample_expressions(2000, seed=0)
    return chosen if TARGET in chosen else chosen[:-1] + [TARGET]


# the published loop: a GP on every training point, batch log-EI over the whole box, sampled decodes, every
# acquired point proposed
CONFIG = BOConfig(
    target="expression", iterations=3, batch_size=4, samples_per_point=6, candidates_per_point=1, surrogate="exact",
    acquisition="ei", trust_region=False, max_training_points=150, acquisition_restarts=2, acquisition_raw_samples=32,
    seed=7,
)


@pytest.fixture(scope="module")
def finished_run(expressions, tmp_path_factory):
    out = tmp_path_factory.mktemp("bo") / "run"
    model = ProjectionModel(expressions)
    assert isinstance(model, LatentModel)
    summary = run_bo(model, CONFIG, out, progress=False)
    return out, summary, model


def test_loop_outputs_are_consistent(finished_run, expressions):
    out, summary, model = finished_run
    rows = read_rows(out)
    target = get_target("expression")
    assert [(int(r["iteration"]), int(r["index"])) for r in rows] == [(i, j) for i in (1, 2, 3) for j in range(4)]
    valid = [r for r in rows if r["valid"] == "true"]
    assert valid, "the fixture decodes most points to valid expressions"
    for row in rows:
        if row["valid"] == "true":
            assert float(row["score"]) == target.score_one(row["string"])  # exactly the target's value
        else:
            assert row["score"] == "" and row["valid"] == "false"
    assert summary["fraction_valid"] == len(valid) / len(rows)
    assert summary["average_score"] == pytest.approx(np.mean([float(r["score"]) for r in valid]))
    # duplicates: a string of the training data or of an earlier proposal
    seen = {"".join(s.split()) for s in expressions}
    for row in valid:
        key = "".join(row["string"].split())
        assert (row["duplicate"] == "true") == (key in seen)
        seen.add(key)
    latents = np.load(out / "latents.npy")
    assert latents.shape == (12, model.latent_dim)
    assert [int(r["latent_row"]) for r in rows] == list(range(12))
    box = model.latents.min(0), model.latents.max(0)
    assert ((latents >= box[0] - 1e-5) & (latents <= box[1] + 1e-5)).all()
    scores = [entry["score"] for entry in summary["top3"]]
    assert scores == sorted(scores) and scores[0] == min(float(r["score"]) for r in valid)
    assert len({e["string"] for e in summary["top3"]}) == len(scores)
    best = summary["best_so_far"]
    assert len(best) == 3 and all(a >= b for a, b in zip(best, best[1:]) if a is not None)
    assert summary["found_target"] == any(float(r["score"]) == 0.0 for r in valid)  # fits the data exactly
    new = {"".join(r["string"].split()) for r in valid if r["duplicate"] == "false"}
    assert all("".join(e["string"].split()) in new for e in summary["top3_new"])
    assert [e["score"] for e in summary["top3_new"]] == sorted(
        float(r["score"]) for r in valid if r["duplicate"] == "false")[: len(summary["top3_new"])]
    assert summary["trust_region"] is None
    assert summary["surrogate_test"]["n"] == 200 and np.isfinite(summary["surrogate_test"]["rmse"])
    assert summary["checkpoint_sha256"] == model.checkpoint_sha256 and summary["seed"] == 7
    assert summary["config"]["batch_size"] == 4 and "code_version" in summary["provenance"]
    assert set(summary["timings"]["seconds"]) >= {"encode", "score_training", "fit", "acquisition", "decoding", "scoring"}
    assert len(summary["timings"]["seconds"]["fit"]) == 3
    assert (out / "best_so_far.png").stat().st_size > 1000
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


@pytest.mark.parametrize("config", [CONFIG, DEFAULTS], ids=["published", "defaults"])
def test_resume_after_interruption_gives_the_same_run(config, expressions, tmp_path):
    run_bo(ProjectionModel(expressions), config, tmp_path / "whole", progress=False)
    model = ProjectionModel(expressions)
    model.fail_on_call = 3  # crash while decoding iteration 3
    with pytest.raises(Interrupted):
        run_bo(model, config, tmp_path / "run", progress=False)
    assert load_state(tmp_path / "run").completed_iterations == 2
    assert len(read_rows(tmp_path / "run")) == 8
    with pytest.raises(ConfigError, match="already holds a run"):
        run_bo(ProjectionModel(expressions), config, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="different batch_size"):
        run_bo(ProjectionModel(expressions), replace(config, batch_size=5), tmp_path / "run", resume=True, progress=False)
    resumed = ProjectionModel(expressions)
    run_bo(resumed, config, tmp_path / "run", resume=True, progress=False)
    assert resumed.decode_calls == 1
    out = tmp_path / "whole"
    assert (tmp_path / "run" / "proposals.csv").read_text() == (out / "proposals.csv").read_text()
    assert np.array_equal(np.load(tmp_path / "run" / "latents.npy"), np.load(out / "latents.npy"))
    assert load_state(tmp_path / "run").surrogate_hyperparameters == load_state(out).surrogate_hyperparameters
    # a finished run resumed does nothing
    again = ProjectionModel(expressions)
    summary = run_bo(again, config, tmp_path / "run", resume=True, progress=False)
    assert again.decode_calls == 0 and summary["completed_iterations"] == 3
    # a resumed run must use the same checkpoint
    other = ProjectionModel(expressions)
    other.checkpoint_sha256 = "another"
    with pytest.raises(CheckpointError, match="checkpoint"):
        run_bo(other, replace(config, iterations=4), tmp_path / "run", resume=True, progress=False)


def test_invalid_points_enter_the_surrogate_with_the_worst_training_score(expressions, tmp_path):
    config = replace(CONFIG, iterations=2, batch_size=3, acquisition="ucb")
    summary = run_bo(ProjectionModel(expressions, invalid_rate=1.0), config, tmp_path, progress=False)
    target = get_target("expression")
    train = np.random.default_rng(config.seed).permutation(len(expressions))[: round(0.9 * len(expressions))]
    worst = max(target.score([expressions[i] for i in train]))
    state = load_state(tmp_path)
    assert summary["fraction_valid"] == 0.0 and summary["average_score"] is None and summary["top3"] == []
    assert state.training["worst_score"] == worst
    assert [p.observed for p in state.proposals] == [worst] * 6
    assert all(r["valid"] == "false" and r["score"] == "" for r in read_rows(tmp_path))


def _contains_three(string: str) -> float | None:
    return None if "2" in string else float(string.count("3"))


def test_user_target_thompson_and_benchmark_table(expressions, tmp_path):
    register_target("test_threes", _contains_three, grammar="expressions", direction="maximize", replace=True)
    config = replace(CONFIG, iterations=1, batch_size=3, acquisition="thompson")
    rows = run_bo_benchmark(ProjectionModel(expressions), "test_threes", [0, 1], config, tmp_path, label="fixture")
    row = rows[0]
    summaries = [json.loads((tmp_path / "bo" / f"seed_{s}" / "summary.json").read_text()) for s in (0, 1)]
    fractions = [s["fraction_valid"] for s in summaries]
    assert row["fraction_valid_mean"] == pytest.approx(np.mean(fractions))
    assert row["fraction_valid_std"] == pytest.approx(np.std(fractions))
    for summary in summaries:
        assert summary["target"] == "test_threes"
        for r in read_rows(tmp_path / "bo" / f"seed_{summary['seed']}"):
            assert (r["valid"] == "true") == ("2" not in r["string"] and r["string"] != "")
    best = row["best_three"]
    assert [b["score"] for b in best] == sorted((b["score"] for b in best), reverse=True)
    table = (tmp_path / "bo_benchmark.md").read_text()
    assert "| expressions (higher better) | fixture | bo |" in table and "published" not in table
    assert row["target_found_seeds"] is None and row["threshold_seeds"] is None
    proposed = sum(s["proposed"] for s in summaries)
    assert row["duplicate_fraction"] == pytest.approx(sum(s["duplicates"] for s in summaries) / proposed)
    assert row["objective_calls_mean"] == np.mean([s["objective_calls"] for s in summaries])
    assert (tmp_path / "bo_benchmark.csv").read_text().startswith("problem,model,method,target,seeds,budget")
    assert (tmp_path / "best_so_far.png").stat().st_size > 1000


def test_benchmark_row_counts_the_seeds_that_found_the_optimum():
    def summary(seed: int, found: bool) -> dict:
        best = TARGET_EXPRESSION if found else "x+1"
        return {"seed": seed, "fraction_valid": 1.0, "average_score": 1.0, "found_target": found, "duplicates": 1,
                "proposed": 4, "objective_calls": 3, "training": {"best_score": 0.5}, "completed_iterations": 2,
                "timings": {"cpu_seconds": {"encode": [9.0], "fit": [1.0, 1.0], "decoding": [0.5, 0.5]}},
                "top3": [{"string": best, "score": 0.0 if found else 2.0, "iteration": 1}],
                "top3_new": [{"string": f"x+{seed + 1}", "score": 3.0 - seed, "iteration": 1}]}

    row = benchmark_row([summary(0, True), summary(1, False), summary(2, True)], get_target("expression"), "m",
                        budget=3, threshold=0.1)
    assert row["target_found_seeds"] == 2 and row["threshold_seeds"] == 2 and row["duplicate_fraction"] == 0.25
    assert row["best_three"][0]["string"] == TARGET_EXPRESSION
    assert row["best_new"] == {"string": "x+3", "score": 1.0, "iteration": 1, "seed": 2}
    table = table_markdown([row]).splitlines()
    assert table[0].startswith("Budget: 3 objective calls on new strings per seed")
    assert row["best_per_seed"] == [0.0, 2.0, 0.0] and row["cpu_seconds_per_iteration_mean"] == 1.5
    assert table[4].endswith("| 1.00 2.00 3.00 | 0.00 2.00 0.00 | 2 of 3 | 2 of 3 | 0.25 | 1.5 |")
    assert "| published | GVAE | | | 0.99 +- 0.01 | 3.26 +- 0.20 | 0.10 0.46 0.52 | | | | | | |" in table
    line = table_csv([row]).splitlines()[1].split(",")
    assert line[11:17] == ["0.0 2.0 0.0", "1.5", "0.1", "2", "2", "0.25"] and line[-6:-4] == ["1.0", "x+3"]


def test_molecules_with_logp_and_the_top3_images(tmp_path):
    with gzip.open(DATA / "zinc250k.smi.gz", "rt") as handle:
        smiles = [line.strip() for _, line in zip(range(400), handle)]
    model = ProjectionModel(smiles, latent_dim=3, grammar_name="smiles", invalid_rate=0.2)
    config = replace(DEFAULTS, target="logp", iterations=1, batch_size=3, train_fraction=0.8)
    summary = run_bo(model, config, tmp_path, progress=False)
    logp = get_target("logp")
    rows = read_rows(tmp_path)
    for row in rows:
        assert row["valid"] == "false" or float(row["score"]) == logp.score_one(row["string"])
    assert summary["found_target"] is None
    scores = logp.score(smiles)
    assert summary["training"]["test_points"] == 80 and summary["training"]["best_score"] == max(scores)
    assert summary["training"]["best_string"] == smiles[scores.index(max(scores))]
    for entry in summary["top3"]:
        assert entry["heavy_atoms"] == molecule(entry["string"]).GetNumHeavyAtoms()
    from PIL import Image

    for name in ("top3", "top3_new"):
        if summary[name]:
            with Image.open(tmp_path / f"{name}.png") as image:
                assert image.format == "PNG" and image.size[0] >= 300 * len(summary[name])


def test_wrong_grammar_or_target_is_a_clear_error(expressions, tmp_path):
    model = ProjectionModel(expressions)
    with pytest.raises(ConfigError, match="target 'logp' scores 'smiles' strings"):
        run_bo(model, replace(CONFIG, target="logp"), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="unknown target 'nope'"):
        run_bo(model, replace(CONFIG, target="nope"), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="acquisition 'pi'"):
        run_bo(model, replace(CONFIG, acquisition="pi"), tmp_path, progress=False)


def test_cli_optimize(expressions, tmp_path, monkeypatch):
    model = ProjectionModel(expressions)
    monkeypatch.setattr(commands_optimize, "load_sequence_run", lambda path, device: model)
    app = typer.Typer()
    commands_optimize.register(app)
    runner = CliRunner()
    common = ["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "cpu"]
    result = runner.invoke(app, ["optimize", "--target", "logp", *common])
    assert isinstance(result.exception, ConfigError) and "checkpoint is a 'expressions' model" in str(result.exception)
    result = runner.invoke(app, ["optimize", "--target", "nope", *common])
    assert isinstance(result.exception, ConfigError) and "unknown target 'nope'" in str(result.exception)
    result = runner.invoke(app, [
        "optimize", "--target", "expression", *common, "--iterations", "1", "--batch-size", "2",
        "--samples-per-point", "4", "--surrogate", "exact", "--max-training-points", "100", "--trust-region", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and len(read_rows(tmp_path / "out")) == 2
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["config"]["trust_region"] is True and summary["trust_region"]["widths_used"] == [0.5]


def _trust_region_run(expressions, tmp_path, config: BOConfig):
    """Run ``config``; return its summary, saved state, target and starting data (latents, scores)."""
    model = ProjectionModel(expressions)
    summary = run_bo(model, config, tmp_path, progress=False)
    target = get_target("expression")
    data = prepare_training_data(model, target, config, BOState(config={}, checkpoint_sha256=""))
    return summary, load_state(tmp_path), target, data


def test_trust_region_keeps_each_batch_near_the_best_point(expressions, tmp_path):
    config = replace(CONFIG, trust_region=True)
    summary, state, target, data = _trust_region_run(expressions, tmp_path, config)
    latents, scores = data.latents, data.scores.tolist()
    widths = summary["trust_region"]["widths_used"]
    assert widths[0] == config.trust_region_widths.initial and len(widths) == 3
    for iteration in (1, 2, 3):
        batch = [p for p in state.proposals if p.iteration == iteration]
        centre = latents[target.ranked(scores)[0]]
        points = torch.tensor([p.latent for p in batch], dtype=torch.float64)
        reach = widths[iteration - 1] * data.spread + 1e-9
        assert ((points - centre).abs() <= reach).all()
        assert ((points >= data.bounds[0] - 1e-9) & (points <= data.bounds[1] + 1e-9)).all()
        improved = target.best([*scores, *(p.score for p in batch if p.valid)]) != target.best(scores)
        new_fraction = sum(p.valid and not p.duplicate for p in batch) / len(batch)
        if iteration < 3:  # three successes in a row widen it, a failure halves it, mostly known strings double it
            before = widths[iteration - 1]
            mostly_new = 0 < new_fraction >= config.trust_region_widths.min_new_fraction
            expected = before if improved else max(before / 2, 0.125) if mostly_new else min(2 * before, 2.0)
            assert widths[iteration] == expected
        latents = torch.cat([latents, points])
        scores += [p.observed for p in batch]


def test_a_stalled_trust_region_restarts_on_the_best_point_outside_the_abandoned_boxes(expressions, tmp_path):
    # every batch short of all-new widens the region, so at the widest each batch without improvement stalls it
    widths_config = TrustRegionConfig(initial=1.0, maximum=2.0, min_new_fraction=1.0, restart_after=1)
    config = replace(DEFAULTS, iterations=6, trust_region_widths=widths_config)
    summary, state, target, data = _trust_region_run(expressions, tmp_path, config)
    latents, scores = data.latents, data.scores.tolist()
    abandoned = summary["trust_region"]["abandoned"]
    assert abandoned, "no restart: the test's settings should stall the region"
    widths = summary["trust_region"]["widths_used"]
    for iteration in range(1, config.iterations + 1):
        before = [a for a in abandoned if a["iteration"] < iteration]
        centre = latents[region_centre(latents, torch.tensor(target.ranked(scores)), before, data.spread, 2.0)]
        assert all(((centre - torch.tensor(a["centre"])).abs() > 2.0 * data.spread).any() for a in before)
        if before and before[-1]["iteration"] == iteration - 1:
            assert widths[iteration - 1] == widths_config.initial
        batch = [p for p in state.proposals if p.iteration == iteration]
        points = torch.tensor([p.latent for p in batch], dtype=torch.float64)
        assert ((points - centre).abs() <= widths[iteration - 1] * data.spread + 1e-9).all()
        latents = torch.cat([latents, points])
        scores += [p.observed for p in batch]


def test_an_output_in_use_or_unwritable_is_refused_before_any_work(expressions, tmp_path):
    model = ProjectionModel(expressions)
    with hold_output_lock(tmp_path / "out"):
        with pytest.raises(OutputError, match=rf"being written by another grammar-ae process \(PID {os.getpid()}\)"):
            run_bo(model, CONFIG, tmp_path / "out", progress=False)
        with pytest.raises(OutputError, match=rf"PID {os.getpid()}"):
            run_bo_benchmark(model, "expression", [0], CONFIG, tmp_path / "out", progress=False)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="cannot be written"):
        run_bo(model, CONFIG, tmp_path / "a-file" / "out", progress=False)
    assert model.decode_calls == 0


def test_a_full_disk_says_how_many_iterations_are_kept(expressions, tmp_path, monkeypatch):
    saves = []
    original = BOState.save

    def save_twice(state, out_dir):
        saves.append(state.completed_iterations)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(state, out_dir)

    monkeypatch.setattr(BOState, "save", save_twice)
    with pytest.raises(OutputError, match="No space left on device.*state.json holds 1 iterations: make room, then continue with --resume"):
        run_bo(ProjectionModel(expressions), CONFIG, tmp_path / "out", progress=False)


def test_prefer_new_takes_unknown_valid_strings_first():
    from grammar_ae.bo.loop import prefer_new

    choices = [("a", True), ("b", False), ("a", True), ("c", True), ("d", True), ("e", True)]
    keys = [string for string, _ in choices]
    assert prefer_new(choices, keys, seen={"c"}, count=4) == [0, 4, 5, 1]
    assert prefer_new(choices, keys, seen={"a", "d", "e"}, count=3) == [3, 0, 1]
    # molecules compare by canonical SMILES: Kekule benzene is known benzene
    logp = get_target("logp")
    molecules = [("C1=CC=CC=C1", True), ("CCO", True), ("OCC", True)]
    keys = [logp.key(string) for string, _ in molecules]
    assert prefer_new(molecules, keys, seen={logp.key("c1ccccc1")}, count=2) == [1, 0]


class RecordingModel(ProjectionModel):
    """The fixture, keeping what each greedy decode call returned."""

    def __init__(self, strings):
        super().__init__(strings)
        self.calls: list[list[str | None]] = []

    def decode(self, z):
        self.calls.append(super().decode(z))
        return self.calls[-1]


def test_each_batch_holds_every_new_string_its_candidates_decode_to(expressions, tmp_path):
    config = replace(DEFAULTS, candidates_per_point=4)
    model = RecordingModel(expressions)
    run_bo(model, config, tmp_path, progress=False)
    state = load_state(tmp_path)
    target = get_target("expression")
    seen = {"".join(s.split()) for s in expressions}
    for iteration, decoded in enumerate(model.calls, 1):
        assert len(decoded) == 4 * config.batch_size
        available = {"".join(s.split()) for s in decoded if s is not None and target.is_valid(s)} - seen
        batch = [p for p in state.proposals if p.iteration == iteration]
        new = [p for p in batch if p.valid and not p.duplicate]
        assert len(batch) == config.batch_size and len(new) == min(config.batch_size, len(available))
        seen |= {"".join(p.string.split()) for p in batch if p.valid}
    assert sum(len(call) for call in model.calls) == 4 * len(state.proposals)


def test_a_run_saved_before_candidates_per_point_resumes_with_one(expressions, tmp_path):
    config = replace(DEFAULTS, iterations=1, candidates_per_point=1)
    run_bo(ProjectionModel(expressions), config, tmp_path, progress=False)
    saved = json.loads((tmp_path / "state.json").read_text())
    del saved["config"]["candidates_per_point"]
    (tmp_path / "state.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="different candidates_per_point"):
        run_bo(ProjectionModel(expressions), replace(config, iterations=2, candidates_per_point=4), tmp_path,
               resume=True, progress=False)
    summary = run_bo(ProjectionModel(expressions), replace(config, iterations=2), tmp_path, resume=True, progress=False)
    assert summary["completed_iterations"] == 2


def test_a_run_saved_before_min_new_fraction_resumes_widening_only_on_nothing_new(expressions, tmp_path):
    config = replace(DEFAULTS, iterations=1, trust_region_widths=TrustRegionConfig(min_new_fraction=0.0))
    run_bo(ProjectionModel(expressions), config, tmp_path, progress=False)
    saved = json.loads((tmp_path / "state.json").read_text())
    del saved["config"]["trust_region_widths"]["min_new_fraction"]
    (tmp_path / "state.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="different trust_region_widths"):
        run_bo(ProjectionModel(expressions), replace(config, iterations=2, trust_region_widths=TrustRegionConfig()),
               tmp_path, resume=True, progress=False)
    summary = run_bo(ProjectionModel(expressions), replace(config, iterations=2), tmp_path, resume=True, progress=False)
    assert summary["completed_iterations"] == 2
