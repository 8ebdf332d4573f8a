"""Masked decoding speed: the vectorized torch decoder vs per-sequence Python stack loops.

    python benchmarks/masked_decoding.py                  # 1,000 and 10,000 SMILES logits
    python benchmarks/masked_decoding.py --sizes 1000 --repeats 5

All decode the same random logits (B x 277 steps x 76 rules, SMILES grammar, CPU, argmax)
and must give identical rule sequences. Two baselines: the plain loop (one Python stack and
one masked numpy argmax per sequence and step), and the layout of the original grammar VAE
decoder (Python stacks per sequence, but the masking and argmax done in numpy over the whole
batch at each step). The string conversion is timed on its own, on the argmax decoding of
logits built from real ZINC derivations (every sequence valid and realistic), against the
parser's ``unparse`` in a loop. Each time is the minimum over the repeats (the machine is
shared); wall-clock and process CPU seconds are both recorded.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import shared_data, write_result  # noqa: E402

from grammar_ae.decoding import MaskedDecoder  # noqa: E402
from grammar_ae.grammar.cfg import Grammar  # noqa: E402
from grammar_ae.grammar.parser import Parser  # noqa: E402


def _decoding_tables(grammar: Grammar):
    """Allowed rules per symbol (rules naming a symbol without rules masked out), pushes."""
    dead = np.array([any(s < 0 for s in rhs) for rhs in grammar.rhs_nonterminals])
    pushes = [tuple(reversed(rhs)) for rhs in grammar.rhs_nonterminals]
    padding_symbol = grammar.rule_lhs[grammar.padding_rule]
    return grammar.masks & ~dead, pushes, padding_symbol, grammar.symbol_index[grammar.start]


def python_stack_decode(grammar: Grammar, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plain loop: one Python stack per sequence, one masked argmax per sequence and step."""
    allowed, pushes, padding_symbol, start = _decoding_tables(grammar)
    batch, steps, _ = logits.shape
    rules = np.full((batch, steps), grammar.padding_rule, dtype=np.int64)
    valid = np.zeros(batch, dtype=bool)
    for b in range(batch):
        stack = [start]
        for t in range(steps):
            symbol = stack.pop() if stack else padding_symbol
            rule = int(np.argmax(np.where(allowed[symbol], logits[b, t], -np.inf)))
            rules[b, t] = rule
            stack.extend(pushes[rule])
        valid[b] = not stack
    return rules, valid


