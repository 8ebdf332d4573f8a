"""Ring-closure checks while decoding SMILES (a semantic mask, as in the syntax-directed VAE).

The SMILES grammar pairs ring-bond digits only by meaning: ``C1CCCCC1`` is a ring, ``C1CCCCC``
is grammatical but not a molecule. Most invalid decodes of an autoregressive grammar model
are unclosed rings, so decoding keeps, per sequence, the set of open ring labels and the
number of atom-producing symbols left on the derivation stack, and removes the choices that
cannot lead to a closed molecule:

- on the last atom (no ``chain``, ``branched_atom``, ``branch`` or ``BB`` left to expand)
  with rings open, an atom without branches that cannot close them all (no ring bonds, or a
  ring opened by the atom it is bonded to); without rings open, ring bonds that no later
  atom could close;
- on the last atom, ring-bond counts other than the number of open rings, and a ring digit
  that opens instead of closing;
- anywhere, closing a ring on the atom that opened it (``C11``) or on an atom bonded to its
  opener already (``C1C1``, ``C1(C)C1``: the atom before it in its chain, or the branch
  point for the first atom of a branch), or opening a ninth ring.

Every valid SMILES derivation passes these checks (the tests replay ZINC through them), so
they never change a decode the model gets right; they only redirect the ones it gets wrong.
They work on folded tokens (``grammar.folding``) of grammars with the SMILES grammar's
symbols and rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from grammar_ae.grammar.folding import FoldedGrammar

ATOM_SYMBOLS = ("chain", "branched_atom", "branch", "BB")
REQUIRED_SYMBOLS = (*ATOM_SYMBOLS, "RB", "ringbond", "DIGIT")
LABELS = 8  # ring digits 1..8
DEPTH = 16  # branch nesting followed (deeper branches are treated as the 16th level)


@dataclass
class RingState:
    """Per sequence: atom-producing and ring-bond symbols on the stack, open ring labels (bit
    mask), the branch depth, per depth the stack position where its branch began, whether it
    has an atom yet and the labels its last atom opened (the labels its next atom may not
    close), and whether the next DIGIT token is a ring label."""

    atom_symbols: Tensor
    ringbonds: Tensor
    open_rings: Tensor
    depth: Tensor
    branch_start: Tensor  # (B, DEPTH)
    has_atom: Tensor  # (B, DEPTH)
    opened_by_last: Tensor  # (B, DEPTH)
    bonded_labels: Tensor  # labels opened by the current atom or by the atom it is bonded to
    digit_pending: Tensor

    def select(self, rows: Tensor) -> RingState:
        return RingState(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))


class RingClosure:
    """The checks for one folded SMILES grammar (``applies`` says whether a grammar has the
    symbols they need)."""

    def __init__(self, folded: FoldedGrammar):
        grammar = folded.grammar
        index = grammar.symbol_index
        rules = grammar.rules

        def rule(lhs: str, rhs: tuple[str, ...]) -> int:
            return next(r.index for r in rules if r.lhs == lhs and r.rhs == rhs)

        tokens = folded.num_tokens
        table = {name: np.zeros(tokens, dtype=np.int64) for name in (
            "starts_atom", "atom_only", "adds_ring_bonds", "adds_branches", "ring_digit", "plain_digit",
            "more_ring_bonds", "last_ring_bond", "sets_pending", "opens_branch", "pushed_atom_symbols",
            "pushed_ringbonds")}
        digit_of = {rule("DIGIT", (str(d),)): d for d in range(1, LABELS + 1)}
        ringbond_digit, ringbond_bond = rule("ringbond", ("DIGIT",)), rule("ringbond", ("bond", "DIGIT"))
        rb_more, rb_one = rule("RB", ("RB", "ringbond")), rule("RB", ("ringbond",))
        branch_rules = {r.index for r in rules if r.lhs == "branch"}
        atom_symbols = {index[s] for s in ATOM_SYMBOLS}
        for token, path in enumerate(folded.paths[:-1]):
            atom_rules = [r for r in path if rules[r].lhs == "branched_atom"]
            if atom_rules:
                rhs = rules[atom_rules[0]].rhs
                table["starts_atom"][token] = 1
                table["atom_only"][token] = int(rhs == ("atom",))
                table["adds_ring_bonds"][token] = int("RB" in rhs)
                table["adds_branches"][token] = int("BB" in rhs)
            if path[-1] in digit_of:
                key = "ring_digit" if ringbond_digit in path else "plain_digit"
                table[key][token] = digit_of[path[-1]]
            table["more_ring_bonds"][token] = int(path[-1] == rb_more)
            table["last_ring_bond"][token] = int(rb_one in path)
            table["sets_pending"][token] = int(ringbond_bond in path)
            table["opens_branch"][token] = int(path[-1] in branch_rules)  # its chain sits where the token was
            pushed = folded.rhs_nonterminals[token]
            table["pushed_atom_symbols"][token] = sum(s in atom_symbols for s in pushed)
            table["pushed_ringbonds"][token] = sum(s == index["ringbond"] for s in pushed)
        symbols = len(grammar.lhs_symbols)
        self.is_atom_symbol = torch.zeros(symbols, dtype=torch.long)
        self.is_atom_symbol[[*atom_symbols, index[grammar.start]]] = 1  # the start symbol becomes the main chain
        self.is_ringbond = torch.zeros(symbols, dtype=torch.long)
        self.is_ringbond[index["ringbond"]] = 1
        self.tables = {name: torch.from_numpy(values) for name, values in table.items()}

    @staticmethod
    def applies(folded: FoldedGrammar) -> bool:
        grammar = folded.grammar
        return all(symbol in grammar.symbol_index for symbol in REQUIRED_SYMBOLS) and any(
            r.lhs == "ringbond" and r.rhs == ("DIGIT",) for r in grammar.rules)

    def to(self, device: torch.device) -> RingClosure:
        self.is_atom_symbol = self.is_atom_symbol.to(device)
        self.is_ringbond = self.is_ringbond.to(device)
        self.tables = {name: values.to(device) for name, values in self.tables.items()}
        return self

    def start(self, batch: int, device: torch.device) -> RingState:
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        levels = torch.zeros((batch, DEPTH), dtype=torch.long, device=device)
        return RingState(zeros + 1, zeros.clone(), zeros.clone(), zeros.clone(), levels, levels.bool(),
                         levels.clone(), zeros.clone(), zeros.bool())

    def _events(self, state: RingState, tokens: Tensor) -> Tensor:
        """The ring label each token places (1..8), 0 where it places none."""
        pending = state.digit_pending.view(-1, *([1] * (tokens.dim() - 1)))
        return self.tables["ring_digit"][tokens] + pending * self.tables["plain_digit"][tokens]

    def _depth(self, state: RingState, position: Tensor) -> Tensor:
        """The branch depth at a stack position: branches whose chain began above it are over."""
        starts = state.branch_start.gather(1, (state.depth.unsqueeze(1) - torch.arange(DEPTH, device=position.device)).clamp(0, DEPTH - 1))
        still_inside = (starts <= position.unsqueeze(1)) | (torch.arange(DEPTH, device=position.device) >= state.depth.unsqueeze(1))
        return state.depth - (~still_inside).long().cumprod(1).sum(1)

    def _bonded_before(self, state: RingState, depth: Tensor) -> Tensor:
        """The labels the next atom at ``depth`` may not close: those its bonded predecessor
        opened (the last atom of its level, or for a branch's first atom the branch point)."""
        level = depth.clamp(max=DEPTH - 1).unsqueeze(1)
        own = state.opened_by_last.gather(1, level)[:, 0]
        parent = state.opened_by_last.gather(1, (level - 1).clamp_min(0))[:, 0]
        first = ~state.has_atom.gather(1, level)[:, 0]
        return torch.where(first, torch.where(depth > 0, parent, 0), own)

    def allowed(self, state: RingState, top: Tensor, candidates: Tensor, position: Tensor) -> Tensor:
        """(B, K) True where candidate token k keeps sequence b closable (``position``: where
        the popped symbol was on the stack)."""
        t = {name: values[candidates] for name, values in self.tables.items()}
        last = ((state.atom_symbols - self.is_atom_symbol[top]) == 0).unsqueeze(1)
        ringbonds = (state.ringbonds - self.is_ringbond[top]).unsqueeze(1)
        open_count = _popcount(state.open_rings).unsqueeze(1)
        starts = t["starts_atom"].bool()
        # a new atom cannot close the rings its bonded predecessor opened
        predecessor = self._bonded_before(state, self._depth(state, position))
        closable = _popcount(state.open_rings & ~predecessor).unsqueeze(1)
        branches, ring_bonds = t["adds_branches"].bool(), t["adds_ring_bonds"].bool()
        ok = ~(last & starts & (open_count > 0) & ~branches & ~(ring_bonds & (closable == open_count)))
        ok &= ~(last & starts & (open_count == 0) & ring_bonds & ~branches)
        need_more = last & (ringbonds + 1 < open_count)
        ok &= ~(need_more & t["last_ring_bond"].bool()) & ~(last & ~need_more & t["more_ring_bonds"].bool())
        label = self._events(state, candidates)
        bit = torch.where(label > 0, 1 << (label - 1).clamp_min(0), 0)
        event = label > 0
        is_open = (state.open_rings.unsqueeze(1) & bit) != 0
        bonded = (state.bonded_labels.unsqueeze(1) & bit) != 0
        ok &= ~(event & last & ~is_open) & ~(event & is_open & bonded) & ~(event & ~is_open & (open_count >= LABELS))
        return ok

    def update(self, state: RingState, top: Tensor, chosen: Tensor, position: Tensor) -> RingState:
        t = {name: values[chosen] for name, values in self.tables.items()}
        depth = self._depth(state, position)
        level = depth.clamp(max=DEPTH - 1).unsqueeze(1)
        label = self._events(state, chosen)
        bit = torch.where(label > 0, 1 << (label - 1).clamp_min(0), 0)
        opening = (label > 0) & ((state.open_rings & bit) == 0)
        new_atom = t["starts_atom"].bool()
        # a new atom: its bonded predecessor's labels are barred, and it becomes its level's last atom
        bonded = torch.where(new_atom, self._bonded_before(state, depth), state.bonded_labels) | torch.where(opening, bit, 0)
        has_atom = state.has_atom.scatter(1, level, state.has_atom.gather(1, level) | new_atom.unsqueeze(1))
        last_opened = torch.where(new_atom, 0, state.opened_by_last.gather(1, level)[:, 0]) | torch.where(opening, bit, 0)
        opened_by_last = state.opened_by_last.scatter(1, level, last_opened.unsqueeze(1))
        # a branch: one level deeper, starting where its chain was pushed, with no atom yet
        enters = t["opens_branch"].bool()
        inner = (depth + 1).clamp(max=DEPTH - 1).unsqueeze(1)
        branch_start = torch.where(enters.unsqueeze(1), state.branch_start.scatter(1, inner, position.unsqueeze(1)),
                                   state.branch_start)
        has_atom = torch.where(enters.unsqueeze(1), has_atom.scatter(1, inner, False), has_atom)
        return RingState(
            atom_symbols=state.atom_symbols - self.is_atom_symbol[top] + t["pushed_atom_symbols"],
            ringbonds=state.ringbonds - self.is_ringbond[top] + t["pushed_ringbonds"],
            open_rings=state.open_rings ^ bit,
            depth=depth + enters.long(),
            branch_start=branch_start,
            has_atom=has_atom,
            opened_by_last=opened_by_last,
            bonded_labels=bonded,
            digit_pending=t["sets_pending"].bool() | (state.digit_pending & (t["plain_digit"] == 0)),
        )


def _popcount(bits: Tensor) -> Tensor:
    count = torch.zeros_like(bits)
    for label in range(LABELS):
        count += (bits >> label) & 1
    return count
