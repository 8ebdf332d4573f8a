"""Readers, named sources, preparation, cache and the expression generator."""

import gzip
import json

import numpy as np
import pytest

from grammar_ae.data.datasets import generated_expressions, load_prepared, resolve_input
from grammar_ae.data.generate import generate_strings
from grammar_ae.data.prepare import PreparedData, prepare, prepare_cached
from grammar_ae.data.readers import read_strings
from grammar_ae.data.sources import DATA_SOURCES, embedded_path, resolve_data
from grammar_ae.errors import ConfigError, DataError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser

SMILES = Grammar.load("smiles")
EXPRESSIONS = Grammar.load("expressions")


def test_readers_handle_every_format(tmp_path):
    (tmp_path / "a.smi").write_text("CCO ethanol\n\nc1ccccc1\n")
    with gzip.open(tmp_path / "b.smi.gz", "wt") as handle:
        handle.write("CCO\nCCN\n")
    # the chemical VAE CSV: each SMILES ends in a newline inside its quotes
    (tmp_path / "c.csv").write_text('smiles,logP,qed,SAS\n"CCO\n",1.0,0.5,2.0\n"CCN\n",0.1,0.4,2.1\n')
    (tmp_path / "d.txt").write_text("sin( x ) + 1\nx * 2\n")
    a = read_strings(tmp_path / "a.smi")
    assert a.strings == ["CCO", "c1ccccc1"] and a.line_numbers == [1, 3] and a.blank_lines == [2]
    assert read_strings(tmp_path / "b.smi.gz").strings == ["CCO", "CCN"]
    assert read_strings(tmp_path / "c.csv").strings == ["CCO", "CCN"]
    assert read_strings(tmp_path / "d.txt").strings == ["sin( x ) + 1", "x * 2"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.smi", b"", "empty file"),
        ("blank.smi", b"\n\n", "empty file"),
        ("bad.smi.gz", b"\x1f\x8b\x08\x00garbage", "corrupt or truncated gzip"),
        ("nocol.csv", b"name,logP\nx,1\n", "no column 'smiles'"),
        ("binary.smi", b"\xff\xfe\x00C", "not UTF-8"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_strings(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_strings(tmp_path / "nope.smi")


def test_prepare_writes_compact_arrays_and_reports_every_skipped_line(tmp_path):
    source = tmp_path / "mols.smi"
    source.write_text("CCO\nC(X)C\n\nc1ccccc1\nCC(\n")
    prepared = prepare(source, SMILES, tmp_path / "out", workers=1, progress=False)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["total"], summary["parsed"], summary["skipped"]) == (5, 2, 3)
    assert summary["grammar_hash"] == SMILES.hash and len(summary["input_sha256"]) == 64
    assert prepared.sequences.dtype == np.int8
    skipped = (tmp_path / "out" / "skipped.tsv").read_text().splitlines()
    assert skipped[0] == "line\tstring\treason"
    reasons = {row.split("\t")[0]: row.split("\t")[2] for row in skipped[1:]}
    assert set(reasons) == {"2", "3", "5"}
    assert "character 'X'" in reasons["2"] and reasons["3"] == "empty line" and "end of the string" in reasons["5"]
    parser = Parser(SMILES)
    padded = prepared.padded_sequences(np.array([0, 1]), 277, SMILES.padding_rule)
    assert padded.shape == (2, 277)
    assert [parser.unparse(row) for row in padded] == ["CCO", "c1ccccc1"]
    chars = prepared.padded_characters(np.array([0]))
    assert "".join(prepared.alphabet[i] for i in chars[0]).strip() == "CCO"


def test_prepare_in_parallel_matches_one_process(tmp_path):
    lines = gzip.open(embedded_path("moses_sample.smi.gz"), "rt").read().splitlines()[:4500]
    source = tmp_path / "s.smi"
    source.write_text("\n".join(lines) + "\n")
    one = prepare(source, SMILES, tmp_path / "one", workers=1, progress=False)
    two = prepare(source, SMILES, tmp_path / "two", workers=2, progress=False)
    assert np.array_equal(one.sequences, two.sequences) and np.array_equal(one.offsets, two.offsets)
    assert one.strings == two.strings == lines


def test_unparseable_input_is_an_error(tmp_path):
    source = tmp_path / "junk.smi"
    source.write_text("XYZ\nQQQ\n")
    with pytest.raises(DataError, match="no line could be parsed"):
        prepare(source, SMILES, tmp_path / "out", workers=1, progress=False)


def test_cache_is_reused_and_a_corrupt_cache_is_rebuilt(tmp_path):
    source = tmp_path / "e.txt"
    source.write_text("x + 1\nsin( x )\n")
    first = prepare_cached(source, EXPRESSIONS, progress=False)
    again = prepare_cached(source, EXPRESSIONS, progress=False)
    assert again.directory == first.directory and again.summary["provenance"] == first.summary["provenance"]
    array = first.directory / "sequences.npy"
    array.write_bytes(array.read_bytes()[:-3])  # truncated
    with pytest.raises(DataError, match="checksum"):
        PreparedData.load(first.directory)
    rebuilt = prepare_cached(source, EXPRESSIONS, progress=False)
    assert rebuilt.strings == ["x+1", "sin(x)"]
    PreparedData.load(rebuilt.directory)


def test_prepared_directory_of_another_grammar_is_refused(tmp_path):
    source = tmp_path / "e.txt"
    source.write_text("x + 1\n")
    prepare(source, EXPRESSIONS, tmp_path / "prep", workers=1, progress=False)
    with pytest.raises(ConfigError, match="grammar hash"):
        load_prepared(tmp_path / "prep", SMILES)


def test_named_sources_resolve_through_the_data_directory(monkeypatch, tmp_path):
    path = resolve_data("zinc250k")
    assert path.name in DATA_SOURCES["zinc250k"].file_names
    monkeypatch.setenv("GRAMMAR_AE_DATA", str(tmp_path))
    monkeypatch.setenv("GRAMMAR_AE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"\$GRAMMAR_AE_DATA"):
        resolve_data("zinc250k", download=False)
    with pytest.raises(ConfigError, match="is for the smiles grammar"):
        resolve_input("zinc250k", EXPRESSIONS)
    assert resolve_input(None, SMILES).name == "moses_sample.smi.gz"


def test_embedded_moses_sample_parses_completely():
    records = read_strings(embedded_path("moses_sample.smi.gz"))
    parser = Parser(SMILES)
    assert len(records.strings) == 5000
    assert all(parser.unparse(parser.parse(s)) == s for s in records.strings[:1000])


def test_generator_is_deterministic_and_respects_the_bounds():
    first = generate_strings(EXPRESSIONS, 500, seed=3, min_rules=8, max_rules=15)
    assert first == generate_strings(EXPRESSIONS, 500, seed=3, min_rules=8, max_rules=15)
    assert first != generate_strings(EXPRESSIONS, 500, seed=4, min_rules=8, max_rules=15)
    assert len(set(first)) == 500
    parser = Parser(EXPRESSIONS)
    assert all(8 <= len(parser.parse(s)) <= 15 for s in first)
    with pytest.raises(ConfigError, match="exceeds"):
        generate_strings(EXPRESSIONS, 10, max_rules=16)


def test_generated_expression_set_is_cached():
    path = generated_expressions()
    assert path == generated_expressions() and len(path.read_text().splitlines()) == 100_000


def test_prepare_skips_lines_no_parser_can_finish(tmp_path, monkeypatch):
    monkeypatch.setattr("grammar_ae.grammar.parser.CHART_SECONDS", 0.01, raising=False)
    source = tmp_path / "long.smi"
    source.write_text("CCO\n" + "C" * 600 + "\n" + "C1=CC=C(C=C1)" * 30 + "C(\nc1ccccc1\n")
    prepare(source, SMILES, tmp_path / "out", workers=1, progress=False)
    skipped = (tmp_path / "out" / "skipped.tsv").read_text().splitlines()[1:]
    reasons = {row.split("\t")[0]: row.split("\t")[2] for row in skipped}
    assert set(reasons) == {"2", "3"}
    assert "600 tokens" in reasons["2"] and "no derivation found" in reasons["3"]
