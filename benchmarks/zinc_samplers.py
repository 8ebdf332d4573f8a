"""Where in the latent space the shipped ``zinc`` model decodes ZINC-like molecules: 1,000
samples from each latent density, side by side with held-out molecules encoded and decoded.

The model was trained with little latent noise, so its decoder is reliable near training
codes and not in between them. Densities compared (all fitted on the model's shipped
training codes): the fitted Gaussian (the card's "prior"), a 10-component GMM (the card's
"gmm"), a 100-component GMM, and the kernel density ``kde`` (a training code plus isotropic
noise) at several bandwidths. Each row: validity, uniqueness, novelty, the MOSES metrics
against the 10,000 held-out reference molecules of ``grammar-ae evaluate zinc`` (same seed,
so the Gaussian row's metrics are the card's), and the fraction with a ring of 8 or more atoms.
The settings record the spread of the training codes (mean standard deviation per dimension),
the scale the kde bandwidths compare with.
An RDKit grid shows the first valid molecules of some rows, each marked new or from training.

    python benchmarks/zinc_samplers.py     # writes results/zinc_samplers.{json,md,png}
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import RESULTS, write_result
from zinc_shipped_check import chemistry

from grammar_ae.chemistry import molecule, validity_check
from grammar_ae.evaluation.molecules import moses_metrics
from grammar_ae.evaluation.sequence import EvaluationConfig, held_out_items, reference_molecules, sample_quality
from grammar_ae.models.loading import load_latent_model
from grammar_ae.utils.files import atomic_path, atomic_write_text

CONFIG = EvaluationConfig()  # the card's settings: 1,000 samples, seed 0, 10,000 reference molecules
DENSITIES = {
    "gaussian": ("gaussian", {}),
    "gmm (10 components)": ("gmm", {}),
    "gmm (100 components)": ("gmm", {"components": 100}),
    **{f"kde (bandwidth {h})": ("kde", {"bandwidth": h}) for h in (0.05, 0.1, 0.15, 0.2, 0.3)},
}
GRID_ROWS = ("held-out molecules, encoded", "gaussian", "kde (bandwidth 0.1)", "kde (bandwidth 0.2)")
GRID_COLUMNS = 6
COLUMNS = ("validity", "uniqueness", "novelty", "fcd", "snn", "frag", "scaf", "int_div", "filters", "ring_8_or_more")


def row(decoded: list[str | None], training: set[str], reference: list[str], seconds: float) -> dict:
    valid = validity_check("smiles")
    quality = sample_quality(decoded, training, valid)
    return {**quality, **moses_metrics(decoded, reference), "ring_8_or_more": chemistry(decoded)["ring_8_or_more"],
            "seconds": round(seconds, 1), "examples": [s for s in decoded if valid(s)][:GRID_COLUMNS]}


def draw_examples(path, rows: dict[str, dict], training: set[str]) -> None:
    """One grid row per name in ``GRID_ROWS``: its first valid molecules, labelled with the row
    and whether the molecule is new or in the training set."""
    from rdkit.Chem import Draw

    names = [name for name in GRID_ROWS for _ in rows[name]["examples"]]
    smiles = [s for name in GRID_ROWS for s in rows[name]["examples"]]
    legends = [f"{name}: {'training' if s in training else 'new'}" for name, s in zip(names, smiles)]
    image = Draw.MolsToGridImage([molecule(s) for s in smiles], molsPerRow=GRID_COLUMNS, subImgSize=(260, 220),
                                 legends=legends)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def markdown(rows: dict[str, dict]) -> str:
    lines = ["| latent points | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[c]:.3f}" for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    model = load_latent_model("zinc", "cpu")
    training = set(model.training_strings())
    rng = np.random.default_rng(CONFIG.seed)  # the evaluation's draws, in its order
    held_out = held_out_items(model, CONFIG, rng)
    reference, _ = reference_molecules(model, CONFIG, rng)
    rows = {}
    started = time.perf_counter()
    rows["held-out molecules, encoded"] = row(model.decode(model.encode_means(held_out)), training, reference,
                                              time.perf_counter() - started)
    for name, (kind, options) in DENSITIES.items():
        started = time.perf_counter()
        z = model.sampler(kind, **options).sample(CONFIG.prior_samples, torch.Generator().manual_seed(CONFIG.seed))
        rows[name] = row(model.decode(z), training, reference, time.perf_counter() - started)
        print(name, {c: round(rows[name][c], 3) for c in COLUMNS}, flush=True)
    spread = float(model.training_latents.std(dim=0).mean())
    settings = {"samples": CONFIG.prior_samples, "code_spread_per_dimension": spread,
                "reference_molecules": len(reference), "seed": CONFIG.seed,
                "densities": {name: {"kind": kind, **options} for name, (kind, options) in DENSITIES.items()}}
    print(f"wrote {write_result('zinc_samplers', {'rows': rows, 'settings': settings})}")
    atomic_write_text(RESULTS / "zinc_samplers.md", markdown(rows))
    draw_examples(RESULTS / "zinc_samplers.png", rows, training)


if __name__ == "__main__":
    main()
