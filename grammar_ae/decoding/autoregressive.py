"""Masked autoregressive decoding, vectorized over the batch.

The same stack machine as ``masked.py`` (see ``tables.py``), but the logits of each step
come from a network that is fed the token chosen at the step before: pop the top symbol,
ask the network for the next token's logits given the previous token and that symbol, keep
the symbol's productions only, pick one (argmax, or Gumbel-max when sampling), push its
right-hand symbols. Finished rows are dropped from the batch as they end, so the work
follows the real lengths.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from grammar_ae.decoding.masked import DecodedRules, _gumbel_perturb
from grammar_ae.decoding.smiles_checks import SmilesChecks
from grammar_ae.decoding.tables import DecodingTables

_COMPACT_EVERY = 8  # steps between drops of finished rows


class StepNetwork(Protocol):
    """What the loop needs of a decoder network (its state is opaque to the loop)."""

    start_token: int

    def start(self, z: Tensor) -> Any: ...

    def step(self, state: Any, previous: Tensor, symbols: Tensor) -> tuple[Tensor, Any]: ...

    def select(self, state: Any, rows: Tensor) -> Any: ...


@torch.no_grad()
def decode_autoregressive(
    network: StepNetwork,
    z: Tensor,
    tables: DecodingTables,
    max_steps: int,
    sample: bool = False,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    constraint: SmilesChecks | None = None,
) -> DecodedRules:
    """Tokens (B, max_steps), padded with the padding production after the end, and whether
    each derivation ended within ``max_steps`` (B,). ``constraint`` (SMILES chemistry checks)
    removes further choices per sequence, and its preferred ones (ring sizes) are kept where
    any is left; a sequence the checks would leave without any keeps the grammar's."""
    device, batch = z.device, len(z)
    symbol_rules = torch.as_tensor(tables.symbol_rules, device=device)
    slot_penalty = torch.as_tensor(tables.live_slots, device=device).logical_not().float() * -1e30
    push = torch.as_tensor(tables.push, device=device)
    push_delta = torch.as_tensor(tables.push_delta, device=device)
    width = tables.max_push

    tokens = torch.full((batch, max_steps), tables.padding_rule, dtype=torch.long, device=device)
    valid = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)  # rows still decoding
    stack = torch.empty((tables.stack_depth(max_steps), batch), dtype=torch.long, device=device)
    stack[0] = tables.padding_symbol
    stack[1] = tables.start_symbol
    pointer = torch.ones((1, batch), dtype=torch.long, device=device)
    offsets = torch.arange(width, device=device).unsqueeze(1)
    previous = torch.full((batch,), network.start_token, dtype=torch.long, device=device)
    state = network.start(z)
    if constraint is not None:
        constraint = constraint.to(device)
        checks = constraint.start(batch, device)
    for step in range(max_steps):
        top = stack.gather(0, pointer).view(-1)
        logits, state = network.step(state, previous, top)
        candidates = symbol_rules.index_select(0, top)
        scores = logits.float().gather(1, candidates)
        penalty = slot_penalty.index_select(0, top)
        if constraint is not None:
            allowed, preferred = constraint.masks(checks, top, candidates, pointer.view(-1))
            allowed &= penalty == 0
            preferred &= allowed
            allowed = torch.where(preferred.any(1, keepdim=True), preferred, allowed)  # ring sizes where they leave a choice
            allowed |= ~allowed.any(1, keepdim=True)  # nothing left: the grammar's choices
            penalty = torch.where(allowed, penalty, -1e30)
        if sample:
            scores = _gumbel_perturb(scores, penalty, generator, temperature)
        else:
            scores = scores + penalty
        chosen = candidates.gather(1, scores.argmax(1, keepdim=True)).view(-1)
        if constraint is not None:
            checks = constraint.update(checks, top, chosen, pointer.view(-1))
        tokens[rows, step] = chosen
        stack.scatter_(0, pointer + offsets, push.index_select(0, chosen).t())
        pointer = pointer + push_delta.index_select(0, chosen).view(1, -1)
        previous = chosen
        if step % _COMPACT_EVERY == _COMPACT_EVERY - 1 or step == max_steps - 1:
            done = pointer.view(-1) == 0
            if bool(done.any()):
                valid[rows[done]] = True
                keep = (~done).nonzero().view(-1)
                rows, stack, pointer, previous = rows[keep], stack[:, keep], pointer[:, keep], previous[keep]
                state = network.select(state, keep)
                if constraint is not None:
                    checks = checks.select(keep)
                if len(rows) == 0:
                    break
    return DecodedRules(rules=tokens, valid=valid)
