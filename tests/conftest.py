"""Shared fixtures: the shared data directory and an isolated cache per test session."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GRAMMAR_AE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory):
    """Point the data and cache variables at the shared data and a fresh cache."""
    os.environ.setdefault("GRAMMAR_AE_DATA", str(SHARED_DATA))
    os.environ["GRAMMAR_AE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    # The tests' models are tiny: one thread (torch's and the BLAS libraries' that numpy, scipy
    # and scikit-learn call) avoids waiting on a busy second core.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_main(monkeypatch, capsys):
    """Run the real entry point in-process: returns (exit code, stdout, stderr)."""
    from grammar_ae.cli.main import main

    def run(*args: str):
        monkeypatch.setattr("sys.argv", ["grammar-ae", *args])
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code or 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def zinc_smiles() -> list[str]:
    with gzip.open(shared_file("zinc250k.smi.gz"), "rt") as handle:
        return handle.read().splitlines()


@pytest.fixture(scope="session")
def expressions() -> list[str]:
    with gzip.open(shared_file("equation2_15_dataset.txt.gz"), "rt") as handle:
        return handle.read().splitlines()


@pytest.fixture(scope="session")
def tiny_train(tmp_path_factory, expressions) -> list[str]:
    """``grammar-ae train`` arguments of a run that takes a second: 300 expressions, a tiny
    published network, one epoch (``--set epochs=1``, which --epochs overrides) of batches of 50
    (add ``--out``)."""
    data = tmp_path_factory.mktemp("tiny-data") / "expressions.txt"
    data.write_text("\n".join(expressions[:300]) + "\n")
    network = {"latent_dim": 4, "hidden": 8, "gru_hidden": 8, "gru_layers": 1}
    return [
        "train", "--grammar", "expressions", "--data", str(data), "--model", "grae", "--decoder", "published",
        "--set", "epochs=1", "--batch-size", "50", "--device", "cpu", "-q",
        *[argument for key, value in network.items() for argument in ("--set", f"network.{key}={value}")],
    ]
