"""Train and evaluate the sequence presets; one JSON per preset plus a Markdown table.

    python benchmarks/sequence_models.py --grammar expressions --presets grae grae-gmm --epochs 15
    python benchmarks/sequence_models.py --grammar smiles --limit 20000 --epochs 10 --set network.gru_hidden=128
    python benchmarks/sequence_models.py --grammar expressions --report    # table from the JSON files

Runs go to benchmarks/runs/<grammar>/<preset>/ (resumed if interrupted); results to
benchmarks/results/sequence_<grammar>_<preset>.json and sequence_<grammar>.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, write_result  # noqa: E402

from grammar_ae import load_run  # noqa: E402
from grammar_ae.evaluation.sequence import EvaluationConfig, evaluate_sequence_model  # noqa: E402
from grammar_ae.models.sequence.config import SequenceRunConfig  # noqa: E402
from grammar_ae.models.sequence.presets import SEQUENCE_PRESETS  # noqa: E402
from grammar_ae.pipelines.train_sequence import train_sequence_model  # noqa: E402
from grammar_ae.utils.config_files import parse_assignments  # noqa: E402
from grammar_ae.utils.files import atomic_write_text  # noqa: E402

COLUMNS = [
    ("reconstruction_accuracy", "reconstruction"),
    ("prior_validity", "prior validity"),
    ("gmm_validity", "ex-post GMM validity"),
    ("prior_uniqueness", "prior uniqueness"),
    ("prior_novelty", "prior novelty"),
]


def validation_history(run: Path) -> list[float]:
    """The validation reconstruction loss of every epoch, from the run's metrics.csv."""
    with open(run / "metrics.csv", newline="") as handle:
        return [round(float(row["val_rec"]), 4) for row in csv.DictReader(handle)]


def run_preset(args, preset: str) -> dict:
    out = REPO / "benchmarks" / "runs" / args.grammar / (preset + args.tag)
    overrides = parse_assignments(args.set)
    config = SequenceRunConfig(
        grammar=args.grammar, model=preset, data=args.data, limit=args.limit, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, objective=overrides.get("objective", {}),
        network=overrides.get("network", {}), regularizer=args.regularizer if preset == "grae" else None,
    )
    started = time.perf_counter()
    resume = (out / "last.pt").exists()
    summary = train_sequence_model(config, out, resume=resume, quiet=args.quiet)
    train_seconds = time.perf_counter() - started
    evaluation = evaluate_sequence_model(
        load_run(out, args.device, family="sequence"),
        EvaluationConfig(items=args.items, prior_samples=args.prior_samples, encode_samples=args.encode_samples,
                         decode_samples=args.decode_samples),
        progress=not args.quiet,
    )
    result = {
        "grammar": args.grammar, "preset": preset, "regularizer": config.regularizer, "tag": args.tag,
        "run": str(out.relative_to(REPO)),
        "epochs": summary["epochs_run"], "best_epoch": summary["best_epoch"],
        "seconds_per_epoch": summary.get("seconds_per_epoch"), "train_seconds_this_call": round(train_seconds, 1),
        "train_items": summary["record"]["train_items"], "parameters": summary["record"]["parameters"],
        "config": summary["record"]["config"], "data_sha256": summary["record"]["data_sha256"],
        "val_rec_by_epoch": validation_history(out),
        **{k: evaluation[k] for k, _ in COLUMNS}, "evaluation": evaluation,
    }
    write_result(f"sequence_{args.grammar}_{preset}{args.tag}", result)
    return result


def report(grammar: str) -> str:
    rows = []
    for path in sorted(RESULTS.glob(f"sequence_{grammar}_*.json")):
        r = json.loads(path.read_text())
        name = r["preset"] + (f" ({r['regularizer']})" if r.get("regularizer") else r.get("tag", ""))
        cells = [f"{r[k]:.3f}" for k, _ in COLUMNS]
        rows.append(f"| {name} | {r['train_items']:,} | {r['epochs']} | {r['seconds_per_epoch']:.0f} | " + " | ".join(cells) + " |")
    header = "| model | train items | epochs | s/epoch | " + " | ".join(t for _, t in COLUMNS) + " |"
    table = "\n".join([header, "|" + "---|" * (4 + len(COLUMNS))] + rows) + "\n"
    atomic_write_text(RESULTS / f"sequence_{grammar}.md", table)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grammar", default="expressions")
    parser.add_argument("--presets", nargs="+", default=list(SEQUENCE_PRESETS))
    parser.add_argument("--regularizer", default=None)
    parser.add_argument("--tag", default="", help="suffix for run and result names (e.g. --tag=-gp)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--prior-samples", type=int, default=1000)
    parser.add_argument("--encode-samples", type=int, default=10)
    parser.add_argument("--decode-samples", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], help="objective.KEY=V or network.KEY=V")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if not args.report:
        for preset in args.presets:
            result = run_preset(args, preset)
            print(preset, {k: result[k] for k, _ in COLUMNS})
    print(report(args.grammar))


if __name__ == "__main__":
    main()
