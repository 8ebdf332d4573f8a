"""Reconstruction and validity of a molecule run against its training time, epoch by epoch.

Reads the end-of-epoch checkpoints kept in a folder (``epoch-001.pt``, ... copies of the
run's last.pt; the run's split.npz is needed beside them), evaluates each once (cached in
``results/<name>_curve.json``): exact-match reconstruction of 1,000 held-out molecules
(greedy decoding) and the validity of 1,000 samples from a Gaussian fitted on 5,000
training codes. Plots both against the cumulative training hours (wall-clock and CPU).

    python benchmarks/molecule_training_curve.py /work/runs/zinc-gru-epochs --name zinc
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from grammar_ae.chemistry import is_valid_molecule
from grammar_ae.models.loading import load_latent_model
from grammar_ae.objectives import fit_sampler
from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

RESULTS = Path(__file__).parent / "results"


def evaluate_snapshot(path: Path, items: int, samples: int) -> dict:
    model = load_latent_model(path, "cpu")
    rng = np.random.default_rng(0)
    held_out = model.validation_strings()
    held_out = [held_out[i] for i in np.sort(rng.choice(len(held_out), min(items, len(held_out)), replace=False))]
    decoded = model.decode(model.encode_means(held_out))
    targets = [model.model.codec.input_form(s) for s in held_out]
    training = model.training_strings()
    codes = model.encode_means([training[i] for i in np.sort(rng.choice(len(training), 5000, replace=False))])
    z = fit_sampler("gaussian", codes).sample(samples, torch.Generator().manual_seed(0))
    history = model.state["history"]
    return {
        "epoch": model.epoch,
        "wall_hours": sum(row["seconds"] for row in history) / 3600,
        "cpu_hours": sum(row.get("cpu_seconds", row["seconds"]) for row in history) / 3600,
        "val_rec": history[-1]["val_rec"],
        "reconstruction": float(np.mean([d == t for d, t in zip(decoded, targets)])),
        "gaussian_validity": float(np.mean([is_valid_molecule(s) for s in model.decode(z)])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("snapshots", type=Path, help="folder of epoch-NNN.pt checkpoints")
    parser.add_argument("--run", type=Path, help="the run directory (its split.npz is copied beside the snapshots)")
    parser.add_argument("--name", default="zinc")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.run is not None:
        shutil.copy(args.run / "split.npz", args.snapshots / "split.npz")
    out = RESULTS / f"{args.name}_curve.json"
    result = json.loads(out.read_text()) if out.is_file() else {"points": []}
    done = {point["epoch"] for point in result["points"]}
    for path in sorted(args.snapshots.glob("epoch-*.pt")):
        if int(path.stem.split("-")[1]) not in done:
            point = evaluate_snapshot(path, args.items, args.samples)
            print(json.dumps(point), flush=True)
            result["points"] = sorted([*result["points"], point], key=lambda p: p["epoch"])
            result.update(items=args.items, samples=args.samples, provenance=provenance())
            atomic_write_json(out, result)
    plot(result["points"], RESULTS / f"{args.name}_curve.png")


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.5, 4))
    hours = [p["wall_hours"] for p in points]
    axis.plot(hours, [p["reconstruction"] for p in points], marker="o", label="held-out reconstruction (exact match)")
    axis.plot(hours, [p["gaussian_validity"] for p in points], marker="s", label="validity of fitted-Gaussian samples")
    for goal, style in ((0.8, ":"), (0.9, "--")):
        axis.axhline(goal, color="grey", linestyle=style, linewidth=0.8)
    axis.set(xlabel="training wall-clock hours (2-core CPU)", ylabel="fraction", ylim=(0, 1))
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
