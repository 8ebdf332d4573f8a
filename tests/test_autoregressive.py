"""Autoregressive sequence models: folding, token codecs, bucketed batches, decoding, CLI."""

import json

import numpy as np
import pytest
import torch

from grammar_ae.data.batches import BucketedBatchSource
from grammar_ae.decoding.autoregressive import decode_autoregressive
from grammar_ae.errors import ConfigError, SequenceError
from grammar_ae.grammar.cfg import Grammar
from grammar_ae.grammar.folding import FoldedGrammar, unit_rules
from grammar_ae.grammar.parser import Parser
from grammar_ae.models.loading import load_run
from grammar_ae.models.sequence.model import SequenceModelSpec
from grammar_ae.models.sequence.networks import SequenceNetworkConfig
from grammar_ae.models.sequence.presets import preset_objective
from grammar_ae.utils.device import cpu_has_native_bf16
from grammar_ae.models.sequence.tokens import CharacterTokens, GrammarTokens

SMALL = {"latent_dim": 12, "embedding_dim": 16, "model_dim": 32, "encoder_dim": 16, "heads": 2}


def small_model(decoder: str, grammar: str = "smiles", model: str = "grae", layers: int = 1):
    g = Grammar.load(grammar)
    preset, objective = preset_objective(model)
    network = SequenceNetworkConfig(decoder=decoder, encoder=decoder, decoder_layers=layers, encoder_layers=layers, **SMALL)
    alphabet = [" "] + sorted(set("".join(["CCO", "c1ccccc1", "N#N", "x+1*sin(x)"])))
    spec = SequenceModelSpec(preset.representation, g.name, g.source, g.hash, network, objective, preset.name,
                             alphabet=alphabet if preset.representation == "character" else [],
                             length=30 if preset.representation == "character" else 0)
    torch.manual_seed(0)
    return spec.build().eval()


def test_folding_is_exact_and_halves_the_decisions_on_zinc(zinc_smiles):
    grammar = Grammar.load("smiles")
    folded = FoldedGrammar.from_grammar(grammar)
    parser = Parser(grammar)
    strings = zinc_smiles[::500]  # 499 molecules
    sequences = [parser.parse(s) for s in strings]
    offsets = np.r_[0, np.cumsum([len(s) for s in sequences])]
    tokens, token_offsets = folded.fold(np.concatenate(sequences), offsets)
    # every token's path is unit rules then one other rule, starting from the token's symbol
    unit = unit_rules(grammar)
    for path in folded.paths[:-1]:
        assert all(unit[r] for r in path[:-1]) and not unit[path[-1]]
    lengths = np.diff(token_offsets)
    assert lengths.sum() < 0.6 * offsets[-1]  # 130 rules -> 68 tokens on average on ZINC
    padded = np.full((len(strings), lengths.max()), folded.padding_token)
    for row in range(len(strings)):
        padded[row, : lengths[row]] = tokens[token_offsets[row] : token_offsets[row + 1]]
    rules = folded.unfold(padded)
    for row, sequence in enumerate(sequences):
        assert list(rules[row, : len(sequence)]) == list(sequence)
        assert (rules[row, len(sequence) :] == grammar.padding_rule).all()
    assert (folded.rule_counts(padded) == [len(s) for s in sequences]).all()


def test_folding_refuses_a_sequence_that_stops_inside_a_unit_chain():
    grammar = Grammar.load("smiles")
    folded = FoldedGrammar.from_grammar(grammar)
    with pytest.raises(SequenceError, match="unit productions"):
        folded.fold(np.array([0]), np.array([0, 1]))  # smiles -> chain, then nothing


@pytest.mark.parametrize("grammar, strings", [("smiles", ["CCO", "c1ccccc1C(=O)N", "[NH3+]CC"]),
                                              ("expressions", ["x+1", "sin(x*x)/3", "exp(2)"])])
