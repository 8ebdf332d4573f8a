"""Masked decoding: exact reconstructions, grammatical output, sampling, agreement with a plain loop."""

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from grammar_ae.decoding import DecodedRules, MaskedDecoder, masked
from grammar_ae.decoding.tables import live_rules
from grammar_ae.errors import ConfigError, GrammarError, SequenceError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.parser import Parser

_BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "masked_decoding.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("masked_decoding_benchmark", _BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


python_stack_decode = _load_benchmark().python_stack_decode  # the plain per-sequence loop


@pytest.fixture(scope="module", params=["smiles", "expressions"])
def grammar(request):
    return Grammar.load(request.param)


@pytest.fixture(scope="module")
def smiles():
    grammar = Grammar.load("smiles")
    return grammar, Parser(grammar), MaskedDecoder(grammar)


def _random_logits(grammar: Grammar, batch: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, grammar.max_length, grammar.num_rules, generator=generator)


def _true_rules(grammar: Grammar, parser: Parser, texts: list[str]) -> torch.Tensor:
    rules = torch.full((len(texts), grammar.max_length), grammar.padding_rule, dtype=torch.long)
    for row, text in enumerate(texts):
        sequence = parser.parse(text)
        rules[row, : len(sequence)] = torch.from_numpy(sequence.astype(np.int64))
    return rules


def _rule(grammar: Grammar, text: str) -> int:
    return next(rule.index for rule in grammar.rules if str(rule) == text)


def _one_hot_logits(grammar: Grammar, rules: torch.Tensor, seed: int) -> torch.Tensor:
    """The true rules times a large scale, plus unit noise everywhere."""
    noise = torch.randn(*rules.shape, grammar.num_rules, generator=torch.Generator().manual_seed(seed))
    return noise + 20.0 * torch.nn.functional.one_hot(rules, grammar.num_rules)


def _assert_grammatical(grammar: Grammar, decoded: DecodedRules, strings: list[str | None]) -> None:
    parser = Parser(grammar)
    for rules, valid, text in zip(decoded.rules.numpy(), decoded.valid.tolist(), strings):
        if valid:
            assert parser.unparse(rules) == text  # a leftmost derivation of exactly this string
            assert parser.unparse(parser.parse(text)) == text
        else:
            assert text is None
            with pytest.raises(SequenceError, match="unfinished"):
                parser.unparse(rules)


def test_argmax_reproduces_real_zinc_smiles(smiles, zinc_smiles):
    grammar, parser, decoder = smiles
    texts = random.Random(0).sample(zinc_smiles, 300)
    rules = _true_rules(grammar, parser, texts)
    decoded = decoder.decode(_one_hot_logits(grammar, rules, seed=1))
    assert decoded.rules.dtype == torch.long and decoded.valid.dtype == torch.bool
    assert torch.equal(decoded.rules, rules)
    assert bool(decoded.valid.all())
    assert decoder.to_strings(decoded) == texts


def test_argmax_reproduces_real_expressions(expressions):
    grammar = Grammar.load("expressions")
    parser, decoder = Parser(grammar), MaskedDecoder(grammar)
    texts = random.Random(0).sample(expressions, 2000)
    rules = _true_rules(grammar, parser, texts)
    decoded = decoder.decode(_one_hot_logits(grammar, rules, seed=2))
    assert torch.equal(decoded.rules, rules)
    assert decoder.to_strings(decoded) == [text.replace(" ", "") for text in texts]


def test_random_logits_give_grammatical_strings_or_none(grammar):
    decoder = MaskedDecoder(grammar)
    batch = 300 if grammar.name == "smiles" else 3000
    decoded = decoder.decode(_random_logits(grammar, batch, seed=3, scale=3.0))
    strings = decoder.to_strings(decoded)
    valid = int(decoded.valid.sum())
    assert 0 < valid < batch  # both outcomes occur, so both branches below are checked
    assert sum(s is not None for s in strings) == valid
    _assert_grammatical(grammar, decoded, strings)


