"""Learning curves of molecule decoders: held-out reconstruction against CPU time.

Trains each network configuration on ZINC-250k (the protocol's 90/10 split) for a fixed
CPU-time budget with the same objective, batches and seed, and evaluates every few CPU
minutes: teacher-forced validation loss (nats per molecule) and greedy exact-match
reconstruction of held-out molecules. CPU time (``time.process_time``) is the x axis, so
runs that share the machine are compared fairly. Run configurations side by side in
separate processes (one thread each) and plot them together with ``--plot``:

    python benchmarks/molecule_learning_curves.py --config gru --minutes 20 &
    python benchmarks/molecule_learning_curves.py --config transformer --minutes 20 &
    wait; python benchmarks/molecule_learning_curves.py --plot gru transformer
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from grammar_ae.data.batches import BucketedBatchSource, split_indices
from grammar_ae.data.datasets import load_prepared
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.models.sequence.model import SequenceModelSpec
from grammar_ae.models.sequence.networks import SequenceNetworkConfig
from grammar_ae.models.sequence.presets import preset_objective
from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

RESULTS = Path(__file__).parent / "results"

CONFIGS: dict[str, dict] = {
    "gru": {"network": {"decoder": "gru", "encoder": "gru", "model_dim": 512, "embedding_dim": 128, "encoder_dim": 256}},
    "transformer": {
        "network": {"decoder": "transformer", "encoder": "transformer", "model_dim": 256, "decoder_layers": 4,
                    "encoder_dim": 256, "encoder_layers": 2, "heads": 4},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help=f"one of {', '.join(CONFIGS)}, or a JSON object with network/objective/model settings")
    parser.add_argument("--tag", help="result name (default: the config name)")
    parser.add_argument("--minutes", type=float, default=20.0, help="CPU minutes of training")
    parser.add_argument("--eval-every", type=float, default=3.0, help="CPU minutes between evaluations")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--items", type=int, default=500, help="held-out molecules for reconstruction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", nargs="+", metavar="TAG", help="plot these results together and stop")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    settings = CONFIGS[args.config] if args.config in CONFIGS else json.loads(args.config)
    tag = args.tag or args.config
    grammar = Grammar.load("smiles")
    data = load_prepared("zinc250k", grammar, progress=False)
    train_items, validation_items = split_indices(len(data), args.seed)
    preset, objective = preset_objective(settings.get("model", "grae"), overrides=settings.get("objective"))
    spec = SequenceModelSpec("grammar", "smiles", grammar.source, grammar.hash,
                             SequenceNetworkConfig(**settings["network"]), objective, preset.name)
    model = spec.build()
    flat, offsets = model.codec.ragged(data)
    train = BucketedBatchSource(flat, offsets, train_items, model.codec.padding_token)
    rng = np.random.default_rng(args.seed)
    held_out = np.sort(rng.choice(validation_items, args.items, replace=False))
    validation = BucketedBatchSource(flat, offsets, np.sort(rng.choice(validation_items, 2000, replace=False)), model.codec.padding_token)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    generator = torch.Generator().manual_seed(args.seed)
    model.before_training(args.batch_size)

    curve, step, seen = [], 0, 0
    cpu_start = time.process_time()
    next_eval = 0.0
    budget = args.minutes * 60
    while True:
        for batch in train.batches(args.batch_size, True, generator):
            used = time.process_time() - cpu_start
            if used >= next_eval or used >= budget:
                point = evaluate(model, validation, [data.strings[i] for i in held_out], args.batch_size)
                point.update(cpu_minutes=round(used / 60, 2), steps=step, molecules=seen, epochs=round(seen / len(train), 3))
                curve.append(point)
                print(json.dumps(point), flush=True)
                next_eval += args.eval_every * 60
                if used >= budget:
                    return save(tag, args, settings, spec, model, curve, cpu_start)
                cpu_start += time.process_time() - cpu_start - used  # evaluation time is not training time
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * min(1.0, (step + 1) / args.warmup) if args.warmup else args.learning_rate
            with torch.autocast("cpu", dtype=torch.bfloat16):
                terms = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            seen += len(batch)


@torch.no_grad()
def evaluate(model, validation, held_out: list[str], batch_size: int) -> dict:
    model.eval()
    total = count = 0.0
    for batch in validation.batches(batch_size, False, torch.Generator()):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            total += model.loss(batch)["rec"].item() * len(batch)
        count += len(batch)
    decoded = model.decode_latents(model.encode_strings(held_out))
    targets = [model.codec.input_form(s) for s in held_out]
    return {"val_rec": round(total / count, 3), "reconstruction": float(np.mean([d == t for d, t in zip(decoded, targets)]))}


def save(tag, args, settings, spec, model, curve, cpu_start) -> None:
    result = {
        "tag": tag,
        "settings": settings,
        "arguments": vars(args),
        "parameters": sum(p.numel() for p in model.parameters()),
        "network": spec.network.to_dict(),
        "curve": curve,
        "provenance": provenance(),
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / f"molecule_curve_{tag}.json", result)


def plot(tags: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for tag in tags:
        curve = json.loads((RESULTS / f"molecule_curve_{tag}.json").read_text())["curve"]
        minutes = [p["cpu_minutes"] for p in curve]
        axes[0].plot(minutes, [p["val_rec"] for p in curve], marker="o", label=tag)
        axes[1].plot(minutes, [p["reconstruction"] for p in curve], marker="o", label=tag)
    axes[0].set(xlabel="CPU minutes of training", ylabel="validation loss (nats / molecule)", yscale="log")
    axes[1].set(xlabel="CPU minutes of training", ylabel="held-out exact reconstruction")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"molecule_curves_{'_'.join(tags)}.png", dpi=120)


if __name__ == "__main__":
    main()
