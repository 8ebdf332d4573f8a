"""RDKit molecules from SMILES: the one validity rule of evaluation and optimization."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=100_000)
def molecule(smiles: str):
    """The sanitized RDKit molecule of ``smiles``, or None where RDKit rejects it or it has no atom."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if smiles else None
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


def is_valid_molecule(smiles: str | None) -> bool:
    return smiles is not None and molecule(smiles) is not None


def heavy_atoms(smiles: str) -> int | None:
    """The number of heavy (non-hydrogen) atoms of ``smiles``, None if it is not a valid molecule."""
    mol = molecule(smiles)
    return None if mol is None else mol.GetNumHeavyAtoms()


def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical SMILES of ``smiles`` (one string per molecule), None if it is not a valid molecule."""
    from rdkit import Chem

    mol = molecule(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def validity_check(grammar_name: str):
    """What counts as valid beyond being grammatical: RDKit acceptance for SMILES."""
    if grammar_name == "smiles":
        return is_valid_molecule
    return lambda text: text is not None


STRING_FORMS = ("as-written", "kekule")
"""How SMILES are written for a model: as in the data, or as canonical Kekulé SMILES (no
aromatic atoms: double bonds explicit, so every decoded ring is a valid molecule as far as
aromaticity goes)."""


def kekule_smiles(smiles: str) -> str | None:
    """The canonical Kekulé SMILES of ``smiles`` (RDKit), or None where RDKit rejects it."""
    from rdkit import Chem

    mol = molecule(smiles)
    if mol is None:
        return None
    mol = Chem.Mol(mol)
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception:  # RDKit raises its own KekulizeException types
        return None
    return Chem.MolToSmiles(mol, kekuleSmiles=True)


def form_of(kekulize: bool) -> str:
    return "kekule" if kekulize else "as-written"


def in_form(smiles: str, form: str) -> str | None:
    """``smiles`` written in ``form`` (one of STRING_FORMS); None where it cannot be."""
    return smiles if form == "as-written" else kekule_smiles(smiles)
