"""Data-parallel training under torchrun on the CPU (gloo): two processes of half the batch
train the same weights as one process of the whole batch."""

import json
import os
import subprocess
import sys

import pytest
import torch

from grammar_ae.training import load_checkpoint

TRAIN = [
    "train", "--grammar", "expressions", "--data", "expressions-generated", "--limit", "1200",
    "--decoder", "gru", "--batch-size", "40", "--seed", "5", "--quiet",
    "--set", "network.latent_dim=12", "--set", "network.embedding_dim=8", "--set", "network.model_dim=16",
    "--set", "network.encoder_dim=8", "--set", "mixed_precision=false",
]


def train(out, model, epochs, processes, env, *extra):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]
    args = [*TRAIN, "--model", model, "--epochs", str(epochs), "--out", str(out), *extra]
    return subprocess.run([*(launcher if processes > 1 else [sys.executable, "-m"]), "grammar_ae", *args],
                          env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    env = dict(os.environ, OMP_NUM_THREADS="1", GRAMMAR_AE_COMPILE="0")
    env["GRAMMAR_AE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return env


def close_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=2e-5) for k in a)


@pytest.mark.parametrize("model", ["grae", "grae-gmm"])
def test_two_processes_train_the_weights_of_one(tmp_path, environment, model):
    alone, together = tmp_path / "one", tmp_path / "two"
    single = train(alone, model, 2, 1, environment)
    assert single.returncode == 0, single.stderr
    double = train(together, model, 2, 2, environment)
    assert double.returncode == 0, double.stderr
    one, two = load_checkpoint(alone / "last.pt"), load_checkpoint(together / "last.pt")
    assert close_weights(one["model_state"], two["model_state"])
    assert two["world_size"] == 2 and json.loads((together / "summary.json").read_text())["world_size"] == 2
    rows = (together / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # a header and one line per epoch: written once, by rank 0
    assert sorted(p.name for p in together.iterdir() if p.suffix == ".pt" or p.name.startswith("split")) == [
        "best.pt", "last.pt", "split.npz"]
    if model != "grae":
        return  # resuming does not depend on the objective
    # resuming the two-process run in one process continues where one process would be
    assert train(together, model, 3, 1, environment, "--resume").returncode == 0
    assert train(alone, model, 3, 1, environment, "--resume").returncode == 0
    assert close_weights(load_checkpoint(alone / "last.pt")["model_state"], load_checkpoint(together / "last.pt")["model_state"])


def test_a_batch_that_does_not_split_evenly_is_refused_by_every_process(tmp_path, environment):
    result = train(tmp_path / "run", "grae", 1, 2, environment, "--batch-size", "41")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("not a multiple of the 2 processes" in line for line in errors)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_process_that_dies_ends_the_others_with_one_line(tmp_path, environment):
    import signal
    import subprocess
    import time

    out = tmp_path / "run"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "grammar_ae"]
    args = [*TRAIN, "--model", "grae", "--epochs", "50", "--limit", "6000", "--checkpoint-every", "0.002", "--out", str(out)]
    process = subprocess.Popen([*launcher, *args], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    started = time.monotonic()
    while not (out / "last.pt").exists():
        assert process.poll() is None and time.monotonic() - started < 300
        time.sleep(0.05)
    ranks = subprocess.run(["pgrep", "-f", f"grammar_ae {' '.join(TRAIN[:2])}.*{out}"], capture_output=True, text=True)
    workers = sorted(int(pid) for pid in ranks.stdout.split() if int(pid) != process.pid)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "another data-parallel process failed or left" in lines[0]
    assert load_checkpoint(out / "last.pt")["model_spec"]  # the last checkpoint is intact
