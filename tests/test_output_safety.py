"""Output directories: nothing written before every check passes, one writer at a time (an OS
lock that dies with its process), unwritable or full outputs as one-line errors, and the
leftovers of interrupted writes cleared at the next start."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grammar_ae.errors import OutputError
from grammar_ae.utils.output_lock import LOCK_FILE, hold_output_lock

STALE = (".last.pt.k3j2h1g0.tmp", ".metrics.csv.abcd_123.tmp")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_train) -> Path:
    from grammar_ae.cli.main import app

    out = tmp_path_factory.mktemp("finished") / "run"
    app([*tiny_train, "--out", str(out)], standalone_mode=False)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--seed", "1"], "already holds a training run (last.pt): pass --resume to continue it, --overwrite to replace it"),
        (["--resume", "--limit", "200"], "does not match: record.config.limit is None there, expected 200"),
        (["--resume", "--seed", "1"], "does not match: record.config.seed is 0 there, expected 1"),
        (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
    ],
)
def test_a_refused_train_changes_nothing_in_the_run(run_main, tiny_train, run_copy, arguments, message):
    before = contents(run_copy)
    code, _, err = run_main(*tiny_train, *arguments, "--out", str(run_copy))
    assert code == 1 and message in err and err.count("\n") == 1, err
    assert contents(run_copy) == before


def grammar_ae_process(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "grammar_ae", *arguments]


def test_a_second_writer_is_refused_with_the_holders_pid_and_kill_leaves_no_stale_lock(tiny_train, tmp_path):
    out = tmp_path / "run"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen(grammar_ae_process(*tiny_train, "--epochs", "100000", "--out", str(out)), env=environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists() and time.monotonic() < deadline:  # writing for sure
            time.sleep(0.2)
        second = subprocess.run(grammar_ae_process(*tiny_train, "--overwrite", "--out", str(out)), env=environment,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 1, second.stderr
        assert second.stderr == (
            f"error: {out} is being written by another grammar-ae process (PID {holder.pid}); "
            "wait for it to end or choose another directory\n"
        )
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process
        holder.wait()
    third = subprocess.run(grammar_ae_process(*tiny_train, "--overwrite", "--out", str(out)), env=environment,
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert not (out / LOCK_FILE).exists()


def test_data_prepare_refuses_a_second_writer(run_main, tmp_path):
    data = tmp_path / "e.txt"
    data.write_text("x + 1\nsin( x )\n")
    out = tmp_path / "prepared"
    with hold_output_lock(out):
        code, _, err = run_main("data", "prepare", "--grammar", "expressions", "--input", str(data), "--output", str(out))
    assert code == 1 and f"(PID {os.getpid()})" in err and err.count("\n") == 1
    assert not out.exists()  # the lock's folder goes again when nothing was written


def test_unwritable_outputs_are_refused_before_the_work(run_main, tiny_train, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_main(*tiny_train, "--out", str(blocker / "run"))
    assert code == 1 and err.startswith(f"error: {blocker / 'run'}: cannot be written") and err.count("\n") == 1
    data = tmp_path / "e.txt"
    data.write_text("x + 1\n")
    code, _, err = run_main("data", "prepare", "--grammar", "expressions", "--input", str(data), "--output", str(blocker / "p"))
    assert code == 1 and "cannot be written" in err and err.count("\n") == 1


def test_a_full_disk_keeps_the_last_good_checkpoint_and_says_so(run_main, tiny_train, tmp_path, monkeypatch):
    replace, saved = os.replace, []

    def disk_fills_up(source, target):
        if Path(target).name == "last.pt":
            saved.append(target)
            if len(saved) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source))
        replace(source, target)

    monkeypatch.setattr(os, "replace", disk_fills_up)
    out = tmp_path / "run"
    code, _, err = run_main(*tiny_train, "--epochs", "2", "--out", str(out))
    assert code == 1 and err.count("\n") == 1
    assert "No space left on device" in err and "last.pt still holds epoch 1" in err and "--resume" in err
    assert not [path for path in out.iterdir() if path.name.endswith(".tmp")]


def test_temporaries_of_interrupted_writes_are_removed_at_the_next_start(run_main, tiny_train, run_copy, tmp_path):
    for name in STALE:
        (run_copy / name).write_bytes(b"half a file")
    code, _, err = run_main(*tiny_train, "--resume", "--epochs", "2", "--out", str(run_copy))
    assert code == 0, err
    assert not any((run_copy / name).exists() for name in STALE) and (run_copy / "last.pt").exists()
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / ".summary.json.zz99yy88.tmp").write_text("{")
    data = tmp_path / "e.txt"
    data.write_text("x + 1\n")
    code, _, err = run_main("data", "prepare", "--grammar", "expressions", "--input", str(data), "--output", str(prepared), "-q")
    assert code == 0, err
    assert sorted(path.name for path in prepared.iterdir() if path.name.startswith(".")) == []


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    with hold_output_lock(tmp_path / "d"):
        with pytest.raises(OutputError, match=f"PID {os.getpid()}"):
            with hold_output_lock(tmp_path / "d"):
                pass
    with hold_output_lock(tmp_path / "d"):  # released
        pass
