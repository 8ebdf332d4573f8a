"""Rebuild data/moses_sample.smi.gz: a seeded sample of the MOSES training set.

MOSES (Polykovskiy et al., 2020) is MIT-licensed; its training set ships inside the
`molsets` wheel on PyPI as moses/dataset/data/train.csv.gz. Usage:

    pip download molsets==0.3.1 --no-deps -d /tmp/molsets
    unzip -o /tmp/molsets/molsets-0.3.1-py3-none-any.whl 'moses/dataset/data/train.csv.gz' -d /tmp/molsets
    python data/build_moses_sample.py /tmp/molsets/moses/dataset/data/train.csv.gz
"""

import gzip
import random
import sys
from pathlib import Path

from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser

SAMPLE_SIZE = 5000
SEED = 0


def main(train_csv: str) -> None:
    with gzip.open(train_csv, "rt") as handle:
        smiles = [line.strip() for line in handle][1:]
    random.Random(SEED).shuffle(smiles)
    parser = Parser(Grammar.load("smiles"))
    sample = []
    for candidate in smiles:
        try:
            parser.parse(candidate)
        except Exception:  # outside the grammar: not part of the sample
            continue
        sample.append(candidate)
        if len(sample) == SAMPLE_SIZE:
            break
    out = Path(__file__).with_name("moses_sample.smi.gz")
    with gzip.GzipFile(out, "wb", mtime=0) as handle:
        handle.write(("\n".join(sample) + "\n").encode())
    print(f"wrote {len(sample)} SMILES to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
