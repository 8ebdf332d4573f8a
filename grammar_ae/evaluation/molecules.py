"""MOSES distribution metrics of generated molecules against a reference set.

Computed on the valid generated molecules (canonical SMILES, duplicates kept), as the MOSES
benchmark does:

- ``fcd``: Frechet ChemNet Distance (the ``fcd_torch`` package and its ChemNet weights);
- ``snn``: mean over generated molecules of the Tanimoto similarity to the nearest
  reference molecule (Morgan fingerprints, radius 2, 1024 bits);
- ``frag`` / ``scaf``: cosine similarity of the counts of BRICS fragments / Bemis-Murcko
  scaffolds (scaffolds of fewer than two rings left out, as in MOSES);
- ``int_div``: 1 - mean Tanimoto similarity over all ordered pairs of generated molecules
  (self pairs included, as MOSES's IntDiv1);
- ``filters``: fraction passing the MOSES medicinal-chemistry filters: its 22 MCF patterns
  (``data/moses_mcf.csv``) and the PAINS patterns (RDKit's catalogue of the same Baell and
  Holloway set), atoms among C N S O F Cl Br H, no formal charge, no ring of 8 or more atoms.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import AllChem, FilterCatalog, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

from grammar_ae.chemistry import molecule
from grammar_ae.data.sources import embedded_path

ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
SCAFFOLD_MIN_RINGS = 2
METRICS = ("fcd", "snn", "frag", "scaf", "int_div", "filters")


def moses_metrics(generated: Sequence[str | None], reference: Sequence[str], fcd: bool = True) -> dict[str, float]:
    """The MOSES metrics of the valid ``generated`` SMILES against ``reference`` SMILES.

    NaN where there is no valid generated molecule (or fewer than two, for FCD).
    """
    valid = [canonical(s) for s in generated if s and molecule(s) is not None]
    reference = [canonical(s) for s in reference if molecule(s) is not None]
    if not valid or not reference:
        return {name: float("nan") for name in METRICS}
    gen_fps, ref_fps = fingerprints(valid), fingerprints(reference)
    return {
        "fcd": frechet_chemnet_distance(valid, reference) if fcd and len(valid) > 1 else float("nan"),
        "snn": nearest_neighbour_similarity(gen_fps, ref_fps),
        "frag": cosine_similarity(fragment_counts(valid), fragment_counts(reference)),
        "scaf": cosine_similarity(scaffold_counts(valid), scaffold_counts(reference)),
        "int_div": internal_diversity(gen_fps),
        "filters": float(np.mean([passes_filters(s) for s in valid])),
    }


def canonical(smiles: str) -> str:
    return Chem.MolToSmiles(molecule(smiles))


def fingerprints(smiles: Sequence[str]) -> list:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    return [generator.GetFingerprint(molecule(s)) for s in smiles]


def nearest_neighbour_similarity(generated: list, reference: list) -> float:
    """Mean over ``generated`` fingerprints of the highest Tanimoto similarity to ``reference``."""
    return float(np.mean([max(DataStructs.BulkTanimotoSimilarity(fp, reference)) for fp in generated]))


def internal_diversity(fps: list) -> float:
    """1 - mean Tanimoto similarity over all ordered pairs, self pairs included."""
    total = sum(sum(DataStructs.BulkTanimotoSimilarity(fp, fps)) for fp in fps)
    return 1.0 - total / len(fps) ** 2


def fragment_counts(smiles: Sequence[str]) -> Counter:
    counts: Counter = Counter()
    for s in smiles:
        counts.update(Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(molecule(s))).split("."))
    return counts


def scaffold_counts(smiles: Sequence[str]) -> Counter:
    counts: Counter = Counter()
    for s in smiles:
        try:
            scaffold = MurckoScaffold.GetScaffoldForMol(molecule(s))
        except (ValueError, RuntimeError):
            continue
        if scaffold.GetRingInfo().NumRings() >= SCAFFOLD_MIN_RINGS:
            counts[Chem.MolToSmiles(scaffold)] += 1
    return counts


def cosine_similarity(a: Counter, b: Counter) -> float:
    if not a or not b:
        return float("nan")
    keys = sorted(a.keys() | b.keys())
    x = np.array([a.get(k, 0) for k in keys], dtype=float)
    y = np.array([b.get(k, 0) for k in keys], dtype=float)
    norms = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / norms) if norms else float("nan")


def passes_filters(smiles: str) -> bool:
    """The MOSES filters (see the module docstring)."""
    mol = molecule(smiles)
    if mol is None:
        return False
    if any(len(ring) >= 8 for ring in mol.GetRingInfo().AtomRings()):
        return False
    atoms = list(mol.GetAtoms())
    if any(atom.GetFormalCharge() != 0 for atom in atoms) or any(atom.GetSymbol() not in ALLOWED_ATOMS for atom in atoms):
        return False
    with_hydrogens = Chem.AddHs(mol)
    if any(with_hydrogens.HasSubstructMatch(pattern) for pattern in _mcf_patterns()):
        return False
    return not _pains().HasMatch(mol)


def frechet_chemnet_distance(generated: Sequence[str], reference: Sequence[str]) -> float:
    from fcd_torch import FCD

    return float(FCD(device="cpu", n_jobs=1)(list(generated), list(reference)))


@lru_cache(maxsize=1)
def _mcf_patterns() -> tuple:
    with open(embedded_path("moses_mcf.csv"), encoding="utf-8", newline="") as handle:
        return tuple(Chem.MolFromSmarts(row["smarts"]) for row in csv.DictReader(handle))


@lru_cache(maxsize=1)
def _pains() -> FilterCatalog.FilterCatalog:
    params = FilterCatalog.FilterCatalogParams()
    params.AddCatalog(FilterCatalog.FilterCatalogParams.FilterCatalogs.PAINS)
    return FilterCatalog.FilterCatalog(params)