def test_grammar_tokens_round_trip_strings(grammar, strings):
    codec = GrammarTokens(Grammar.load(grammar))
    tokens = codec.padded(strings)
    valid = torch.ones(len(strings), dtype=torch.bool)
    assert codec.strings(tokens, valid) == [codec.parser.tokenizer.normalize(s) for s in strings]
    assert codec.strings(tokens, torch.tensor([True, False, True]))[1] is None


def test_character_tokens_end_with_the_padding_character_and_round_trip():
    codec = CharacterTokens(Grammar.load("smiles"), [" ", "C", "O", "c", "1", "(", ")", "="], 12)
    tokens = codec.padded(["CCO", "c1ccccc1"])
    assert tokens[0, :4].tolist() == [1, 1, 2, 0] and tokens[0, 4:].eq(codec.padding_token).all()
    assert codec.strings(tokens, torch.ones(2, dtype=torch.bool)) == ["CCO", "c1ccccc1"]
    assert codec.strings(codec.padded(["C(("]), torch.ones(1, dtype=torch.bool)) == [None]  # not grammatical


def test_bucketed_batches_cover_the_items_once_and_pad_little():
    lengths = np.random.default_rng(0).integers(5, 100, size=1000)
    offsets = np.r_[0, np.cumsum(lengths)]
    flat = np.arange(offsets[-1]) % 50
    source = BucketedBatchSource(flat, offsets, np.arange(1000), padding=99, pool_batches=16)
    batches = list(source.batches(64, True, torch.Generator().manual_seed(0)))
    assert len(batches) == 1000 // 64 and all(len(b) == 64 for b in batches)
    real = sum(int((b != 99).sum()) for b in batches)
    padded = sum(b.numel() for b in batches)
    assert real / padded > 0.9  # length-sorted pools of 1,024 items: about 4 % padding here
    again = list(source.batches(64, True, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    ordered = list(source.batches(64, False, torch.Generator()))
    assert sum(len(b) for b in ordered) == 1000
    seen = sorted(int(b[i, 0]) for b in ordered for i in range(len(b)))  # first token of each item
    assert seen == sorted(int(flat[o]) for o in offsets[:-1])


@pytest.mark.parametrize("decoder, layers", [("gru", 1), ("gru", 2), ("transformer", 2)])
def test_greedy_decoding_follows_the_teacher_forced_argmax(decoder, layers):
    """The step-by-step decoder (recurrent state / key-value cache) and the teacher-forced pass
    agree: along its own decode, every chosen token is the masked argmax of the full pass."""
    model = small_model(decoder, layers=layers)
    z = torch.randn(24, 12, generator=torch.Generator().manual_seed(1)) * 3
    decoded = decode_autoregressive(model.decoder, z, model.codec.tables, 150)
    tokens = decoded.rules
    with torch.no_grad():
        logits = model.decoder(z, tokens, model.token_lhs[tokens])
    choice = logits.masked_fill(~model.sibling_masks[tokens], float("-inf")).argmax(-1)
    real = tokens != model.codec.padding_token
    assert torch.equal(choice[real], tokens[real])
    strings = model.codec.strings(tokens, decoded.valid)
    grammar_parser = Parser(Grammar.load("smiles"))
    for text, ok in zip(strings, decoded.valid.tolist()):
        assert (text is not None) == ok
        if text is not None:
            grammar_parser.parse(text)  # every finished decode is grammatical


@pytest.mark.parametrize("decoder", ["gru", "transformer"])
def test_encoder_ignores_padding(decoder):
    model = small_model(decoder)
    strings = ["CCO", "c1ccccc1CCN(C)C(=O)O", "C"]
    together = model.encode_batch(strings).mu
    alone = torch.cat([model.encode_batch([s]).mu for s in strings])
    assert torch.allclose(together, alone, atol=1e-5)


def test_reconstruction_loss_is_the_masked_cross_entropy_of_real_steps():
    model = small_model("gru")
    tokens = model.codec.padded(["CCO", "c1ccccc1"])
    logits = torch.randn(*tokens.shape, model.codec.num_tokens)
    loss = model.reconstruction(logits, tokens).loss
    expected = 0.0
    for row in range(len(tokens)):
        for step in range(tokens.shape[1]):
            target = int(tokens[row, step])
            if target == model.codec.padding_token:
                continue
            allowed = model.codec.token_lhs == model.codec.token_lhs[target]
            row_logits = logits[row, step][torch.as_tensor(allowed)]
            position = int(np.flatnonzero(allowed).tolist().index(target))
            expected += -torch.log_softmax(row_logits, 0)[position].item()
    assert loss.item() == pytest.approx(expected / len(tokens), rel=1e-5)


def test_network_settings_are_checked():
    with pytest.raises(ConfigError, match="decoder 'lstm' is unknown"):
        SequenceNetworkConfig(decoder="lstm")
    with pytest.raises(ConfigError, match="multiple of heads"):
        SequenceNetworkConfig(decoder="transformer", model_dim=30, heads=4)
    SequenceNetworkConfig(decoder="gru", model_dim=30, heads=4)  # heads matter to Transformers only


@pytest.fixture(scope="module")
def molecule_file(tmp_path_factory, zinc_smiles):
    path = tmp_path_factory.mktemp("data") / "molecules.smi"
    path.write_text("\n".join(zinc_smiles[:400]) + "\n")
    return path


@pytest.mark.parametrize("grammar, decoder, model", [
    ("smiles", "gru", "grae"), ("smiles", "transformer", "grae-gmm"), ("smiles", "gru", "cvae"),
    ("expressions", "gru", "gvae"), ("expressions", "transformer", "gcvvae"), ("expressions", "published", "grae"),
])
def test_cli_trains_evaluates_samples_encodes_and_decodes(run_main, tmp_path, molecule_file, grammar, decoder, model):
    data = molecule_file if grammar == "smiles" else "expressions-generated"
    out = tmp_path / "run"
    sizes = [f"network.{k}={v}" for k, v in SMALL.items()] + ["network.hidden=16", "network.gru_hidden=16"]
    args = ["train", "--grammar", grammar, "--data", str(data), "--model", model, "--decoder", decoder,
            "--epochs", "2", "--batch-size", "50", "--limit", "300", "--out", str(out), "--quiet"]
    for setting in sizes:
        args += ["--set", setting]
    code, stdout, stderr = run_main(*args)
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_spec"]["network"].get("decoder", "published") == decoder  # published specs keep their old form
    assert summary["config"]["cpu_autocast"] == (decoder != "published" and cpu_has_native_bf16())
    code, stdout, stderr = run_main("evaluate", str(out), "--json", "--items", "10", "--prior-samples", "10",
                                    "--encode-samples", "1", "--decode-samples", "2", "--no-moses")
    assert code == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["held_out_items"] == 10 and 0 <= result["prior_validity"] <= 1
    code, stdout, _ = run_main("sample", str(out), "-n", "4")
    assert code == 0 and len(stdout.splitlines()) == 4
    string = "CCO" if grammar == "smiles" else "x+1"
    code, stdout, _ = run_main("encode", str(out), string)
    assert code == 0 and len(stdout.split()) == 12
    code, decoded, stderr = run_main("decode", str(out), "--input", str(_write(tmp_path / "z.txt", stdout)))
    assert code == 0, stderr
    assert len(decoded.splitlines()) == 1
    run = load_run(out, "cpu")
    assert run.decode(run.encode_means([string]))[0] == decoded.strip() or decoded.strip() == ""


def _write(path, text):
    path.write_text(text)
    return path


def _replay_through_checks(codec, strings, max_ring_size=7):
    """Feed true token sequences through the chemistry checks: per string, whether every true
    token was allowed, and whether every one was preferred (rings within ``max_ring_size``)."""
    from grammar_ae.decoding.smiles_checks import SmilesChecks

    checks, tables = SmilesChecks(codec.folded, max_ring_size), codec.tables
    tokens = codec.padded(strings)
    batch, steps = tokens.shape
    symbol_rules, push = torch.as_tensor(tables.symbol_rules), torch.as_tensor(tables.push)
    delta = torch.as_tensor(tables.push_delta)
    stack = torch.zeros((tables.stack_depth(steps), batch), dtype=torch.long)
    stack[0], stack[1] = tables.padding_symbol, tables.start_symbol
    pointer, offsets = torch.ones((1, batch), dtype=torch.long), torch.arange(tables.max_push).unsqueeze(1)
    state = checks.start(batch, torch.device("cpu"))
    passed, preferred = torch.ones(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)
    for step in range(steps):
        top, chosen = stack.gather(0, pointer).view(-1), tokens[:, step]
        candidates = symbol_rules[top]
        allowed, liked = checks.masks(state, top, candidates, pointer.view(-1))
        is_chosen, padding = candidates == chosen[:, None], chosen == codec.padding_token
        passed &= (is_chosen & allowed).any(1) | padding
        preferred &= (is_chosen & liked).any(1) | padding
        state = checks.update(state, top, chosen, pointer.view(-1))
        stack.scatter_(0, pointer + offsets, push[chosen].t())
        pointer = pointer + delta[chosen].view(1, -1)
    return passed, preferred


def _replay_through_ring_checks(codec, strings):
    return _replay_through_checks(codec, strings)[0]


def test_chemistry_checks_allow_every_zinc_molecule_and_refuse_broken_ones(zinc_smiles):
    from grammar_ae.chemistry import kekule_smiles

    codec = GrammarTokens(Grammar.load("smiles"))
    sample = zinc_smiles[::100]  # 2,495 molecules: every true choice is kept, as written and in Kekule form
    assert _replay_through_ring_checks(codec, sample).all()
    assert _replay_through_ring_checks(codec, [kekule_smiles(s) for s in sample]).all()
    broken_rings = ["C1CCCCC", "CC1CC", "C11CC", "C1C1", "C1(C)C1", "c1ccccc1C2CC"]
    broken_valence = ["CC(C)(C)(C)(C)C", "FCF(C)C", "O=C=O=C", "C#N#C", "C(=O)(=O)=O", "CN(C)(C)C",
                      "C[C@@H](C)(C)C", "C[NH+](C)(C)C", "C[O-]C", "[CH2]=[CH2]C"]
    assert not _replay_through_ring_checks(codec, broken_rings + broken_valence).any()
    assert _replay_through_ring_checks(codec, ["CC(C1)C1", "C1CC(C)(C1)C", "OS(=O)(=O)C", "C[N+](C)(C)C", "[O-]C(C)=O"]).all()
    # a ring bond's order is taken from both its atoms, wherever it is written
    broken_ring_orders = ["O=C1CCCCC=1", "CC1=CC(OCN[C@@H]2CC)=C(C(=O)OC1(CC=2))", "C=1CCCC(=O)C1=O", "N#C1CCC=1",
                          "C12CCCC=1CCC=2"]
    assert not _replay_through_ring_checks(codec, broken_ring_orders).any()
    assert _replay_through_ring_checks(codec, ["C1CCCCC=1", "C=1CCCCC1", "C=1CCCCC=1", "C1CCCC2CCCCC=12", "C12CCCC=1CCC2"]).all()


def test_ring_size_preference_keeps_every_zinc_molecule_with_small_rings(zinc_smiles):
    """Every Kekule ZINC molecule whose rings have at most 7 atoms is preferred token by token
    (fused, bridged and spiro rings included: sizes are graph distances, and a ring closed
    with 8 atoms before the bridge that halves it is kept); larger rings are not."""
    from rdkit import Chem

    from grammar_ae.chemistry import kekule_smiles

    codec = GrammarTokens(Grammar.load("smiles"))
    sample = [kekule_smiles(s) for s in zinc_smiles[::100]]
    molecules = [Chem.MolFromSmiles(s) for s in sample]
    largest = np.array([max((len(r) for r in m.GetRingInfo().AtomRings()), default=0) for m in molecules])
    allowed, preferred = _replay_through_checks(codec, sample)
    assert allowed.all() and preferred[torch.from_numpy(largest <= 7)].all()
    small = ["C1CCCCCC1", "C1=CC=C2C=CC=CC2=C1", "C12CC(C2)CC1", "C1CCC2(CC1)CCCCC2", "C1CC(CCCCCCCCCC)CC1",
             "C1CCC2C(C1)CCC1C2CCC2CCCC12", "C1CC2CCCC(C1)N2C", "C1CCCCCC=1",
             "Brc1ccc2c(c1)=C(c1cccnc1)NN=C(c1cccs1)[NH+]=2"]
    allowed, preferred = _replay_through_checks(codec, small)
    assert allowed.all() and preferred.all()
    large = ["C1CCCCCCC1", "C1CCCCCCCCCCC1", "CC1CCCCCC(C)CC1C1CC1", "C1CCCCCCC1C1CC1", "CC(N1CCCCCCCC1)=O",
             "C1(CCCCCCCCCCC1)C"]
    allowed, preferred = _replay_through_checks(codec, large)
    assert allowed.all() and not preferred.any()
    # a large ring fused to a small one closed later is not caught: its closing bond lies in the small ring
    assert _replay_through_checks(codec, ["C1CC2CCCCCCC2C1"])[1].all()
    assert _replay_through_checks(codec, ["C1CCCCCCC1"], max_ring_size=8)[1].all()


def test_an_open_ring_is_closed_before_it_grows_too_large():
    """A chain that has gone max_ring_size - 1 atoms from a ring's opener should close it: the
    next atom without a ring bond is not preferred, one that closes the ring is."""
    codec = GrammarTokens(Grammar.load("smiles"))
    _, preferred = _replay_through_checks(codec, ["C1CCCCCC1C", "C1CCCCCCC1", "C1CCCCCC(C)C1", "C1CCCCC(CCC)C1"])
    assert preferred.tolist() == [True, False, False, True]


def test_decoding_with_ring_checks_closes_rings():
    """A random decoder breaks rings often; with the checks almost every decode closes them (a
    sequence the checks would leave without any choice, after earlier choices that no valid
    molecule can follow, keeps the grammar's choices)."""
    from rdkit import Chem

    def broken(strings):
        return sum(Chem.MolFromSmiles(s, sanitize=False) is None for s in strings if s is not None)

    model = small_model("gru")
    z = torch.randn(200, 12, generator=torch.Generator().manual_seed(2)) * 2
    greedy = model.decode_latents(z)
    assert sum(s is not None for s in greedy) > 100 and broken(greedy) <= 2
    assert broken(model.decode_latents(z, sample=True, generator=torch.Generator().manual_seed(0))) <= 5
    model.chemistry_checks = None
    assert broken(model.decode_latents(z)) >= 10


@pytest.mark.parametrize("decoder", ["gru", "transformer"])
def test_bf16_autocast_keeps_the_training_loss_of_fp32(decoder, zinc_smiles):
    """The CPU bf16 autocast the molecule default trains under gives the fp32 loss to 1 %."""
    model = small_model(decoder)
    tokens = model.codec.padded(zinc_smiles[:64])
    z = torch.randn(len(tokens), SMALL["latent_dim"], generator=torch.Generator().manual_seed(0))

    def loss() -> float:
        with torch.no_grad():
            logits = model.decoder(z, tokens, model.token_lhs[tokens])
        return model.reconstruction(logits.float(), tokens).loss.item()

    full = loss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss()
    assert mixed == pytest.approx(full, rel=1e-2) and mixed != full


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_on_the_cpu_only_where_it_is_native_unless_asked_for(native, monkeypatch):
    from grammar_ae.models.sequence.config import SequenceRunConfig
    from grammar_ae.training import run_settings

    monkeypatch.setattr(run_settings, "cpu_has_native_bf16", lambda: native)
    assert SequenceRunConfig(grammar="smiles").resolved().trainer_config("loss", cpu_autocast=True).cpu_autocast is native
    assert SequenceRunConfig(grammar="smiles").resolved().trainer_config("loss", cpu_autocast=False).cpu_autocast is False
    for asked in (True, False):
        config = SequenceRunConfig(grammar="smiles", mixed_precision=asked).resolved()
        assert config.trainer_config("loss", cpu_autocast=True).cpu_autocast is asked