def batch_masked_stack_decode(grammar: Grammar, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original grammar VAE decoder's layout: Python stacks per sequence, numpy masking
    and argmax over the whole batch at each step."""
    allowed, pushes, padding_symbol, start = _decoding_tables(grammar)
    batch, steps, _ = logits.shape
    stacks = [[start] for _ in range(batch)]
    rules = np.empty((batch, steps), dtype=np.int64)
    for t in range(steps):
        symbols = [stack.pop() if stack else padding_symbol for stack in stacks]
        rules[:, t] = np.where(allowed[symbols], logits[:, t], -np.inf).argmax(1)
        for stack, rule in zip(stacks, rules[:, t].tolist()):
            stack.extend(pushes[rule])
    return rules, np.array([not stack for stack in stacks])


def best_time(function, repeats: int):
    """(minimum wall seconds, minimum process CPU seconds, the last result) over the repeats."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def decoding_speed(grammar: Grammar, decoder: MaskedDecoder, size: int, repeats: int, baseline_repeats: int) -> dict:
    logits = torch.randn(size, grammar.max_length, grammar.num_rules, generator=torch.Generator().manual_seed(size))
    array = logits.numpy()
    decoder.decode(logits[:100])  # warm-up
    ours_wall, ours_cpu, decoded = best_time(lambda: decoder.decode(logits), repeats)
    result = {
        "sequences": size,
        "steps": grammar.max_length,
        "rules": grammar.num_rules,
        "ours": {"seconds": round(ours_wall, 4), "cpu_seconds": round(ours_cpu, 4)},
        "valid_fraction": round(float(decoded.valid.float().mean()), 4),
    }
    baselines = {"python_stack_loop": python_stack_decode, "batch_masked_python_stacks": batch_masked_stack_decode}
    for name, baseline in baselines.items():
        wall, cpu, (rules, valid) = best_time(lambda: baseline(grammar, array), baseline_repeats)
        identical = bool(np.array_equal(decoded.rules.numpy(), rules) and np.array_equal(decoded.valid.numpy(), valid))
        result[name] = {
            "seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3),
            "ours_faster_by": round(wall / ours_wall, 1),
            "ours_faster_by_cpu_time": round(cpu / ours_cpu, 1),
            "identical_rules_and_validity": identical,
        }
        print(
            f"{size} x {grammar.max_length} x {grammar.num_rules}: {name} {wall:.2f} s, ours {ours_wall:.3f} s: "
            f"{wall / ours_wall:.1f}x (CPU time {cpu / ours_cpu:.1f}x), identical: {identical}"
        )
    return result


def zinc_logits(grammar: Grammar, size: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """One-hot of the true rules of ``size`` ZINC SMILES, times 10, plus unit noise."""
    with gzip.open(shared_data() / "zinc250k.smi.gz", "rt") as handle:
        smiles = random.Random(seed).sample(handle.read().splitlines(), size)
    parser = Parser(grammar)
    rules = torch.full((size, grammar.max_length), grammar.padding_rule, dtype=torch.long)
    for row, text in enumerate(smiles):
        sequence = torch.from_numpy(parser.parse(text).astype(np.int64))
        rules[row, : len(sequence)] = sequence
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(size, grammar.max_length, grammar.num_rules, generator=generator)
    logits.scatter_add_(2, rules.unsqueeze(2), torch.full(rules.unsqueeze(2).shape, 10.0))
    return logits, smiles


def string_speed(grammar: Grammar, decoder: MaskedDecoder, size: int, repeats: int) -> dict:
    logits, smiles = zinc_logits(grammar, size, seed=0)
    decode_wall, decode_cpu, decoded = best_time(lambda: decoder.decode(logits), repeats)
    del logits
    ours_wall, ours_cpu, strings = best_time(lambda: decoder.to_strings(decoded), repeats)
    parser = Parser(grammar)
    rows = decoded.rules.numpy()
    unparse_wall, unparse_cpu, unparsed = best_time(lambda: [parser.unparse(row) for row in rows], 1)
    result = {
        "sequences": size,
        "decode": {"seconds": round(decode_wall, 4), "cpu_seconds": round(decode_cpu, 4)},
        "to_strings": {"seconds": round(ours_wall, 4), "cpu_seconds": round(ours_cpu, 4)},
        "unparse_loop": {"seconds": round(unparse_wall, 3), "cpu_seconds": round(unparse_cpu, 3)},
        "identical_to_input_smiles": strings == smiles,
        "identical_to_unparse": strings == unparsed,
    }
    print(
        f"{size} ZINC derivations: decode {decode_wall:.3f} s, to_strings {ours_wall:.3f} s "
        f"(CPU {ours_cpu:.3f} s), unparse loop {unparse_wall:.2f} s, strings identical: {strings == smiles}"
    )
    return result


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    arguments.add_argument("--repeats", type=int, default=5, help="repeats of our decoder (minimum taken)")
    arguments.add_argument("--baseline-repeats", type=int, default=3, help="repeats of the Python loops")
    arguments.add_argument("--string-sequences", type=int, default=10000)
    args = arguments.parse_args()

    grammar = Grammar.load("smiles")
    decoder = MaskedDecoder(grammar)
    load_before = os.getloadavg()[0]
    decoding = [decoding_speed(grammar, decoder, size, args.repeats, args.baseline_repeats) for size in args.sizes]
    strings = string_speed(grammar, decoder, args.string_sequences, args.repeats)
    path = write_result(
        "masked_decoding",
        {
            "benchmark": "masked decoding, SMILES grammar, CPU, argmax",
            "timing": "minimum over the repeats of wall-clock seconds and of process CPU seconds",
            "repeats": {"ours": args.repeats, "baselines": args.baseline_repeats},
            "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "decoding": decoding,
            "strings": strings,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
