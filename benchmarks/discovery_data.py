"""The expression set of the discovery protocol: the published 100k expressions without every
expression that scores below a cut-off (default 0.5) on the BO target, so that a model
trained on them, and a search started from them, cannot simply re-decode a near-fit.

    python benchmarks/discovery_data.py                    # benchmarks/runs/discovery/expressions_0.5.txt
    grammar-ae train --grammar expressions --model grae --epochs 15 \\
        --data benchmarks/runs/discovery/expressions_0.5.txt --out benchmarks/runs/discovery/grae

Writes the kept expressions (one per line, as in the published file) and a JSON record of
the counts to benchmarks/results/discovery_data.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, write_result  # noqa: E402

from grammar_ae.bo.scoring import score_many  # noqa: E402
from grammar_ae.bo.targets import get_target  # noqa: E402
from grammar_ae.data.readers import read_strings  # noqa: E402
from grammar_ae.data.sources import resolve_data  # noqa: E402
from grammar_ae.utils.files import atomic_write_text, sha256_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cutoff", type=float, default=0.5, help="drop every expression scoring below this")
    parser.add_argument("--out", type=Path, default=None, help="output file (default benchmarks/runs/discovery/expressions_CUTOFF.txt)")
    args = parser.parse_args()
    out = args.out or REPO / "benchmarks" / "runs" / "discovery" / f"expressions_{args.cutoff:g}.txt"
    strings = read_strings(resolve_data("expressions")).strings
    scores = score_many(get_target("expression"), strings)
    kept = [s for s, score in zip(strings, scores) if not score < args.cutoff]  # NaN (unscorable) is kept
    atomic_write_text(out, "".join(s + "\n" for s in kept))
    dropped = np.sort(scores[scores < args.cutoff])
    path = write_result("discovery_data", {
        "cutoff": args.cutoff, "expressions": len(strings), "kept": len(kept), "dropped": int(len(dropped)),
        "dropped_scores": [round(float(s), 4) for s in dropped], "best_kept_score": float(np.nanmin(scores[scores >= args.cutoff])),
        "file": str(out), "file_sha256": sha256_file(out),
    })
    print(f"kept {len(kept):,} of {len(strings):,} expressions (dropped {len(dropped)} scoring below {args.cutoff:g}) in {out}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
