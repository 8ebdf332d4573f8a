"""Grammar tables: rule order, masks, right-hand non-terminals, hash, custom grammar files."""

import numpy as np
import pytest

from grammar_ae.errors import GrammarError
from grammar_ae.grammar.cfg import Grammar

SMILES_LHS = (
    "smiles atom aliphatic_organic aromatic_organic bracket_atom BAI BAC BAH BACH symbol isotope "
    "DIGIT chiral hcount charge bond ringbond branched_atom RB BB branch chain Nothing"
).split()


def test_smiles_grammar_matches_the_reference_tables():
    g = Grammar.load("smiles")
    assert g.num_rules == 76 and g.start == "smiles" and g.max_length == 277
    assert list(g.lhs_symbols) == SMILES_LHS
    assert g.masks.shape == (23, 76)
    assert g.masks.sum() == 76 and (g.masks.sum(axis=0) == 1).all()
    assert g.padding_rule == 75
    assert str(g.rules[0]) == "smiles -> chain"
    assert str(g.rules[4]) == "aliphatic_organic -> 'B'"
    assert str(g.rules[74]) == "chain -> chain bond branched_atom"
    bond = g.rules[[str(r) for r in g.rules].index("bond -> '\\\\'")]
    assert bond.rhs == ("\\",)
    # rhs non-terminals as lhs-symbol indices; the dead symbol 'class' is -1
    assert g.rhs_nonterminals[74] == (SMILES_LHS.index("chain"), SMILES_LHS.index("bond"), SMILES_LHS.index("branched_atom"))
    assert -1 in g.rhs_nonterminals[[str(r) for r in g.rules].index("BACH -> charge class")]
    assert g.rhs_nonterminals[75] == ()


def test_expression_grammar():
    g = Grammar.load("expressions")
    assert g.num_rules == 12 and g.max_length == 15 and g.ignore_whitespace
    assert list(g.lhs_symbols) == ["S", "T", "Nothing"]
    assert [int(m.sum()) for m in g.masks] == [4, 7, 1]
    assert str(g.rules[5]) == "T -> 'sin(' S ')'"


def test_hash_is_stable_and_tracks_rules(tmp_path):
    g = Grammar.load("expressions")
    text = g.source
    assert Grammar.from_text(text, name="other").hash == g.hash  # the name does not matter
    reordered = text.replace("'1' | '2'", "'2' | '1'")
    assert Grammar.from_text(reordered).hash != g.hash
    assert Grammar.load("expressions", max_length=20).hash != g.hash


def test_custom_grammar_file(tmp_path):
    path = tmp_path / "tiny.cfg"
    path.write_text("# grammar-ae: max_length=9\nS -> 'a' S | 'b'\nNothing -> None\n")
    g = Grammar.load(path)
    assert g.name == "tiny" and g.max_length == 9 and g.num_rules == 3
    assert np.array_equal(g.masks, [[True, True, False], [False, False, True]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("S -> 'a'\n", "padding rule"),
        ("S -> -> 'a'\nNothing -> None\n", "not a valid CFG"),
        ("# grammar-ae: colour=red\nS -> 'a'\nNothing -> None\n", "unknown setting"),
        ("", "No productions"),
    ],
)
def test_bad_grammar_files(tmp_path, text, message):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(GrammarError, match=message):
        Grammar.load(path)


def test_missing_grammar():
    with pytest.raises(GrammarError, match="not a built-in grammar"):
        Grammar.load("no-such-grammar")
