"""Chemistry checks while decoding SMILES (semantic masks, as in the syntax-directed VAE).

The SMILES grammar pairs ring-bond digits and counts bonds only by meaning: ``C1CCCCC1`` is
a ring and ``C1CCCCC`` is not a molecule, ``CC(C)(C)(C)C`` is neopentane and
``CC(C)(C)(C)(C)C`` is not. Decoding keeps, per sequence, what it needs to know and removes
the choices that cannot lead to a valid molecule:

Rings (open ring labels, and the atom-producing symbols ``chain``, ``branched_atom``,
``branch``, ``BB`` still on the stack):

- on the last atom, with rings open, an atom without branches that cannot close them all
  (no ring bonds, or a ring opened by the atom it is bonded to); without rings open, ring
  bonds that no later atom could close;
- on the last atom, ring-bond counts other than the number of open rings, and a ring digit
  that opens instead of closing;
- anywhere, closing a ring on the atom that opened it (``C11``) or on an atom bonded to its
  opener already (``C1C1``, ``C1(C)C1``), or opening a ninth ring.

Valence (per branch level, the free valence of its last atom; bonds are reserved when the
structure that needs them is chosen; a bracket atom's valence follows its element, charge
and hydrogen count, ``CHARGED_VALENCE``):

- an element whose largest valence (``VALENCE``; for aromatic atoms their neighbours and
  exocyclic double bonds) is below the bonds its place already needs: the bond to the atom
  before it, one to the next atom of its chain, one per ring bond and branch its structure
  names;
- one more ring bond or branch on an atom without free valence, a hydrogen count on a
  bracket atom without room for one, and a double or triple bond that its atoms cannot take
  (a ring bond's order, written where the ring opens or where it closes, is taken from both
  its atoms; after its brackets an atom's free valence only decreases).

Every valid SMILES derivation passes these checks (the tests replay ZINC through them, as
written and in Kekulé form), so they never change a decode the model gets right; they
only redirect the ones it gets wrong.

Ring sizes are a preference, not a check (the second mask of ``masks``; decoding applies it
where it leaves a choice): a ring closes only when its bond can end up in a ring of at most
``max_ring_size`` atoms (7: the MOSES filters reject rings of 8 or more, 0.3 % of ZINC; None:
no preference), and an atom closes the rings that no later atom could close within that
size. Sizes are exact graph distances, kept per sequence between the atoms a later bond can
reach: each open ring's opening atom and each branch level's last atom (a fused ring closes
over the bonds of the rings before it). A later atom reaches the molecule through one of
those atoms, so the smallest ring it could close is known before it is placed; an atom that
closes several rings may close each over the bond of another, and a bridge still to come
(later atoms from the closing atom, or an atom near it, to an atom near the opener) may
make a smaller ring of the one closed now. A large ring fused to a smaller one closed later
is not caught (its bond lies in the smaller ring). Every Kekulé ZINC molecule whose rings
have at most 7 atoms is preferred token by token (the tests replay every 100th; every 10th
was checked too).

Aromaticity is not checked: a model of Kekulé SMILES (``kekulize``) needs none. The checks
work on folded tokens (``grammar.folding``) of grammars with the SMILES grammar's symbols
and rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from grammar_ae.grammar.folding import FoldedGrammar

ATOM_SYMBOLS = ("chain", "branched_atom", "branch", "BB")
REQUIRED_SYMBOLS = (*ATOM_SYMBOLS, "RB", "ringbond", "DIGIT", "bond", "atom", "hcount")
LABELS = 8  # ring digits 1..8
DEPTH = 16  # branch nesting followed (deeper branches are treated as the 16th level)
VALENCE = {"B": 3, "C": 4, "N": 3, "O": 2, "S": 6, "P": 5, "F": 1, "Cl": 1, "Br": 1, "I": 1,
           "c": 4, "n": 3, "o": 2, "s": 4}
BRACKET_VALENCE = 8  # a bracket atom before its element, charge and hydrogens are known
BOND_ORDER = {"-": 1, "=": 2, "#": 3, "/": 1, "\\": 1}
CHARGED_VALENCE = {  # largest valence at charge -1, 0, +1 (isoelectronic neighbours), in brackets
    "B": (4, 3, 2), "C": (3, 4, 3), "N": (2, 3, 4), "O": (1, 2, 3), "S": (5, 6, 5), "P": (6, 5, 4),
    "F": (0, 1, 2), "Cl": (0, 1, 2), "Br": (0, 1, 2), "I": (0, 1, 2),
    "c": (4, 4, 4), "n": (3, 3, 4), "o": (2, 2, 3), "s": (4, 4, 4),
}
MAX_RING_SIZE = 7
ANCHORS = LABELS + DEPTH  # distance slots: the opener of each ring label, then each level's last atom
FAR = 64  # distances at or beyond it are "not connected yet"
NO_CHARGE_AFTER = (("BAI", ("symbol",)), ("BAI", ("isotope", "symbol")), ("BAC", ("chiral",)), ("BAH", ("hcount",)))


@dataclass
class SmilesState:
    """Per sequence: symbols on the stack that produce atoms and ring bonds, open ring labels
    (a bit mask) with their bond orders, the branch depth, per depth the stack position its
    branch began at, whether it has an atom, its last atom's free valence and ring labels,
    branched atoms still to come in it, and what the pending choices need."""

    atom_symbols: Tensor
    ringbonds: Tensor
    open_rings: Tensor
    depth: Tensor
    branch_start: Tensor  # (B, DEPTH)
    has_atom: Tensor  # (B, DEPTH)
    opened_by_last: Tensor  # (B, DEPTH)
    free: Tensor  # (B, DEPTH)
    atoms_to_come: Tensor  # (B, DEPTH) branched_atom symbols of the level on the stack
    bonded_labels: Tensor  # labels opened by the current atom or by the atom it is bonded to
    digit_pending: Tensor  # the next DIGIT token is a ring label
    bond_order: Tensor  # the order of the bond to the next atom (0: the first atom)
    needed: Tensor  # bonds the current atom needs before its element is chosen
    ring_extra: Tensor  # of those, ring bonds its last-atom structure has not named yet
    element: Tensor  # the current bracket atom's element (an index of CHARGED_VALENCE + 1; 0: none)
    hydrogens: Tensor  # its hydrogen count
    charge: Tensor  # its charge (-1, 0, +1)
    charge_closed: Tensor  # no charge can follow in its bracket
    digit_role: Tensor  # the next DIGIT token: 1 a hydrogen count, 2 / -2 a charge's size, 0 other
    written_order: Tensor  # the order written before the ring digit that follows (0: none)
    ring_order: Tensor  # (B, LABELS) the order written where each open ring opened (0: none)
    opener_free: Tensor  # (B, LABELS) the free valence of each open ring's opening atom
    distance: Tensor  # (B, ANCHORS, ANCHORS) graph distances between ring openers and levels' last atoms
    must_close: Tensor  # ring labels the current atom should close (no later atom could, within the size)
    has_branches: Tensor  # the current atom's structure names branches
    atom_count: Tensor  # atoms so far
    opener_atom: Tensor  # (B, LABELS) which atom opened each open ring (its count)

    def select(self, rows: Tensor) -> SmilesState:
        return SmilesState(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))


class SmilesChecks:
    """The checks for one folded SMILES grammar (``applies`` says whether a grammar has the
    symbols and rules they need)."""

    def __init__(self, folded: FoldedGrammar, max_ring_size: int | None = MAX_RING_SIZE):
        if max_ring_size is not None and not 3 <= max_ring_size < FAR - 2:
            raise ValueError(f"max_ring_size must be None or in [3, {FAR - 3}], got {max_ring_size}")
        self.max_ring_size = max_ring_size  # None: no preference
        grammar = folded.grammar
        index = grammar.symbol_index
        rules = grammar.rules

        def rule(lhs: str, rhs: tuple[str, ...]) -> int:
            return next(r.index for r in rules if r.lhs == lhs and r.rhs == rhs)

        tokens = folded.num_tokens
        table = {name: np.zeros(tokens, dtype=np.int64) for name in (
            "starts_atom", "adds_ring_bonds", "adds_branches", "valence", "ring_digit", "plain_digit",
            "more_ring_bonds", "last_ring_bond", "more_branches", "sets_pending", "opens_branch",
            "order", "pushed_atom_symbols", "pushed_ringbonds", "pushed_branched_atoms",
            "bracket_element", "hydrogens", "hydrogen_digit", "charge", "charge_digit", "closes_charge",
            "pushes_hydrogens")}
        digit_of = {rule("DIGIT", (str(d),)): d for d in range(1, LABELS + 1)}
        ringbond_digit, ringbond_bond = rule("ringbond", ("DIGIT",)), rule("ringbond", ("bond", "DIGIT"))
        rb_more, rb_one, bb_more = rule("RB", ("RB", "ringbond")), rule("RB", ("ringbond",)), rule("BB", ("BB", "branch"))
        branch_rules = {r.index for r in rules if r.lhs == "branch"}
        elements = {r.index: VALENCE.get(r.rhs[0], BRACKET_VALENCE) for r in rules
                    if r.lhs in ("aliphatic_organic", "aromatic_organic")}
        elements[rule("bracket_atom", ("[", "BAI", "]"))] = BRACKET_VALENCE
        orders = {r.index: BOND_ORDER[r.rhs[0]] for r in rules if r.lhs == "bond"}
        element_names = list(CHARGED_VALENCE)
        symbol_elements = {r.index: element_names.index(r.rhs[0]) + 1 for r in rules
                           if r.lhs in ("aliphatic_organic", "aromatic_organic") and r.rhs[0] in CHARGED_VALENCE}
        closes_charge = {rule(lhs, rhs) for lhs, rhs in NO_CHARGE_AFTER}
        atom_symbols = {index[s] for s in ATOM_SYMBOLS}
        for token, path in enumerate(folded.paths[:-1]):
            atom_rules = [r for r in path if rules[r].lhs == "branched_atom"]
            if atom_rules:
                rhs = rules[atom_rules[0]].rhs
                table["starts_atom"][token] = 1
                table["adds_ring_bonds"][token] = int("RB" in rhs)
                table["adds_branches"][token] = int("BB" in rhs)
            if any(rules[r].lhs == "atom" for r in path):  # an atom's element (not one inside brackets)
                table["valence"][token] = elements.get(path[-1], 0)
            table["order"][token] = orders.get(path[-1], 0)
            if any(rules[r].lhs == "symbol" for r in path):  # an element inside brackets
                table["bracket_element"][token] = symbol_elements.get(path[-1], 0)
            hydrogen = [r for r in path if rules[r].lhs == "hcount"]
            if hydrogen:
                table["hydrogens"][token] = 1
                table["hydrogen_digit"][token] = int(rules[hydrogen[0]].rhs == ("H", "DIGIT"))
            charge = [r for r in path if rules[r].lhs == "charge"]
            if charge:
                sign = 1 if rules[charge[0]].rhs[0] == "+" else -1
                table["charge"][token] = sign
                table["charge_digit"][token] = sign * int(len(rules[charge[0]].rhs) > 1)
            table["closes_charge"][token] = int(bool(closes_charge & set(path)) or bool(charge))
            if path[-1] in digit_of:
                key = "ring_digit" if ringbond_digit in path else "plain_digit"
                table[key][token] = digit_of[path[-1]]
            table["more_ring_bonds"][token] = int(path[-1] == rb_more)
            table["last_ring_bond"][token] = int(rb_one in path)
            table["more_branches"][token] = int(path[-1] == bb_more)
            table["sets_pending"][token] = int(ringbond_bond in path)
            table["opens_branch"][token] = int(path[-1] in branch_rules)  # its chain sits where the token was
            pushed = folded.rhs_nonterminals[token]
            table["pushed_atom_symbols"][token] = sum(s in atom_symbols for s in pushed)
            table["pushed_ringbonds"][token] = sum(s == index["ringbond"] for s in pushed)
            table["pushed_branched_atoms"][token] = sum(s == index["branched_atom"] for s in pushed)
            table["pushes_hydrogens"][token] = int(index["hcount"] in pushed)  # at least one hydrogen to come
        symbols = len(grammar.lhs_symbols)
        self.is_atom_symbol = torch.zeros(symbols, dtype=torch.long)
        self.is_atom_symbol[[*atom_symbols, index[grammar.start]]] = 1  # the start symbol becomes the main chain
        self.is_ringbond = torch.zeros(symbols, dtype=torch.long)
        self.is_ringbond[index["ringbond"]] = 1
        self.is_branched_atom = torch.zeros(symbols, dtype=torch.long)
        self.is_branched_atom[index["branched_atom"]] = 1
        self.tables = {name: torch.from_numpy(values) for name, values in table.items()}
        # (elements + 1, charges -9..9): the largest valence of a bracket atom; row 0 (element
        # not known yet) and charges beyond +-1 put no limit
        valence = torch.full((len(element_names) + 1, 19), BRACKET_VALENCE, dtype=torch.long)
        for row, name in enumerate(element_names, start=1):
            valence[row, 8:11] = torch.tensor(CHARGED_VALENCE[name])
        self.charged_valence = valence

    @staticmethod
    def applies(folded: FoldedGrammar) -> bool:
        grammar = folded.grammar
        rules = {(r.lhs, r.rhs) for r in grammar.rules}
        return all(symbol in grammar.symbol_index for symbol in REQUIRED_SYMBOLS) and {
            ("ringbond", ("DIGIT",)), ("ringbond", ("bond", "DIGIT")), ("RB", ("RB", "ringbond")),
            ("RB", ("ringbond",)), ("BB", ("BB", "branch")), ("bracket_atom", ("[", "BAI", "]")),
        } <= rules and all((("DIGIT", (str(d),)) in rules) for d in range(1, LABELS + 1))

    def to(self, device: torch.device) -> SmilesChecks:
        for name in ("is_atom_symbol", "is_ringbond", "is_branched_atom", "charged_valence"):
            setattr(self, name, getattr(self, name).to(device))
        self.tables = {name: values.to(device) for name, values in self.tables.items()}
        return self

    def start(self, batch: int, device: torch.device) -> SmilesState:
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        levels = torch.zeros((batch, DEPTH), dtype=torch.long, device=device)
        return SmilesState(
            atom_symbols=zeros + 1, ringbonds=zeros.clone(), open_rings=zeros.clone(), depth=zeros.clone(),
            branch_start=levels, has_atom=levels.bool(), opened_by_last=levels.clone(), free=levels.clone(),
            atoms_to_come=levels.clone(), bonded_labels=zeros.clone(), digit_pending=zeros.bool(),
            bond_order=zeros.clone(), needed=zeros.clone(), ring_extra=zeros.clone(), element=zeros.clone(),
            hydrogens=zeros.clone(),
            charge=zeros.clone(), charge_closed=zeros.bool(), digit_role=zeros.clone(),
            written_order=zeros.clone(), ring_order=levels[:, :LABELS].clone(), opener_free=levels[:, :LABELS].clone(),
            distance=torch.full((batch, ANCHORS, ANCHORS), FAR, dtype=torch.long, device=device),
            must_close=zeros.clone(), has_branches=zeros.bool(), atom_count=zeros.clone(),
            opener_atom=levels[:, :LABELS].clone(),
        )

    # -- helpers ---------------------------------------------------------------------------
    def _events(self, state: SmilesState, tokens: Tensor) -> Tensor:
        """The ring label each token places (1..8), 0 where it places none."""
        pending = state.digit_pending.view(-1, *([1] * (tokens.dim() - 1)))
        return self.tables["ring_digit"][tokens] + pending * self.tables["plain_digit"][tokens]

    @staticmethod
    def _depth(state: SmilesState, position: Tensor) -> Tensor:
        """The branch depth at a stack position: branches whose chain began above it are over."""
        levels = torch.arange(DEPTH, device=position.device)
        starts = state.branch_start.gather(1, (state.depth.unsqueeze(1) - levels).clamp(0, DEPTH - 1))
        still_inside = (starts <= position.unsqueeze(1)) | (levels >= state.depth.unsqueeze(1))
        return state.depth - (~still_inside).long().cumprod(1).sum(1)

    @staticmethod
    def _at(values: Tensor, level: Tensor) -> Tensor:
        return values.gather(1, level.clamp(0, DEPTH - 1).unsqueeze(1))[:, 0]

    @staticmethod
    def _put(values: Tensor, level: Tensor, new: Tensor) -> Tensor:
        return values.scatter(1, level.clamp(0, DEPTH - 1).unsqueeze(1), new.unsqueeze(1))

    def _predecessor_level(self, state: SmilesState, depth: Tensor) -> Tensor:
        """The level of the atom the next atom at ``depth`` bonds to: its own level's last atom,
        or for a branch's first atom the branch point one level up (-1: no atom before)."""
        first = ~self._at(state.has_atom, depth)
        return torch.where(first, depth - 1, depth)

    def _context(self, state: SmilesState, top: Tensor, position: Tensor) -> dict[str, Tensor]:
        depth = self._depth(state, position)
        before = self._predecessor_level(state, depth)
        has_before = before >= 0
        return {
            "depth": depth,
            "before": before,
            "last": (state.atom_symbols - self.is_atom_symbol[top]) == 0,
            "ringbonds": state.ringbonds - self.is_ringbond[top],
            "to_come": self._at(state.atoms_to_come, depth) - self.is_branched_atom[top],
            "barred": torch.where(has_before, self._at(state.opened_by_last, before), 0),
            "free_before": torch.where(has_before, self._at(state.free, before), 99),
            "free_here": self._at(state.free, depth),
            "order_in": torch.where(has_before, state.bond_order.clamp_min(1), 0),
        }

    @staticmethod
    def _structure(t: dict[str, Tensor], c: dict[str, Tensor], open_count: Tensor) -> tuple[Tensor, Tensor]:
        """Bonds a new atom needs, and how many of them are ring bonds its structure does not
        name yet: to its predecessor, to the next atom of its chain, one per branch and ring
        bond, and on the last atom as many ring bonds as rings are open (its ring-bond count
        is chosen later, one ring bond at a time)."""
        named = c["order_in"] + (c["to_come"] > 0).long() + t["adds_ring_bonds"] + t["adds_branches"]
        extra = torch.where(c["last"] & t["adds_ring_bonds"].bool(), (open_count - 1).clamp_min(0), 0)
        return named + extra, extra

    def _bracket(self, state: SmilesState, t: dict[str, Tensor]) -> dict[str, Tensor]:
        """The current bracket atom after a token: element, hydrogens, charge, whether a charge
        can still follow, and its largest valence given what is known (no limit before the
        element is known, the best charge while one may follow)."""
        shape = t["charge"].shape

        def held(values: Tensor) -> Tensor:
            return values.view(-1, *([1] * (len(shape) - 1))).expand(shape)

        fresh = t["starts_atom"].bool() | (t["valence"] > 0)  # a new atom: its bracket (if any) starts empty
        role, digit = held(state.digit_role), t["plain_digit"]
        element = torch.where(t["bracket_element"] > 0, t["bracket_element"], torch.where(fresh, 0, held(state.element)))
        hydrogens = torch.where(fresh, 0, held(state.hydrogens))
        hydrogens = torch.where(t["hydrogens"] > 0, t["hydrogens"], hydrogens)
        hydrogens = torch.where((role == 1) & (digit > 0), digit, hydrogens)
        charge = torch.where(fresh, 0, held(state.charge))
        charge = torch.where(t["charge"] != 0, t["charge"], charge)
        charge = torch.where((role.abs() == 2) & (digit > 0), role.sign() * digit, charge).clamp(-9, 9)
        closed = (torch.where(fresh, False, held(state.charge_closed)) | t["closes_charge"].bool())
        by_charge = self.charged_valence[element]  # (..., 19)
        exact = by_charge.gather(-1, (charge + 9).unsqueeze(-1)).squeeze(-1)
        best = by_charge[..., 8:11].max(-1).values
        return {"element": element, "hydrogens": hydrogens, "charge": charge, "closed": closed,
                "valence": torch.where(closed, exact, best), "fresh": fresh}

    # -- ring sizes -----------------------------------------------------------------------------
    @staticmethod
    def _level_slot(level: Tensor) -> Tensor:
        return LABELS + level.clamp(0, DEPTH - 1)

    @staticmethod
    def _row(distance: Tensor, slot: Tensor) -> Tensor:
        """(B, ANCHORS) distances from anchor ``slot`` (B,)."""
        return distance.gather(1, slot.view(-1, 1, 1).expand(-1, 1, ANCHORS)).squeeze(1)

    @staticmethod
    def _set_anchor(distance: Tensor, slot: Tensor, row: Tensor, rows: Tensor) -> Tensor:
        """``distance`` with anchor ``slot`` (B,) at distances ``row`` (B, ANCHORS), where ``rows``."""
        row = row.scatter(1, slot.unsqueeze(1), 0)
        index = slot.view(-1, 1, 1)
        updated = distance.scatter(1, index.expand(-1, 1, ANCHORS), row.unsqueeze(1))
        updated = updated.scatter(2, index.expand(-1, ANCHORS, 1), row.unsqueeze(2))
        return torch.where(rows.view(-1, 1, 1), updated, distance)

    def _new_atom_distances(self, state: SmilesState, c: dict[str, Tensor]) -> Tensor:
        """(B, ANCHORS) distances from an atom placed now: one bond beyond its predecessor."""
        before = self._row(state.distance, self._level_slot(c["before"]))
        return torch.where((c["before"] >= 0).unsqueeze(1), before + 1, FAR).clamp(max=FAR)

    def _must_close(self, state: SmilesState, c: dict[str, Tensor], atom: Tensor) -> Tensor:
        """Ring labels (bits) an atom placed now at distances ``atom`` should close: open rings it
        can close within the size that no later atom could. A later atom bonds to this atom, to
        an outer level's last atom or to another open ring's opener, so it is at least one bond
        beyond the nearest of them."""
        if self.max_ring_size is None:
            return torch.zeros_like(state.must_close)
        labels = torch.arange(LABELS, device=atom.device)
        is_open = _label_bits(state.open_rings)  # (B, LABELS)
        other_openers = is_open.unsqueeze(2) & (labels.unsqueeze(1) != labels)  # (B, opener, ring)
        outer = torch.arange(DEPTH, device=atom.device) < c["depth"].unsqueeze(1)  # (B, DEPTH)
        entry = torch.cat([other_openers, outer.unsqueeze(2).expand(-1, -1, LABELS)], dim=1)
        nearest = torch.where(entry, state.distance[:, :, :LABELS], FAR).amin(1)  # (B, LABELS)
        to_opener = atom[:, :LABELS]
        later = torch.minimum(nearest, to_opener) + 2 <= self.max_ring_size
        must = is_open & ~later & (to_opener + 1 <= self.max_ring_size)
        return (must.long() << labels).sum(1)

    def _distances_after(self, state: SmilesState, c: dict[str, Tensor], new_atom: Tensor, label: Tensor,
                         opening: Tensor) -> tuple[Tensor, Tensor]:
        """Distances and must-close labels after a token: a new atom takes its level's slot, a
        ring opening copies its atom into the label's slot, a closure adds its bond (every
        distance through it shortens) and frees the label's slot."""
        distance = state.distance
        atom = self._new_atom_distances(state, c)
        here = self._level_slot(c["depth"])
        must_close = torch.where(new_atom, self._must_close(state, c, atom), state.must_close)
        distance = self._set_anchor(distance, here, atom, new_atom)
        opener = (label - 1).clamp_min(0)
        distance = self._set_anchor(distance, opener, self._row(distance, here), opening)
        closing = (label > 0) & ~opening
        from_opener, from_atom = self._row(distance, opener), self._row(distance, here)
        shortcut = torch.minimum(from_opener.unsqueeze(2) + 1 + from_atom.unsqueeze(1),
                                 from_atom.unsqueeze(2) + 1 + from_opener.unsqueeze(1))
        closed = torch.minimum(distance, shortcut).clamp(max=FAR)
        freed = torch.full_like(from_opener, FAR)
        distance = torch.where(closing.view(-1, 1, 1), self._set_anchor(closed, opener, freed, closing), distance)
        bit = torch.where(label > 0, 1 << opener, 0)
        return distance, torch.where(closing, must_close & ~bit, must_close)

    # -- the checks -------------------------------------------------------------------------
    def allowed(self, state: SmilesState, top: Tensor, candidates: Tensor, position: Tensor) -> Tensor:
        """(B, K) True where candidate token k keeps sequence b valid (``position``: where the
        popped symbol was on the stack)."""
        return self.masks(state, top, candidates, position)[0]

    def masks(self, state: SmilesState, top: Tensor, candidates: Tensor, position: Tensor) -> tuple[Tensor, Tensor]:
        """``allowed`` and (B, K) ``preferred``: the candidates that keep rings within
        ``max_ring_size`` atoms (close no larger ring, leave no ring that only this atom can
        close open)."""
        t = {name: values[candidates] for name, values in self.tables.items()}
        context = self._context(state, top, position)
        c = {name: value.unsqueeze(1) for name, value in context.items()}
        last, open_count = c["last"], _popcount(state.open_rings).unsqueeze(1)
        starts, branches, ring_bonds = t["starts_atom"].bool(), t["adds_branches"].bool(), t["adds_ring_bonds"].bool()
        # rings
        closable = _popcount(state.open_rings.unsqueeze(1) & ~c["barred"])
        ok = ~(last & starts & (open_count > 0) & ~branches & ~(ring_bonds & (closable == open_count)))
        ok &= ~(last & starts & (open_count == 0) & ring_bonds & ~branches)
        need_more = last & (c["ringbonds"] + 1 < open_count)
        ok &= ~(need_more & t["last_ring_bond"].bool()) & ~(last & ~need_more & t["more_ring_bonds"].bool())
        label = self._events(state, candidates)
        bit = torch.where(label > 0, 1 << (label - 1).clamp_min(0), 0)
        event = label > 0
        is_open = (state.open_rings.unsqueeze(1) & bit) != 0
        bonded = (state.bonded_labels.unsqueeze(1) & bit) != 0
        ok &= ~(event & last & ~is_open) & ~(event & is_open & bonded) & ~(event & ~is_open & (open_count >= LABELS))
        # valence: an element must take the bonds its place needs
        needed = torch.where(starts, self._structure(t, c, open_count)[0], state.needed.unsqueeze(1))
        ok &= ~((t["valence"] > 0) & (t["valence"] < needed))
        bracket = self._bracket(state, t)
        ok &= ~(~bracket["fresh"] & (bracket["valence"] - bracket["hydrogens"] - t["pushes_hydrogens"] < needed))
        ok &= ~((t["more_ring_bonds"] + t["more_branches"]).bool() & (c["free_here"] < 1))
        bond_free = torch.where(state.digit_pending.unsqueeze(1), c["free_here"], c["free_before"])
        ok &= ~((t["order"] > 1) & (bond_free < t["order"] - 1))
        opener = (label - 1).clamp_min(0)
        closing, written = event & is_open, state.written_order.unsqueeze(1)
        opened_with = state.ring_order.gather(1, opener)
        ok &= ~(closing & (written == 0) & (c["free_here"] < opened_with - 1))
        ok &= ~(closing & (opened_with == 0) & (state.opener_free.gather(1, opener) < written - 1))
        # the last atom's ring bonds all close: a bond order needs an open ring whose opener takes it
        closable_now = _label_bits(state.open_rings & ~context["barred"])  # (B, LABELS)
        order = t["order"].unsqueeze(2)  # (B, K, 1) against every ring
        takes = closable_now.unsqueeze(1) & torch.where(
            state.ring_order.unsqueeze(1) == 0, state.opener_free.unsqueeze(1) >= order - 1, state.ring_order.unsqueeze(1) == order)
        pending_order = state.digit_pending.unsqueeze(1) & (t["order"] > 1)
        ok &= ~(last & pending_order & ~takes.any(2))
        if self.max_ring_size is None:
            return ok, torch.ones_like(ok)
        # ring sizes (distances are symmetric: a row of the opener is its column)
        from_here = self._row(state.distance, self._level_slot(context["depth"]))  # (B, ANCHORS)
        from_opener = state.distance.gather(1, opener.unsqueeze(2).expand(-1, -1, ANCHORS))  # (B, K, ANCHORS)
        here = from_here.gather(1, opener)
        # an atom closing several rings: each ring may go through the bond of another closed here
        via_other = torch.where(_label_bits(state.open_rings.unsqueeze(1) & ~bit), from_opener[..., :LABELS], FAR)
        shortest = torch.where(c["ringbonds"] > 0, torch.minimum(here, via_other.amin(2) + 1), here)
        # a bridge still to come may make a smaller ring of this one: later atoms joining this
        # atom (or, when it has no later neighbours, an entry near it) to an entry near the
        # opener; entries are outer levels' last atoms and other rings' openers
        anchors = torch.arange(ANCHORS, device=bit.device)
        outer = (anchors >= LABELS) & (anchors - LABELS < context["depth"].unsqueeze(1))  # (B, ANCHORS)
        entries = outer | torch.cat([_label_bits(state.open_rings), torch.zeros_like(outer[:, LABELS:])], dim=1)
        not_opener = anchors.view(1, 1, -1) != opener.unsqueeze(2)  # (B, K, ANCHORS)
        to_opener = torch.where(entries.unsqueeze(1) & not_opener, from_opener, FAR).amin(2)
        successors = (context["to_come"] > 0) | state.has_branches
        from_atom = torch.where(successors, 0, torch.where(entries, from_here, FAR).amin(1))
        shortest = torch.minimum(shortest, (from_atom.unsqueeze(1) + 2 + to_opener).clamp(max=FAR))
        must = state.must_close.unsqueeze(1)
        next_must = self._must_close(state, context, self._new_atom_distances(state, context)).unsqueeze(1)
        preferred = ~(closing & (shortest + 1 > self.max_ring_size))
        preferred &= ~(event & ((must & bit) == 0) & (c["ringbonds"] < _popcount(must)))
        preferred &= ~(t["last_ring_bond"].bool() & (c["ringbonds"] + 1 < _popcount(must)))
        preferred &= ~(starts & (next_must != 0) & ~ring_bonds)
        return ok, preferred

    def update(self, state: SmilesState, top: Tensor, chosen: Tensor, position: Tensor) -> SmilesState:
        t = {name: values[chosen] for name, values in self.tables.items()}
        c = self._context(state, top, position)
        depth, level = c["depth"], c["depth"]
        label = self._events(state, chosen)
        bit = torch.where(label > 0, 1 << (label - 1).clamp_min(0), 0)
        opening = (label > 0) & ((state.open_rings & bit) == 0)
        new_atom = t["starts_atom"].bool()
        typed = t["valence"] > 0
        # a new atom: bonded to its predecessor, the last atom of its level from now on
        bonded = torch.where(new_atom, c["barred"], state.bonded_labels) | torch.where(opening, bit, 0)
        has_atom = self._put(state.has_atom, level, self._at(state.has_atom, level) | new_atom)
        closing = (label > 0) & ~opening
        last_opened = torch.where(new_atom, 0, self._at(state.opened_by_last, level)) | torch.where(opening, bit, 0)
        opened_by_last = self._put(state.opened_by_last, level, last_opened) & ~torch.where(closing, bit, 0).unsqueeze(1)
        to_come = self._put(state.atoms_to_come, level, c["to_come"] + t["pushed_branched_atoms"])
        structure, extra = self._structure(t, c, _popcount(state.open_rings))
        needed = torch.where(new_atom, structure, state.needed)
        ring_extra = torch.where(new_atom, extra, state.ring_extra)
        bracket = self._bracket(state, t)
        # inside the brackets the free valence follows what they say; after them it only decreases
        says = (t["bracket_element"] > 0) | (t["hydrogens"] > 0) | (t["charge"] != 0) | t["closes_charge"].bool()
        says |= (state.digit_role != 0) & (t["plain_digit"] > 0)
        in_bracket = ~bracket["fresh"] & (bracket["element"] > 0) & says
        named = needed - ring_extra  # the extra ring bonds are taken from the free valence one by one
        free_here = torch.where(typed, t["valence"] - named, c["free_here"])
        free_here = torch.where(in_bracket, bracket["valence"] - bracket["hydrogens"] - named, free_here)
        free_here = free_here - t["more_ring_bonds"] - t["more_branches"]
        ring_bond = state.digit_pending & (t["order"] > 0)
        free_here = free_here - torch.where(ring_bond, (t["order"] - 1).clamp_min(0), 0)
        opener = (label - 1).clamp_min(0)
        opened_with = state.ring_order.gather(1, opener.unsqueeze(1))[:, 0]
        free_here = free_here - torch.where(closing & (state.written_order == 0), (opened_with - 1).clamp_min(0), 0)
        ring_order = torch.where(opening.unsqueeze(1), state.ring_order.scatter(1, opener.unsqueeze(1), state.written_order.unsqueeze(1)), state.ring_order)
        free = self._put(state.free, level, free_here)
        chain_bond = ~state.digit_pending & (t["order"] > 0)
        free_before = c["free_before"] - torch.where(chain_bond, (t["order"] - 1).clamp_min(0), 0)
        free = torch.where((chain_bond & (c["before"] >= 0)).unsqueeze(1), self._put(free, c["before"], free_before), free)
        # an order written only where a ring closes is taken from its opener too
        extra = torch.where(closing & (opened_with == 0), (state.written_order - 1).clamp_min(0), 0)
        free = free - torch.where((state.opened_by_last & bit.unsqueeze(1)) != 0, extra.unsqueeze(1), 0)
        atom_count = state.atom_count + new_atom.long()
        same_opener = state.opener_atom == state.opener_atom.gather(1, opener.unsqueeze(1))  # (B, LABELS)
        earlier_free = state.opener_free - torch.where(same_opener, extra.unsqueeze(1), 0)
        opener_atom = torch.where(opening.unsqueeze(1), state.opener_atom.scatter(1, opener.unsqueeze(1), atom_count.unsqueeze(1)), state.opener_atom)
        bond_order = torch.where(chain_bond, t["order"], torch.where(new_atom, 1, state.bond_order))
        # a branch: one level deeper, starting where its chain was pushed, with no atom yet
        enters = t["opens_branch"].bool()
        inner = (depth + 1).clamp(max=DEPTH - 1)
        branch_start = torch.where(enters.unsqueeze(1), self._put(state.branch_start, inner, position), state.branch_start)
        has_atom = torch.where(enters.unsqueeze(1), self._put(has_atom, inner, torch.zeros_like(new_atom)), has_atom)
        to_come = torch.where(enters.unsqueeze(1), self._put(to_come, inner, torch.zeros_like(depth)), to_come)
        distance, must_close = state.distance, state.must_close
        if self.max_ring_size is not None:
            distance, must_close = self._distances_after(state, c, new_atom, label, opening)
        # each open ring's opener: the free valence of the level it is (or was last) the atom of
        opened = _label_bits(opened_by_last)  # (B, DEPTH, LABELS)
        opener_free = torch.where(opened.any(1), (opened * free.unsqueeze(2)).sum(1), earlier_free)
        return SmilesState(
            atom_symbols=state.atom_symbols - self.is_atom_symbol[top] + t["pushed_atom_symbols"],
            ringbonds=c["ringbonds"] + t["pushed_ringbonds"],
            open_rings=state.open_rings ^ bit,
            depth=depth + enters.long(),
            branch_start=branch_start,
            has_atom=has_atom,
            opened_by_last=opened_by_last,
            free=free,
            atoms_to_come=to_come,
            bonded_labels=bonded,
            digit_pending=t["sets_pending"].bool() | (state.digit_pending & (t["plain_digit"] == 0)),
            bond_order=torch.where(enters, 1, bond_order),
            needed=needed,
            ring_extra=ring_extra,
            element=bracket["element"],
            hydrogens=bracket["hydrogens"],
            charge=bracket["charge"],
            charge_closed=bracket["closed"],
            digit_role=torch.where(t["hydrogen_digit"] > 0, 1, torch.where(t["charge_digit"] != 0, 2 * t["charge_digit"], 0)),
            has_branches=torch.where(new_atom, t["adds_branches"].bool(), state.has_branches),
            atom_count=atom_count,
            opener_atom=opener_atom,
            written_order=torch.where(ring_bond, t["order"], torch.where(label > 0, 0, state.written_order)),
            ring_order=ring_order,
            opener_free=opener_free,
            distance=distance,
            must_close=must_close,
        )


def _label_bits(mask: Tensor) -> Tensor:
    """(..., LABELS) bool: which ring labels a bit mask (...) holds."""
    return (mask.unsqueeze(-1) >> torch.arange(LABELS, device=mask.device)) & 1 == 1


def _popcount(mask: Tensor) -> Tensor:
    return _label_bits(mask).sum(-1)
