"""Which learning rate to go on with: short continuations of one checkpoint, side by side.

From the same checkpoint (weights and Adam state) and the same batches, trains a few hundred
steps at each learning rate and records the held-out teacher-forced loss (nats per molecule)
along the way. This is the measurement behind the molecule recipe's drop from 1e-3 to
2.5e-4 after two epochs (README).

    python benchmarks/molecule_learning_rate.py /work/runs/zinc-gru-epochs/epoch-002.pt --rates 1e-3 2.5e-4
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch

from grammar_ae.models.loading import load_latent_model
from grammar_ae.models.sequence.data import batch_sources
from grammar_ae.utils.files import atomic_write_json
from grammar_ae.utils.provenance import provenance

RESULTS = Path(__file__).parent / "results"


def held_out_loss(model, source) -> float:
    model.eval()
    total = count = 0.0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for batch in source.batches(128, False, torch.Generator()):
            total += model.loss(batch)["rec"].item() * len(batch)
            count += len(batch)
    model.train()
    return round(total / count, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--rates", type=float, nargs="+", default=[1e-3, 2.5e-4])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--name", default="molecule_learning_rate")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = load_latent_model(args.checkpoint, "cpu")
    model, state = run.model, run.state
    split = np.load(args.checkpoint.parent / "split.npz")
    train, held = batch_sources(model, run._data, split["train"], np.random.default_rng(0).choice(split["validation"], 2000, replace=False))
    batches = [train.batch(p) for p in train.batch_order(128, True, torch.Generator().manual_seed(5))[: args.steps]]
    start = copy.deepcopy(model.state_dict())
    curves = {"start": held_out_loss(model, held)}
    for rate in args.rates:
        model.load_state_dict(start)
        optimizer = torch.optim.Adam(model.parameters(), lr=rate)
        optimizer.load_state_dict(state["optimizer_state"])
        for group in optimizer.param_groups:
            group["lr"] = rate
        points = []
        model.train()
        for step, batch in enumerate(batches, start=1):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model.loss(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if step % args.every == 0:
                points.append({"step": step, "held_out_rec": held_out_loss(model, held)})
        curves[str(rate)] = points
        print(rate, json.dumps(points), flush=True)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / f"{args.name}.json", {
        "checkpoint": str(args.checkpoint), "epoch": run.epoch, "steps": args.steps, "batch_size": 128,
        "held_out_molecules": 2000, "curves": curves, "provenance": provenance(),
    })


if __name__ == "__main__":
    main()
