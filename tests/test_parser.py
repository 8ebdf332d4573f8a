"""Parser and its inverse: exact round trips, determinism, errors."""

import random
import time
from pathlib import Path

import nltk
import numpy as np
import pytest

from grammar_ae.errors import ParseError, SequenceError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser
from grammar_ae.grammar.tokenize import Tokenizer


@pytest.fixture(scope="module")
def smiles_parser():
    return Parser(Grammar.load("smiles"))


@pytest.fixture(scope="module")
def expression_parser():
    return Parser(Grammar.load("expressions"))


def test_tokenizers():
    assert Tokenizer(Grammar.load("smiles")).tokenize("ClC[C@@H](Br)c1ccccc1") == [
        "Cl", "C", "[", "C", "@@", "H", "]", "(", "Br", ")", "c", "1", "c", "c", "c", "c", "c", "1",
    ]
    expressions = Tokenizer(Grammar.load("expressions"))
    assert expressions.tokenize("sin(x)+1") == expressions.tokenize("sin( x ) + 1") == ["sin(", "x", ")", "+", "1"]


def test_round_trip_on_a_large_zinc_sample(smiles_parser, zinc_smiles):
    sample = random.Random(0).sample(zinc_smiles, 20_000)
    longest = 0
    for smiles in sample:
        sequence = smiles_parser.parse(smiles)
        longest = max(longest, len(sequence))
        assert smiles_parser.unparse(sequence) == smiles
    assert 200 < longest <= 277


def test_round_trip_on_all_expressions(expression_parser, expressions):
    lengths = np.zeros(16, dtype=int)
    for text in expressions:
        sequence = expression_parser.parse(text)
        lengths[len(sequence)] += 1
        assert expression_parser.unparse(sequence) == text.replace(" ", "")
    # the published length distribution of the 100k set
    assert lengths[[8, 10, 12, 14]].tolist() == [624, 3748, 28092, 67536]


@pytest.mark.parametrize(
    "smiles",
    [
        "[13CH3]C(=O)O",  # isotope
        "F/C=C/F",  # double-bond stereo
        "C[C@@H](O)[C@H](N)C(=O)O",  # chirality
        "[O-][N+](=O)c1ccccc1",  # charges
        "[NH3+]CC([O-])=O",
        "C1CC2CCC1C2",  # two ring closures on one atom
        "c1ccc2c(c1)ccc1ccccc12",
        "OC(=O)C1=CC=CC=C1",
        "C#N",
        "BrC(Cl)(I)F",
        "c1cc[nH]c1",  # aromatic bracket atom with hydrogen
    ],
)
def test_round_trip_on_other_molecules(smiles_parser, smiles):
    assert smiles_parser.unparse(smiles_parser.parse(smiles)) == smiles


def test_sequences_are_valid_leftmost_derivations(smiles_parser):
    """Each rule expands the symbol on top of the stack: replaying with NLTK's trees agrees."""
    g = smiles_parser.grammar
    sequence = smiles_parser.parse("CC(=O)Nc1ccc(O)cc1")
    assert sequence[0] == 0
    stack = [g.start]
    for index in sequence:
        rule = g.rules[index]
        assert rule.lhs == stack.pop()
        stack.extend(s for s, t in zip(reversed(rule.rhs), reversed(rule.is_terminal)) if not t)
    assert stack == []


def test_parse_is_deterministic(smiles_parser):
    first = smiles_parser.parse("CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1")
    again = Parser(Grammar.load("smiles")).parse("CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1")
    assert np.array_equal(first, again)


def test_chart_parser_fallback_when_longest_match_fails(tmp_path):
    """A grammar where preferring the longest match fails still parses every string it derives."""
    path = tmp_path / "greedy.cfg"
    path.write_text("S -> A 'b'\nA -> 'a' 'b' | 'a'\nNothing -> None\n")
    parser = Parser(Grammar.load(path))
    assert parser.parse("ab").tolist() == [0, 2]
    assert parser.unparse([0, 2, 3, 3]) == "ab"
    expected = nltk.ChartParser(parser.grammar.nltk_cfg).parse(["a", "b", "b"])
    assert parser.parse("abb").tolist() == [0, 1] and next(expected) is not None


@pytest.mark.parametrize(
    "text, message",
    [
        ("CC(X)", r"character 'X' at position 3"),
        ("CC(", "at the end of the string"),
        ("C)C", r"at token '\)' \(token 1, character 1\)"),
        ("", "empty string"),
    ],
)
def test_strings_outside_the_grammar(smiles_parser, text, message):
    with pytest.raises(ParseError, match=message):
        smiles_parser.parse(text)


def test_too_long_for_the_grammar(expression_parser):
    with pytest.raises(ParseError, match="more than the expressions grammar's max length 15"):
        expression_parser.parse("x+x+x+x+x+x+x+x")


@pytest.mark.parametrize(
    "sequence, message",
    [
        ([0, 99], "out of range"),
        ([0, 5], "cannot expand"),
        ([0, 3], "unfinished"),
        ([3, 7, 7], "after the derivation ended"),
    ],
)
def test_bad_sequences(expression_parser, sequence, message):
    with pytest.raises(SequenceError, match=message):
        expression_parser.unparse(sequence)


def test_padding_after_the_end_is_accepted(expression_parser):
    assert expression_parser.unparse([3, 7, 11, 11, 11]) == "x"



@pytest.fixture(scope="module")
def long_expression_parser(tmp_path_factory):
    """The expression grammar with room for strings of thousands of tokens."""
    path = tmp_path_factory.mktemp("grammar") / "long.cfg"
    text = (Path(__file__).resolve().parents[1] / "grammars" / "expressions.cfg").read_text()
    path.write_text(text.replace("max_length=15", "max_length=100000"))
    return Parser(Grammar.load(str(path)))


def test_strings_beyond_4096_tokens_parse(long_expression_parser):
    text = "x+" * 2100 + "((x))"  # the inner parenthesis once met another symbol's memo entry
    assert long_expression_parser.unparse(long_expression_parser.parse(text)) == text


def test_every_string_gets_a_verdict_in_bounded_time(smiles_parser, long_expression_parser, monkeypatch):
    with pytest.raises(ParseError, match="600 tokens, more than the smiles grammar's max length 277 can derive"):
        smiles_parser.parse("C" * 600)
    with pytest.raises(ParseError, match="nested too deeply"):
        long_expression_parser.parse("(" * 3000 + "x" + ")" * 3000)
    monkeypatch.setattr("grammar_ae.grammar.parser.CHART_SECONDS", 0.01, raising=False)
    started = time.perf_counter()
    with pytest.raises(ParseError, match="no derivation found in 0.01 s"):
        smiles_parser.parse("C1=CC=C(C=C1)" * 30 + "C(")  # fails top-down; the chart parser runs out of time
    assert time.perf_counter() - started < 1