@pytest.mark.parametrize("chunked", [False, True])
def test_vectorized_decoder_agrees_with_the_plain_python_loop(grammar, chunked, monkeypatch):
    if chunked:  # chunks of about 64 sequences, so that chunk boundaries are crossed
        monkeypatch.setattr(masked, "_CPU_CHUNK_ELEMENTS", 64 * 10)
    batch = 150 if grammar.name == "smiles" else 1500
    logits = _random_logits(grammar, batch, seed=4)
    decoded = MaskedDecoder(grammar).decode(logits)
    rules, valid = python_stack_decode(grammar, logits.numpy())
    assert np.array_equal(decoded.rules.numpy(), rules)
    assert np.array_equal(decoded.valid.numpy(), valid)


def test_ties_and_infinities_pick_the_first_live_rule_like_the_plain_loop(grammar):
    logits = torch.zeros(3, grammar.max_length, grammar.num_rules)
    logits[1, :, ::2] = float("inf")
    logits[2] = torch.randint(0, 2, logits[2].shape, generator=torch.Generator().manual_seed(5)).float()
    decoder = MaskedDecoder(grammar)
    decoded = decoder.decode(logits)
    rules, valid = python_stack_decode(grammar, logits.numpy())
    assert np.array_equal(decoded.rules.numpy(), rules)
    assert np.array_equal(decoded.valid.numpy(), valid)
    # all -inf: still the first live rule of each symbol, as for all-equal logits
    assert torch.equal(decoder.decode(torch.full_like(logits, float("-inf"))).rules, decoded.rules[:1].expand(3, -1))


def test_gumbel_sampling_is_reproducible_and_differs_across_seeds(grammar):
    decoder = MaskedDecoder(grammar)
    logits = _random_logits(grammar, 200, seed=6)

    def sample(seed, temperature=1.0):
        generator = torch.Generator().manual_seed(seed)
        return decoder.decode(logits, sample=True, generator=generator, temperature=temperature)

    first, again, other = sample(0), sample(0), sample(1)
    assert torch.equal(first.rules, again.rules) and torch.equal(first.valid, again.valid)
    assert not torch.equal(first.rules, other.rules)
    _assert_grammatical(grammar, first, decoder.to_strings(first))
    # a vanishing temperature leaves only the argmax
    assert torch.equal(sample(2, temperature=1e-6).rules, decoder.decode(logits).rules)


def test_gumbel_sampling_follows_the_masked_softmax():
    grammar = Grammar.load("expressions")  # S -> S '+' T | S '*' T | S '/' T | T
    logits = torch.zeros(20000, grammar.max_length, grammar.num_rules)
    logits[:, 0, :4] = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    logits[:, 0, 4:] = 50.0  # other symbols' rules: masked out at step 0
    decoded = MaskedDecoder(grammar).decode(logits, sample=True, generator=torch.Generator().manual_seed(7))
    frequencies = torch.bincount(decoded.rules[:, 0], minlength=grammar.num_rules).float() / len(logits)
    assert torch.allclose(frequencies[:4], torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.015)
    assert frequencies[4:].sum() == 0


def test_forced_recursion_never_finishes(smiles):
    grammar, _, decoder = smiles
    logits = _random_logits(grammar, 20, seed=8)
    logits[:, :, _rule(grammar, "chain -> chain branched_atom")] += 100.0  # at every step
    decoded = decoder.decode(logits)
    assert not bool(decoded.valid.any())
    assert decoder.to_strings(decoded) == [None] * 20


def test_too_few_steps_is_unfinished_and_enough_steps_finish(smiles, zinc_smiles):
    grammar, parser, decoder = smiles
    texts = random.Random(9).sample(zinc_smiles, 20)
    rules = _true_rules(grammar, parser, texts)
    logits = _one_hot_logits(grammar, rules, seed=10)
    length = max(len(parser.parse(text)) for text in texts)
    short = decoder.decode(logits[:, : length - 1])
    full = decoder.decode(logits[:, :length])
    longest = [len(parser.parse(text)) == length for text in texts]
    assert short.valid.tolist() == [not is_longest for is_longest in longest]
    assert bool(full.valid.all())
    assert decoder.to_strings(full) == texts


