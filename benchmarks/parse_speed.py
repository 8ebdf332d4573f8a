"""Parsing speed: our parser vs NLTK's chart parser on the same SMILES, and the full sets.

    python benchmarks/parse_speed.py            # 2,000 ZINC SMILES side by side
    python benchmarks/parse_speed.py --full     # also prepare all of ZINC-250k and the
                                                # 100k expressions, checking every round trip
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import time
from pathlib import Path

import nltk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import shared_data, write_result  # noqa: E402

from grammar_ae.data.prepare import prepare  # noqa: E402
from grammar_ae.grammar.cfg import Grammar  # noqa: E402
from grammar_ae.grammar.parser import Parser  # noqa: E402


def nltk_reference(grammar: Grammar, smiles: list[str]) -> tuple[float, list[list[int]]]:
    """The reference pipeline: tokenize, NLTK chart parse, productions to rule indices."""
    chart = nltk.ChartParser(grammar.nltk_cfg)
    index = {p: i for i, p in enumerate(grammar.nltk_cfg.productions())}
    tokenizer = Parser(grammar).tokenizer
    started = time.perf_counter()
    out = [[index[p] for p in next(chart.parse(tokenizer.tokenize(s))).productions()] for s in smiles]
    return time.perf_counter() - started, out


def ours(parser: Parser, smiles: list[str]) -> tuple[float, list[list[int]]]:
    started = time.perf_counter()
    out = [parser.parse(s).tolist() for s in smiles]
    return time.perf_counter() - started, out


def full_round_trip(name: str, path: Path, grammar: Grammar, out_dir: Path) -> dict:
    prepared = prepare(path, grammar, out_dir / name, progress=True)
    parser = Parser(grammar)
    mismatches = sum(
        parser.unparse(prepared.sequences[prepared.offsets[i] : prepared.offsets[i + 1]]) != text
        for i, text in enumerate(prepared.strings)
    )
    keys = ("total", "parsed", "skipped", "max_length", "seconds", "bytes_in_memory")
    return {**{k: prepared.summary[k] for k in keys}, "round_trip_mismatches": int(mismatches)}


def main() -> None:
    parser_args = argparse.ArgumentParser(description=__doc__)
    parser_args.add_argument("--molecules", type=int, default=2000)
    parser_args.add_argument("--full", action="store_true")
    parser_args.add_argument("--workdir", type=Path, default=Path("/tmp/grammar-ae-bench"))
    args = parser_args.parse_args()

    grammar = Grammar.load("smiles")
    with gzip.open(shared_data() / "zinc250k.smi.gz", "rt") as handle:
        zinc = handle.read().splitlines()
    sample = random.Random(0).sample(zinc, args.molecules)
    parser = Parser(grammar)
    ours(parser, sample[:200])  # warm-up
    our_seconds, our_sequences = min((ours(parser, sample) for _ in range(3)), key=lambda r: r[0])
    nltk_seconds, nltk_sequences = nltk_reference(grammar, sample)
    same_strings = all(parser.unparse(a) == parser.unparse(b) for a, b in zip(our_sequences, nltk_sequences))
    result = {
        "molecules": len(sample),
        "nltk_chart_parser_seconds": round(nltk_seconds, 3),
        "ours_seconds": round(our_seconds, 3),
        "speedup": round(nltk_seconds / our_seconds, 1),
        "identical_derivations": sum(a == b for a, b in zip(our_sequences, nltk_sequences)),
        "both_replay_the_input": same_strings,
    }
    print(f"{len(sample)} SMILES: NLTK chart parser {nltk_seconds:.2f} s, ours {our_seconds:.3f} s, "
          f"{result['speedup']}x faster (one process)")
    if args.full:
        result["zinc250k"] = full_round_trip("zinc250k", shared_data() / "zinc250k.smi.gz", grammar, args.workdir)
        print("ZINC-250k:", result["zinc250k"])
        result["expressions"] = full_round_trip(
            "expressions", shared_data() / "equation2_15_dataset.txt.gz", Grammar.load("expressions"), args.workdir
        )
        print("expressions:", result["expressions"])
    print("wrote", write_result("parse_speed" + ("_full" if args.full else ""), result))


if __name__ == "__main__":
    main()
