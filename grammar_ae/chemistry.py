"""RDKit checks shared by evaluation and optimization."""

from __future__ import annotations

from functools import lru_cache

from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")


@lru_cache(maxsize=100_000)
def molecule(smiles: str) -> Chem.Mol | None:
    """The sanitized RDKit molecule, or None if RDKit rejects the SMILES."""
    return Chem.MolFromSmiles(smiles) if smiles else None


def is_valid_molecule(smiles: str | None) -> bool:
    return smiles is not None and molecule(smiles) is not None


def validity_check(grammar_name: str):
    """What counts as valid beyond being grammatical: RDKit acceptance for SMILES."""
    if grammar_name == "smiles":
        return is_valid_molecule
    return lambda text: text is not None
