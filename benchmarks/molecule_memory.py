"""Memory of molecule training on all of ZINC-250k: resident set size over a run.

Runs ``grammar-ae train --grammar smiles`` (the molecule defaults, all of ZINC-250k) for
``--seconds`` per variant and samples the process's resident memory (``VmRSS``) once a
second together with the batches trained so far (read from its progress lines), and its
peak (``VmHWM``). Variants run one after the other on the same data:

- ``default``: the command as a user runs it;
- ``GLIBC_TUNABLES=...``: the same command under other glibc allocator settings, to tell
  memory the program holds from memory the allocator keeps.

    python benchmarks/molecule_memory.py                  # writes results/molecule_memory.json
    python benchmarks/molecule_memory.py --seconds 120 --variants default
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "default": {},
    "arena_max_2": {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
    "trim_threshold_64mb": {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=67108864:glibc.malloc.mmap_threshold=1048576"},
}
PROGRESS = re.compile(r"batch (\d+)/\d+")


def status_gb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in GB (empty once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, flags=re.M))
    return {name: int(kb) * 1024 / 1e9 for name, kb in fields.items()}


def batches_done(log: Path) -> int | None:
    """The last progress count the training printed, None before the first."""
    matches = PROGRESS.findall(log.read_text(errors="replace"))
    return int(matches[-1]) if matches else None


def measure(name: str, extra_env: dict[str, str], seconds: float, work: Path, args: list[str]) -> dict:
    out, log_path = work / name, work / f"{name}.log"
    command = [sys.executable, "-m", "grammar_ae", "train", "--grammar", "smiles", "--epochs", "1", "--out", str(out), *args]
    samples, peak = [], 0.0
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env={**os.environ, **extra_env}, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None and time.perf_counter() - started < seconds:
            time.sleep(1.0)
            memory = status_gb(process.pid)
            if memory:
                peak = max(peak, memory["VmHWM"])
                samples.append([round(time.perf_counter() - started, 1), batches_done(log_path),
                                round(memory["VmRSS"], 3)])
        process.terminate()
        process.wait()
    trained = [s for s in samples if s[1] is not None]
    return {
        "name": name, "env": extra_env, "command": " ".join(command[2:]), "seconds": round(time.perf_counter() - started),
        "batches": trained[-1][1] if trained else 0,
        "rss_gb_at_first_progress": trained[0][2] if trained else None,
        "rss_gb_last": samples[-1][2] if samples else None, "peak_rss_gb": round(peak, 3),
        "samples_seconds_batches_rss_gb": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=900, help="training time per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--name", default="molecule_memory", help="result file name (without .json)")
    parser.add_argument("train_args", nargs="*", help="extra arguments for grammar-ae train (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [measure(name, VARIANTS[name], args.seconds, Path(tmp), args.train_args) for name in args.variants]
    result = {"goal_gb": 2.0, "runs": runs, "provenance": provenance()}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / f"{args.name}.json", result)
    for run in runs:
        print(f"{run['name']}: {run['batches']} batches in {run['seconds']} s, RSS {run['rss_gb_at_first_progress']} GB "
              f"at the first progress line, {run['rss_gb_last']} GB at the end, peak {run['peak_rss_gb']} GB")


if __name__ == "__main__":
    main()
