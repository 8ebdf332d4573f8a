"""The MOSES metrics of evaluate, each against a case computed by hand or by another route."""

import math
from collections import Counter

import pytest
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from grammar_ae.evaluation.molecules import (
    METRICS,
    cosine_similarity,
    fingerprints,
    fragment_counts,
    frechet_chemnet_distance,
    internal_diversity,
    moses_metrics,
    nearest_neighbour_similarity,
    passes_filters,
    scaffold_counts,
)


def tanimoto(a: str, b: str) -> float:
    """Tanimoto similarity from the sets of on-bits (Morgan, radius 2, 1024 bits)."""
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    x, y = (set(generator.GetFingerprint(Chem.MolFromSmiles(s)).GetOnBits()) for s in (a, b))
    return len(x & y) / len(x | y)


def test_snn_is_the_mean_similarity_to_the_nearest_reference_molecule():
    reference = ["CCO", "c1ccccc1"]
    expected = (1.0 + max(tanimoto("CCN", "CCO"), tanimoto("CCN", "c1ccccc1"))) / 2
    assert 0 < expected < 1
    assert nearest_neighbour_similarity(fingerprints(["CCO", "CCN"]), fingerprints(reference)) == pytest.approx(expected)


def test_int_div_averages_every_ordered_pair_self_pairs_included():
    t = tanimoto("CCO", "CCN")
    assert internal_diversity(fingerprints(["CCO", "CCN"])) == pytest.approx(1 - (2 + 2 * t) / 4)
    assert internal_diversity(fingerprints(["CCO", "CCO"])) == pytest.approx(0.0)


def test_cosine_similarity_of_counts():
    assert cosine_similarity(Counter(a=1, b=1), Counter(a=2)) == pytest.approx(1 / math.sqrt(2))
    assert cosine_similarity(Counter(a=3), Counter(a=1)) == pytest.approx(1.0)
    assert cosine_similarity(Counter(a=1), Counter(b=1)) == 0.0
    assert math.isnan(cosine_similarity(Counter(), Counter(a=1)))


def test_brics_fragments_and_murcko_scaffolds():
    # ethyl benzoate breaks at its three BRICS bonds: ethyl-O, O-C(=O) and C(=O)-phenyl
    assert fragment_counts(["CCOC(=O)c1ccccc1", "CC"]) == Counter(
        {"[4*]CC": 1, "[3*]O[3*]": 1, "[1*]C([6*])=O": 1, "[16*]c1ccccc1": 1, "CC": 1})
    # side chains go; scaffolds of one ring are left out
    assert scaffold_counts(["CCc1ccc(Cc2ccccc2)cc1", "c1ccc(Cc2ccccc2)cc1", "Cc1ccccc1"]) == Counter(
        {"c1ccc(Cc2ccccc2)cc1": 2})


@pytest.mark.parametrize("smiles, passes", [
    ("CCO", True),
    ("C1CCCCCC1", True),  # a ring of 7
    ("Oc1ccc(O)cc1", True),
    ("C1CCCCCCC1", False),  # a ring of 8
    ("C[NH3+]", False),  # a charge
    ("CCI", False),  # iodine
    ("C1CO1", False),  # MCF5, an epoxide
    ("CC=O", False),  # MCF7, an aldehyde
    ("CCCl", False),  # MCF4, an alkyl halide
    ("Oc1ccccc1O", False),  # PAINS catechol_A
    ("O=C1C=CC(=O)C=C1", False),  # PAINS quinone_A
])
def test_filters(smiles, passes):
    assert passes_filters(smiles) is passes


def test_fcd_is_zero_for_a_set_against_itself_and_symmetric():
    a = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCC", "c1ccncc1", "CC(C)O", "OCCO"]
    b = ["CCCCCCCC", "CC(C)CCO", "c1ccc2ccccc2c1", "CC#N", "CNC", "ClCCl", "CCOC(=O)C", "NCCN"]
    assert frechet_chemnet_distance(a, a) == pytest.approx(0.0, abs=1e-3)
    assert frechet_chemnet_distance(a, b) > 1
    assert frechet_chemnet_distance(a, b) == pytest.approx(frechet_chemnet_distance(b, a), rel=1e-3)


def test_only_valid_generated_molecules_count_and_smiles_are_compared_canonically():
    reference = ["OCC", "c1ccccc1"]  # OCC is CCO written otherwise
    with_invalid = moses_metrics(["CCO", None, "", "C1CC", "CCN"], reference, fcd=False)
    valid_only = moses_metrics(["CCO", "CCN"], reference, fcd=False)
    assert with_invalid == pytest.approx(valid_only, nan_ok=True)
    assert with_invalid["snn"] == pytest.approx((1.0 + max(tanimoto("CCN", "CCO"), tanimoto("CCN", "c1ccccc1"))) / 2)
    assert math.isnan(with_invalid["fcd"])
    nothing = moses_metrics([None, "C1CC"], reference)
    assert set(nothing) == set(METRICS) and all(math.isnan(v) for v in nothing.values())