def test_rules_naming_a_dead_symbol_are_never_picked(smiles):
    grammar, _, decoder = smiles
    dead = [rule for rule, rhs in enumerate(grammar.rhs_nonterminals) if -1 in rhs]
    assert dead == [29, 31]  # BACH -> charge class | class
    assert not live_rules(grammar)[dead].any() and live_rules(grammar).sum() == grammar.num_rules - 2
    logits = _random_logits(grammar, 200, seed=11)
    logits[:, :, dead] += 1000.0
    logits[:, :, _rule(grammar, "atom -> bracket_atom")] += 5.0  # reach BACH often
    decoded = decoder.decode(logits)
    assert not bool(torch.isin(decoded.rules, torch.tensor(dead)).any())
    _assert_grammatical(grammar, decoded, decoder.to_strings(decoded))


def test_a_grammar_whose_start_symbol_cannot_finish_is_rejected():
    text = "S -> S 'a' | T\nT -> T 'b'\nNothing -> None\n"
    with pytest.raises(GrammarError, match="derives no string"):
        MaskedDecoder(Grammar.from_text(text, name="endless", max_length=5))


def test_logits_that_require_grad_and_empty_batches(grammar):
    decoder = MaskedDecoder(grammar)
    logits = _random_logits(grammar, 5, seed=12).requires_grad_()
    assert torch.equal(decoder.decode(logits).rules, decoder.decode(logits.detach()).rules)
    empty = decoder.decode(torch.zeros(0, grammar.max_length, grammar.num_rules))
    assert empty.rules.shape == (0, grammar.max_length) and decoder.to_strings(empty) == []


def test_bad_input_raises_clear_errors(smiles):
    grammar, _, decoder = smiles
    with pytest.raises(SequenceError, match="75 rules, the smiles grammar has 76"):
        decoder.decode(torch.zeros(2, 10, 75))
    with pytest.raises(SequenceError, match="1..277 steps"):
        decoder.decode(torch.zeros(2, 278, 76))
    with pytest.raises(SequenceError, match="expected a float tensor"):
        decoder.decode(torch.zeros(2, 10, 76, dtype=torch.long))
    logits = _random_logits(grammar, 3, seed=13)
    logits[1, 0] = float("nan")
    with pytest.raises(SequenceError, match="NaN"):
        decoder.decode(logits)
    with pytest.raises(ConfigError, match="temperature"):
        decoder.decode(logits, sample=True, temperature=0.0)
    unfinished = decoder.decode(_random_logits(grammar, 50, seed=14))
    forged = DecodedRules(unfinished.rules, torch.ones(50, dtype=torch.bool))
    with pytest.raises(SequenceError, match="not finished derivations"):
        decoder.to_strings(forged)
    with pytest.raises(SequenceError, match="outside 0..75"):
        decoder.to_strings(DecodedRules(torch.full((1, 5), 76), torch.ones(1, dtype=torch.bool)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(grammar):
    decoder = MaskedDecoder(grammar)
    logits = _random_logits(grammar, 500, seed=15)
    on_cpu, on_cuda = decoder.decode(logits), decoder.decode(logits.cuda())
    assert on_cuda.rules.is_cuda and torch.equal(on_cuda.rules.cpu(), on_cpu.rules)
    assert decoder.to_strings(on_cuda) == decoder.to_strings(on_cpu)
    cpu_generator = torch.Generator().manual_seed(0)
    sampled = decoder.decode(logits.cuda(), sample=True, generator=cpu_generator)
    _assert_grammatical(grammar, sampled, decoder.to_strings(sampled))
