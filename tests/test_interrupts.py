"""Interrupted training: signals to a real `grammar-ae train` process, periodic mid-epoch
checkpoints, kill -9, and resumption that ends where an uninterrupted run ends."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from grammar_ae.training import load_checkpoint

TRAIN = [
    "train", "--grammar", "expressions", "--data", "expressions-generated", "--model", "grae", "--limit", "2000",
    "--batch-size", "10", "--epochs", "3", "--seed", "3", "--quiet",
    "--set", "network.latent_dim=6", "--set", "network.hidden=12", "--set", "network.gru_hidden=12",
    "--set", "network.gru_layers=1",
]


def command(out, *extra):
    return [sys.executable, "-m", "grammar_ae", *TRAIN, "--out", str(out), *extra]


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    env = dict(os.environ, OMP_NUM_THREADS="1", GRAMMAR_AE_COMPILE="0")
    env["GRAMMAR_AE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return env


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, environment):
    out = tmp_path_factory.mktemp("runs") / "straight"
    subprocess.run(command(out), env=environment, check=True, capture_output=True, timeout=600)
    return load_checkpoint(out / "last.pt")


def wait_for(path, process, timeout=120.0):
    started = time.monotonic()
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - started < timeout, f"{path} never appeared"
        time.sleep(0.02)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_epoch_in_progress_and_resume_finishes_exactly(tmp_path, environment, uninterrupted, sig, code):
    out = tmp_path / "run"
    # frequent mid-epoch saves make last.pt appear once training runs; the signal follows
    process = subprocess.Popen(command(out, "--checkpoint-every", "0.002"), env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for(out / "last.pt", process)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: interrupted by {sig.name} in epoch ")
    assert "--resume" in lines[0] and str(out / "last.pt") in lines[0]
    state = load_checkpoint(out / "last.pt")
    assert state["position"] is not None and state["position"]["batches_done"] > 0  # mid-epoch
    resumed = subprocess.run(command(out, "--resume"), env=environment, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    final = load_checkpoint(out / "last.pt")
    assert final["epoch"] == 3 and final["position"] is None
    assert same_weights(final["model_state"], uninterrupted["model_state"])
    assert [row["train_loss"] for row in final["history"]] == [row["train_loss"] for row in uninterrupted["history"]]


def test_kill_9_loses_at_most_the_time_since_the_last_periodic_checkpoint(tmp_path, environment, uninterrupted):
    out = tmp_path / "run"
    process = subprocess.Popen(command(out, "--checkpoint-every", "0.002"), env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    wait_for(out / "last.pt", process)
    time.sleep(0.5)
    process.kill()
    process.communicate(timeout=60)
    saved = load_checkpoint(out / "last.pt")
    assert saved["position"] is not None or saved["epoch"] >= 1
    resumed = subprocess.run(command(out, "--resume"), env=environment, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(load_checkpoint(out / "last.pt")["model_state"], uninterrupted["model_state"])


def test_best_checkpoint_is_repaired_when_a_run_stopped_between_last_and_best(tmp_path, environment, uninterrupted):
    """last.pt is written before best.pt; a run stopped in between has the best epoch in last.pt only."""
    out = tmp_path / "run"
    one_epoch = [c if c != "3" else "1" for c in command(out)]
    subprocess.run(one_epoch, env=environment, check=True, capture_output=True, timeout=600)
    (out / "best.pt").unlink()  # as if killed after writing last.pt of the best epoch
    resumed = subprocess.run(one_epoch + ["--resume"], env=environment, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == best["best_epoch"] == 1
    assert same_weights(best["model_state"], load_checkpoint(out / "last.pt")["model_state"])
