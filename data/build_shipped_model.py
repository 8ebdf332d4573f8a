"""Package a trained run as a shipped model: data/models/<name>/{best.pt, split.npz, card.json,
sampler_*.pt}.

The checkpoint keeps what loading needs (``grammar_ae.models.shipped.export_run``: spec,
float16 weights, history, record, config, provenance) and drops the optimizer and schedule. The card holds the training command, the
data checksum, the code version, the training time and the metrics that
``grammar-ae evaluate <name> --json`` reproduces (computed here on the shipped weights). The
latent densities that evaluation fits on the training codes are shipped too, and the kernel
density (``grammar-ae sample NAME --sampler kde``).

    python data/build_shipped_model.py RUN_DIR zinc --description "..." --command "grammar-ae train ..."

When decoding changes (the SMILES checks), ``--refresh NAME`` evaluates a shipped model again
with the current code and rewrites its card's metrics, recording the code version they were
computed with (``metrics_code_version``); weights and training record stay as shipped, and
the fitted densities are those evaluation used (the shipped ones, unless they no longer fit).

    python data/build_shipped_model.py --refresh zinc
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch

from grammar_ae.evaluation.run import evaluate_run
from grammar_ae.models.loading import load_run
from grammar_ae.models.run import SAMPLER_FILES
from grammar_ae.models.shipped import CARD_FILE, export_run
from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import code_version

DENSITIES_BEYOND_EVALUATION = ("kde",)  # shipped with their default options
CARD_METRICS = (
    "reconstruction_accuracy", "prior_validity", "gaussian_validity", "gmm_validity", "uniqueness", "novelty",
    "fcd", "snn", "frag", "scaf", "int_div", "filters",
)


def evaluate_copy(out: Path, name: str) -> dict:
    """The evaluation of the shipped model in ``out`` (on a copy: evaluation may add files),
    with its fitted densities, and those it does not fit, copied back."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / name
        shutil.copytree(out, local)
        metrics = evaluate_run(local, device="cpu", progress=True, options={})
        run = load_run(local, device="cpu", progress=True)
        for kind in DENSITIES_BEYOND_EVALUATION:
            run.sampler(kind)
        for path in out.glob(SAMPLER_FILES):  # fitted for an earlier checkpoint
            path.unlink()
        for path in local.glob(SAMPLER_FILES):
            shutil.copy2(path, out / path.name)
    return metrics


def card_metrics(metrics: dict, name: str) -> dict:
    return {
        "metrics": {key: metrics[key] for key in CARD_METRICS if key in metrics},
        "evaluation": {"command": f"grammar-ae evaluate {name} --json", "config": metrics.get("config")},
    }


def refresh(name: str) -> None:
    out = Path(__file__).parent / "models" / name
    card_file = out / CARD_FILE
    if not card_file.is_file():
        raise SystemExit(f"error: {card_file}: no shipped model {name!r} to refresh")
    card = json.loads(card_file.read_text())
    card.update(card_metrics(evaluate_copy(out, name), name), metrics_code_version=code_version())
    atomic_write_json(card_file, card)
    print(json.dumps(card["metrics"], indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", help="run directory (its best.pt is shipped)")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--description")
    parser.add_argument("--command", help="the grammar-ae train command(s) that trained it")
    parser.add_argument("--threads", type=int, default=1, help="threads per training process (for the CPU time of old epochs)")
    parser.add_argument("--refresh", metavar="NAME", help="evaluate a shipped model again and rewrite its card's metrics")
    args = parser.parse_args()
    if args.refresh:
        if args.run or args.name:
            parser.error("--refresh takes only the shipped model's name")
        return refresh(args.refresh)
    if not (args.run and args.name and args.description and args.command):
        parser.error("building a shipped model needs RUN NAME --description --command")

    out = Path(__file__).parent / "models" / args.name
    state = export_run(args.run, out)

    history = state["history"]
    wall = sum(row["seconds"] for row in history)
    cpu = sum(row.get("cpu_seconds", row["seconds"] * args.threads) for row in history)
    metrics = evaluate_copy(out, args.name)
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
        **card_metrics(metrics, args.name),
    }
    atomic_write_json(out / CARD_FILE, card)
    print(json.dumps(card, indent=1))
    print(f"{out}: {sum(p.stat().st_size for p in out.iterdir()) / 1e6:.1f} MB")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
