"""The command-line contract: output format, errors as one line with a non-zero exit."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from grammar_ae.cli.main import app

runner = CliRunner()


def cli(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def run_module(*args: str):
    """Through the real entry point, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "grammar_ae", *args], capture_output=True, text=True)


def test_parse_and_unparse_round_trip():
    parsed = cli("parse", "--grammar", "smiles", "CCO", "c1ccccc1")
    assert parsed.exit_code == 0
    lines = parsed.stdout.splitlines()
    assert len(lines) == 2 and all(line.split()[0] == "0" for line in lines)
    back = cli("unparse", "--grammar", "smiles", *lines[0].split())
    assert back.stdout.strip() == "CCO"


def test_parse_file_keeps_line_numbers_aligned(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("sin( x ) + 1\nx +\nx * 2\n")
    result = cli("parse", "--grammar", "expressions", "--input", str(source))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]
    assert "line 2" in result.stderr
    unparsed = tmp_path / "seq.txt"
    unparsed.write_text(lines[0] + "\n" + lines[2] + "\n")
    assert cli("unparse", "--grammar", "expressions", "--input", str(unparsed)).stdout.splitlines() == ["sin(x)+1", "x*2"]


def test_unparseable_string_is_one_line_and_non_zero():
    result = run_module("parse", "--grammar", "smiles", "CC(X)")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "character 'X' at position 3" in result.stderr
    assert "Traceback" not in result.stderr


def test_grammar_info(tmp_path):
    result = cli("grammar", "info", "smiles", "--json")
    info = json.loads(result.stdout)
    assert info["rules"] == 76 and info["max_length"] == 277 and info["lhs_symbols"] == 23
    text = cli("grammar", "info", "expressions").stdout
    assert "12 rules" in text and "S -> S '+' T" in text


def test_custom_grammar_file_works_downstream(tmp_path):
    grammar = tmp_path / "tiny.cfg"
    grammar.write_text("# grammar-ae: max_length=20\nS -> 'a' S | 'b'\nNothing -> None\n")
    data = tmp_path / "tiny.txt"
    data.write_text("ab\naab\nb\nxb\n")
    result = cli("data", "prepare", "--grammar", str(grammar), "--input", str(data), "--output", str(tmp_path / "p"), "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["parsed"], summary["skipped"]) == (3, 1)


def test_data_prepare_errors_are_one_line(tmp_path, run_main):
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    code, _, err = run_main("data", "prepare", "--grammar", "smiles", "--input", str(empty), "--output", str(tmp_path / "o"))
    assert code == 1 and "empty file" in err and err.count("\n") == 1
    code, _, err = run_main("data", "prepare", "--grammar", str(tmp_path / "missing.cfg"), "--input", str(empty), "--output", str(tmp_path / "o"))
    assert code == 1 and "no such file" in err


def test_data_generate(tmp_path):
    out = tmp_path / "gen.txt"
    result = cli("data", "generate", "--count", "50", "--seed", "1", "--output", str(out))
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 50


def test_every_command_has_help():
    for command in (["parse"], ["unparse"], ["grammar", "info"], ["data", "prepare"], ["data", "generate"],
                    ["train"], ["evaluate"], ["sample"], ["encode"], ["decode"]):
        result = cli(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout, command


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "--epoch", "3"], "No such option: --epoch"),
        (["train", "--epochs", "abc"], "Invalid value for '--epochs'"),
        (["evaluate"], "Missing argument 'run'"),
        (["tran"], "No such command 'tran'. Did you mean 'train'?"),
        (["data", "prepar"], "Did you mean 'prepare'?"),
    ],
)
def test_usage_errors_are_click_messages_with_exit_2(run_main, arguments, message):
    code, _, err = run_main(*arguments)
    assert code == 2 and message in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [line for line in err.splitlines() if message in line]


def test_help_keeps_brackets_and_shows_no_metavar_for_flags(run_main):
    code, out, _ = run_main("train", "--help")
    assert code == 0 and "[objective] / [network] tables" in " ".join(out.split())
    assert "<bool>" not in out and "-q, --quiet" in out
    code, out, _ = run_main("sample", "--help")
    assert code == 0 and "-n, --count" in out


def test_parse_reads_gzip_and_a_byte_order_mark_and_fails_when_every_line_fails(tmp_path, run_main):
    import gzip

    source = tmp_path / "in.txt.gz"
    source.write_bytes(gzip.compress("\ufeffsin(x)+1\nx*2\n".encode("utf-8")))
    code, out, err = run_main("parse", "--grammar", "expressions", "--input", str(source))
    assert code == 0 and all(out.splitlines()) and len(out.splitlines()) == 2, err
    bad = tmp_path / "bad.txt"
    bad.write_text("foo\nbar\n")
    code, out, err = run_main("parse", "--grammar", "expressions", "--input", str(bad))
    assert code == 1 and out.splitlines() == ["", ""] and err.splitlines()[-1] == "error: all 2 lines failed"


def test_unknown_data_lists_every_named_set(tmp_path, run_main):
    code, _, err = run_main("data", "prepare", "--grammar", "expressions", "--input", "nope", "--output", str(tmp_path / "o"))
    assert code == 1 and "zinc250k, expressions, moses-sample, expressions-generated" in err


def test_a_failed_write_is_one_line(tmp_path, run_main):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_main("data", "generate", "--count", "5", "--output", str(blocker / "out.txt"))
    assert code == 1 and err == f"error: {blocker}: File exists\n"
