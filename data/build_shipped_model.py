"""Package a trained run as a shipped model: data/models/<name>/{best.pt, split.npz, card.json,
sampler_*.pt}.

The checkpoint keeps what loading needs (``grammar_ae.models.shipped.export_run``: spec,
float16 weights, history, record, config, provenance) and drops the optimizer and schedule. The card holds the training command, the
data checksum, the code version, the training time and the metrics that
``grammar-ae evaluate <name> --json`` reproduces (computed here on the shipped weights). The
latent densities that evaluation fits on the training codes are shipped too.

    python data/build_shipped_model.py RUN_DIR zinc --description "..." --command "grammar-ae train ..."
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch

from grammar_ae.evaluation.run import evaluate_run
from grammar_ae.models.run import SAMPLER_FILES
from grammar_ae.models.shipped import CARD_FILE, export_run
from grammar_ae.utils.files import atomic_write_json

CARD_METRICS = (
    "reconstruction_accuracy", "prior_validity", "gaussian_validity", "gmm_validity", "uniqueness", "novelty",
    "fcd", "snn", "frag", "scaf", "int_div", "filters",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory (its best.pt is shipped)")
    parser.add_argument("name")
    parser.add_argument("--description", required=True)
    parser.add_argument("--command", required=True, help="the grammar-ae train command(s) that trained it")
    parser.add_argument("--threads", type=int, default=1, help="threads per training process (for the CPU time of old epochs)")
    args = parser.parse_args()

    out = Path(__file__).parent / "models" / args.name
    state = export_run(args.run, out)

    history = state["history"]
    wall = sum(row["seconds"] for row in history)
    cpu = sum(row.get("cpu_seconds", row["seconds"] * args.threads) for row in history)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / args.name
        shutil.copytree(out, local)
        metrics = evaluate_run(local, device="cpu", progress=True, options={})
        for path in out.glob(SAMPLER_FILES):  # fitted for an earlier checkpoint
            path.unlink()
        for path in local.glob(SAMPLER_FILES):
            shutil.copy2(path, out / path.name)
    record = state["record"]
    card = {
        "name": args.name,
        "description": args.description,
        "trained_with": args.command,
        "data": {"name": record.get("data"), "sha256": record.get("data_sha256"),
                 "train_items": record.get("train_items"), "validation_items": record.get("validation_items")},
        "code_version": state.get("provenance", {}).get("code_version"),
        "training": {"epochs": len(history), "best_epoch": state.get("best_epoch"),
                     "wall_hours": round(wall / 3600, 2), "cpu_hours": round(cpu / 3600, 2),
                     "machine": "2-core CPU (bf16 matrix units), no GPU"},
        "parameters": record.get("parameters"),
        "metrics": {key: metrics[key] for key in CARD_METRICS if key in metrics},
        "evaluation": {"command": f"grammar-ae evaluate {args.name} --json", "config": metrics.get("config")},
    }
    atomic_write_json(out / CARD_FILE, card)
    print(json.dumps(card, indent=1))
    print(f"{out}: {sum(p.stat().st_size for p in out.iterdir()) / 1e6:.1f} MB")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
