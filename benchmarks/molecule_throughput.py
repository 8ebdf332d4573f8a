"""Training throughput on ZINC-250k: the published grammar VAE against the molecule default.

Side by side in one run, on the same data and the same cores, with the project's own
``grammar-ae train`` (one epoch on a seeded subset, timed by the trainer's metrics.csv):

- the published design (``--decoder published``: 3 GRU x 501, 277 steps, batch 500);
- the molecule default (autoregressive GRU over folded tokens, bf16 autocast) in one
  process with all threads, and as data-parallel processes of one thread each (torchrun),
  timed on its second epoch (the first also compiles the GRU cell);
- the machine's measured fp32 and bf16 matrix-multiply peak (the best of several short
  windows, before and after the training runs), and the fraction of the bf16 peak the
  default reaches (its FLOPs per molecule counted from the network sizes).

The same work on a shared 2-core virtual machine varies by about 10 % from one minute to
the next, so the default's configurations run ``--repeats`` times, interleaved, and are
judged by their median.

    python benchmarks/molecule_throughput.py            # writes results/molecule_throughput.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from grammar_ae.data.datasets import load_prepared
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.folding import FoldedGrammar
from grammar_ae.models.sequence.autoregressive_networks import flops_per_token
from grammar_ae.models.sequence.networks import MOLECULE_NETWORK
from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

RESULTS = Path(__file__).parent / "results"


def matmul_peak(dtype: torch.dtype, threads: int, size: int = 2048, windows: int = 6, seconds: float = 0.5) -> float:
    """GFLOP/s of repeated square matrix products: the best of ``windows`` timed windows (the
    machine's speed drifts, and a peak is what it reaches)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(windows):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            count += 1
        rates.append(2 * size**3 * count / (time.perf_counter() - started) / 1e9)
    return max(rates)


def matmul_peaks(cores: int) -> dict[str, float]:
    return {f"{dtype}_{t}_threads": round(matmul_peak(getattr(torch, dtype), t), 1)
            for dtype in ("float32", "bfloat16") for t in sorted({1, cores})}


def train_rate(name: str, args: list[str], items: int, processes: int, threads: int, work: Path, epochs: int = 1) -> dict:
    """Molecules per second of the last of ``epochs`` training epochs (the trainer's own timing,
    its 1 % validation included; with 2 epochs the first absorbs torch.compile's compilation)."""
    out = work / name
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"] \
        if processes > 1 else [sys.executable, "-m"]
    command = [*launcher, "grammar_ae", "train", "--grammar", "smiles", "--data", "zinc250k", "--limit", str(items),
               "--epochs", str(epochs), "--quiet", "--out", str(out), "--set", "validation_fraction=0.01", *args]
    started = time.perf_counter()
    with open(work / f"{name}.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{name}: training failed, see {work / name}.log")
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    row = rows[-1]
    summary = json.loads((out / "summary.json").read_text())
    trained = summary["record"]["train_items"] // summary["config"]["batch_size"] * summary["config"]["batch_size"]
    seconds = float(row["seconds"])
    return {"name": name, "processes": processes, "threads_per_process": threads, "items": trained,
            "epoch_seconds": round(seconds, 1), "first_epoch_seconds": round(float(rows[0]["seconds"]), 1), "molecules_per_second": round(trained / seconds, 1),
            "wall_seconds": round(time.perf_counter() - started, 1), "command": " ".join(command[len(launcher):]),
            "peak_rss_gb_largest_process": round(usage.ru_maxrss / 1e6, 2)}


def median_run(name: str, repeats: list[dict]) -> dict:
    """The repeat with the median rate, named ``name``, with every repeat's rate and peak memory."""
    ordered = sorted(repeats, key=lambda r: r["molecules_per_second"])
    run = dict(ordered[(len(ordered) - 1) // 2], name=name)
    run["repeats_molecules_per_second"] = [r["molecules_per_second"] for r in repeats]
    run["repeats_peak_rss_gb"] = [r["peak_rss_gb_largest_process"] for r in repeats]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000, help="molecules per timed epoch (default model)")
    parser.add_argument("--published-items", type=int, default=3_000, help="molecules per timed epoch (published model)")
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each default configuration, interleaved")
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit(f"--repeats {args.repeats}: must be at least 1")
    cores = args.cores

    grammar = Grammar.load("smiles")
    data = load_prepared("zinc250k", grammar, progress=False)
    _, token_offsets = FoldedGrammar.from_grammar(grammar).fold(data.sequences, data.offsets)
    mean_tokens = float(np.diff(token_offsets).mean())
    mean_rules = float(np.diff(data.offsets).mean())

    peaks = matmul_peaks(cores)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        published = train_rate("published", ["--decoder", "published"], args.published_items, 1, cores, work)
        layouts = [("default, 1 process", 1, cores)] + ([(f"default, {cores} processes", cores, 1)] if cores > 1 else [])
        repeats: dict[str, list[dict]] = {name: [] for name, _, _ in layouts}
        for repeat in range(args.repeats):
            for name, processes, threads in layouts:
                repeats[name].append(train_rate(f"{name} {repeat}", [], args.items, processes, threads, work, epochs=2))
    runs = [published] + [median_run(name, rates) for name, rates in repeats.items()]
    peaks = {name: max(rate, again) for (name, rate), again in zip(peaks.items(), matmul_peaks(cores).values())}

    net = MOLECULE_NETWORK
    from grammar_ae.models.sequence.autoregressive_networks import TokenNetworkSizes

    sizes = TokenNetworkSizes(net.latent_dim, net.embedding_dim, net.model_dim, net.decoder_layers, net.encoder_dim,
                              net.encoder_layers, net.heads, grammar.max_length)
    num_tokens = FoldedGrammar.from_grammar(grammar).num_tokens
    train_flops = 3 * flops_per_token(sizes, net.decoder, net.encoder, num_tokens) * mean_tokens  # forward + backward
    best = max(runs[1:], key=lambda r: r["molecules_per_second"])
    published = runs[0]["molecules_per_second"]
    zinc_train = round(0.9 * len(data))
    result = {
        "cores": cores,
        "matmul_peak_gflops": peaks,
        "mean_rules_per_molecule": round(mean_rules, 1),
        "mean_tokens_per_molecule": round(mean_tokens, 1),
        "default_training_gflop_per_molecule": round(train_flops / 1e9, 3),
        "runs": runs,
        "speedup_over_published": {r["name"]: round(r["molecules_per_second"] / published, 1) for r in runs[1:]},
        "zinc_epoch_minutes": {r["name"]: round(zinc_train / r["molecules_per_second"] / 60, 1) for r in runs},
        "fraction_of_bf16_peak": round(
            best["molecules_per_second"] * train_flops / 1e9 / peaks[f"bfloat16_{cores}_threads"], 3),
        "data_sha256": data.input_sha256,
        "provenance": provenance(),
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "molecule_throughput.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))


if __name__ == "__main__":
    main()
