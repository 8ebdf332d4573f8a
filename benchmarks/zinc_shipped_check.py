"""The shipped ``zinc`` model on this machine: its card reproduced, and the chemistry of its
samples next to ZINC's own molecules.

- ``card``: ``grammar-ae evaluate zinc`` (the card's settings) against the card's metrics,
  with the largest difference and the seconds it took;
- ``chemistry``: for 1,000 samples of each sampler (the evaluation's seed), decoded with the
  default checks and side by side without the ring-size preference, and for 5,000 seeded
  held-out ZINC molecules: the fraction with a ring of 8 or more atoms, with a charged atom,
  with an element outside the MOSES set, and passing the MOSES filters (and for samples the
  seconds their decoding took).

    python benchmarks/zinc_shipped_check.py     # writes results/zinc_shipped_check.json
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import ring_preference, write_result

from grammar_ae.chemistry import molecule
from grammar_ae.evaluation.molecules import ALLOWED_ATOMS, passes_filters
from grammar_ae.evaluation.run import evaluate_run
from grammar_ae.models.loading import load_latent_model
from grammar_ae.models.shipped import SHIPPED_MODELS

SAMPLES = 1000
ZINC_MOLECULES = 5000
SEED = 0


def chemistry(smiles: list[str | None]) -> dict:
    """Fractions of the valid molecules among ``smiles`` (see the module docstring)."""
    parsed = [(s, molecule(s)) for s in smiles if s]
    valid, mols = [s for s, m in parsed if m is not None], [m for _, m in parsed if m is not None]
    largest_ring = [max((len(r) for r in m.GetRingInfo().AtomRings()), default=0) for m in mols]
    return {
        "valid_molecules": len(mols),
        "ring_8_or_more": float(np.mean([size >= 8 for size in largest_ring])),
        "charged": float(np.mean([any(a.GetFormalCharge() != 0 for a in m.GetAtoms()) for m in mols])),
        "other_elements": float(np.mean([any(a.GetSymbol() not in ALLOWED_ATOMS for a in m.GetAtoms()) for m in mols])),
        "passes_filters": float(np.mean([passes_filters(s) for s in valid])),
        "largest_ring_counts": {int(k): int(v) for k, v in zip(*np.unique(largest_ring, return_counts=True))},
    }


def card_check() -> dict:
    card = SHIPPED_MODELS["zinc"].card
    started = time.perf_counter()
    evaluated = evaluate_run("zinc", device="cpu", progress=True, options=card["evaluation"]["config"])
    pairs = {key: [value, evaluated[key]] for key, value in card["metrics"].items()}
    return {"seconds": round(time.perf_counter() - started, 1), "metrics_card_now": pairs,
            "largest_difference": max(abs(now - then) for then, now in pairs.values())}


def main() -> None:
    model = load_latent_model("zinc", "cpu")
    held_out = model.validation_strings()
    rows = np.sort(np.random.default_rng(SEED).choice(len(held_out), ZINC_MOLECULES, replace=False))
    result = {"zinc_held_out": chemistry([held_out[i] for i in rows])}
    default = model.model.chemistry_checks.max_ring_size
    model.decode(model.sampler("prior").sample(100, torch.Generator().manual_seed(SEED)))  # warm-up, not timed
    for kind in ("prior", "gmm"):
        z = model.sampler(kind).sample(SAMPLES, torch.Generator().manual_seed(SEED))
        for variant, max_ring_size in (("", default), ("_no_ring_preference", None)):
            with ring_preference(model, max_ring_size):
                started = time.perf_counter()
                decoded = model.decode(z)
            result[f"samples_{kind}{variant}"] = {**chemistry(decoded), "decode_seconds": round(time.perf_counter() - started, 1)}
    result = {"card": card_check(), "chemistry": result, "settings": {"samples": SAMPLES, "zinc_molecules": ZINC_MOLECULES, "seed": SEED}}
    print(f"wrote {write_result('zinc_shipped_check', result)}")
    print(f"card: largest difference {result['card']['largest_difference']:.2g} in {result['card']['seconds']} s")
    for name, row in result["chemistry"].items():
        print(f"{name}: {row['valid_molecules']} valid, ring of 8+ {row['ring_8_or_more']:.3f}, charged {row['charged']:.3f}, "
              f"other elements {row['other_elements']:.3f}, passes filters {row['passes_filters']:.3f}")


if __name__ == "__main__":
    main()
