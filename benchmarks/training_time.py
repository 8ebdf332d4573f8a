"""Write the JSON on stdin (``grammar-ae evaluate RUN --json``) with the run's training time added.

    grammar-ae evaluate RUN --json | python benchmarks/training_time.py RUN RESULT.json

Adds ``training`` with the epochs and the wall-clock and CPU seconds summed from the run's
``metrics.csv`` (the trainer's own timing of each epoch).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from grammar_ae.utils.files import atomic_write_json


def training_time(run: Path) -> dict:
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        "epochs": len(rows),
        "wall_seconds": round(sum(float(row["seconds"]) for row in rows), 1),
        "cpu_seconds": round(sum(float(row["cpu_seconds"]) for row in rows), 1),
    }


if __name__ == "__main__":
    record = json.load(sys.stdin)
    record["training"] = training_time(Path(sys.argv[1]))
    atomic_write_json(Path(sys.argv[2]), record)
