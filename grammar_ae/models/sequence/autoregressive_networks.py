"""Encoders and autoregressive decoders over token sequences (see ``tokens.py``).

Decoders see, at step t, the previous token, the symbol being expanded (the top of the
derivation stack, known before the choice) and the latent z. They run teacher-forced over
whole sequences in training and one step at a time when decoding:

- ``GRUTokenDecoder``: z sets the initial states and is fed at every step (GRU layers
  unrolled in ``recurrent.py``, fast on CPUs);
- ``TransformerTokenDecoder``: a causal pre-norm Transformer, z added to every input; a
  preallocated key/value cache makes each decoding step cost one position.

Encoders read the tokens without padding: a bidirectional GRU whose backward direction
starts at each sequence's own end (both directions step together), or a Transformer encoder with a padding mask and mean
pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from grammar_ae.models.sequence.recurrent import UnrolledGRU, side_by_side
from grammar_ae.objectives.base import EncoderOutput


@dataclass(frozen=True)
class TokenNetworkSizes:
    """The sizes an autoregressive network is built from (taken from the network config)."""

    latent_dim: int
    embedding_dim: int
    model_dim: int
    decoder_layers: int
    encoder_dim: int
    encoder_layers: int
    heads: int
    max_tokens: int


# -- encoders ------------------------------------------------------------------------------
class GRUTokenEncoder(nn.Module):
    """Bidirectional GRU; the last layer's final states of both directions give the code."""

    def __init__(self, sizes: TokenNetworkSizes, num_tokens: int, padding_token: int, stochastic: bool):
        super().__init__()
        self.padding_token = padding_token
        self.embedding = nn.Embedding(num_tokens, sizes.embedding_dim)
        width = sizes.encoder_dim
        inputs = [sizes.embedding_dim] + [2 * width] * (sizes.encoder_layers - 1)
        self.forward_layers = nn.ModuleList(UnrolledGRU(size, width) for size in inputs)
        self.backward_layers = nn.ModuleList(UnrolledGRU(size, width) for size in inputs)
        self.mean = nn.Linear(2 * width, sizes.latent_dim)
        self.log_variance = nn.Linear(2 * width, sizes.latent_dim) if stochastic else None

    def forward(self, tokens: Tensor) -> EncoderOutput:
        lengths = (tokens != self.padding_token).sum(1).clamp_min(1)
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        # reversing each sequence within its own length (self-inverse on the real steps)
        reversed_index = (lengths[:, None] - 1 - steps[None, :]).clamp_min(0)
        x = self.embedding(tokens)
        start = x.new_zeros((len(tokens), self.forward_layers[0].hidden_size), dtype=torch.float32)
        for forward_layer, backward_layer in zip(self.forward_layers, self.backward_layers):
            ahead, behind = side_by_side([forward_layer, backward_layer], [x, _take_steps(x, reversed_index)], start)
            behind = _take_steps(behind, reversed_index)
            x = torch.cat([ahead, behind], dim=2)
        last = (lengths - 1)[:, None]
        hidden = torch.cat([_take_steps(ahead, last)[:, 0], behind[:, 0]], dim=1)
        logvar = self.log_variance(hidden) if self.log_variance is not None else None
        return EncoderOutput(self.mean(hidden), logvar)


def _take_steps(x: Tensor, index: Tensor) -> Tensor:
    """x (B, T, F) at steps ``index`` (B, S) of each row."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class TransformerTokenEncoder(nn.Module):
    """Transformer encoder over the tokens, mean-pooled over the real positions."""

    def __init__(self, sizes: TokenNetworkSizes, num_tokens: int, padding_token: int, stochastic: bool):
        super().__init__()
        self.padding_token = padding_token
        width = sizes.encoder_dim
        self.embedding = nn.Embedding(num_tokens, width)
        self.position = nn.Embedding(sizes.max_tokens + 1, width)
        self.blocks = nn.ModuleList(TransformerBlock(width, sizes.heads) for _ in range(sizes.encoder_layers))
        self.norm = nn.LayerNorm(width)
        self.mean = nn.Linear(width, sizes.latent_dim)
        self.log_variance = nn.Linear(width, sizes.latent_dim) if stochastic else None

    def forward(self, tokens: Tensor) -> EncoderOutput:
        real = tokens != self.padding_token
        x = self.embedding(tokens) + self.position.weight[: tokens.shape[1]]
        attend = real[:, None, None, :]  # keys a query may look at
        for block in self.blocks:
            x = block(x, mask=attend)
        weights = real.unsqueeze(-1).to(x.dtype)
        pooled = (self.norm(x) * weights).sum(1) / weights.sum(1).clamp_min(1)
        logvar = self.log_variance(pooled) if self.log_variance is not None else None
        return EncoderOutput(self.mean(pooled), logvar)


# -- decoders ------------------------------------------------------------------------------
class TokenDecoder(nn.Module):
    """Shared inputs: embeddings of the previous token (or the start token) and of the symbol."""

    def __init__(self, sizes: TokenNetworkSizes, num_tokens: int, num_symbols: int, width: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.start_token = num_tokens  # an extra embedding row
        self.token_embedding = nn.Embedding(num_tokens + 1, width)
        self.symbol_embedding = nn.Embedding(num_symbols, width)

    def step_inputs(self, previous: Tensor, symbols: Tensor) -> Tensor:
        return self.token_embedding(previous) + self.symbol_embedding(symbols)

    def teacher_inputs(self, targets: Tensor, symbols: Tensor) -> Tensor:
        """Inputs for every step of ``targets`` (B, T): the start token, then the targets shifted."""
        previous = torch.cat([torch.full_like(targets[:, :1], self.start_token), targets[:, :-1]], dim=1)
        return self.step_inputs(previous, symbols)


class GRUTokenDecoder(TokenDecoder):
    def __init__(self, sizes: TokenNetworkSizes, num_tokens: int, num_symbols: int):
        super().__init__(sizes, num_tokens, num_symbols, sizes.embedding_dim)
        width = sizes.model_dim
        self.initial = nn.Linear(sizes.latent_dim, sizes.decoder_layers * width)
        inputs = [sizes.embedding_dim + sizes.latent_dim] + [width] * (sizes.decoder_layers - 1)
        self.layers = nn.ModuleList(UnrolledGRU(size, width) for size in inputs)
        self.logits = nn.Linear(width, num_tokens)

    def forward(self, z: Tensor, targets: Tensor, symbols: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, M)."""
        x = self.teacher_inputs(targets, symbols)
        x = torch.cat([x, z.unsqueeze(1).expand(-1, x.shape[1], -1).to(x.dtype)], dim=2)
        for layer, state in zip(self.layers, self._initial_states(z)):
            x = layer(x, state)
        return self.logits(x)

    def _initial_states(self, z: Tensor) -> list[Tensor]:
        return list(torch.tanh(self.initial(z).float()).chunk(len(self.layers), dim=1))

    def start(self, z: Tensor) -> tuple[list[Tensor], Tensor]:
        return self._initial_states(z), z

    def step(self, state: tuple[list[Tensor], Tensor], previous: Tensor, symbols: Tensor) -> tuple[Tensor, tuple]:
        hidden, z = state
        x = torch.cat([self.step_inputs(previous, symbols), z.to(torch.float32)], dim=1)
        new_hidden = []
        for layer, layer_state in zip(self.layers, hidden):
            x = layer.step(x, layer_state)
            new_hidden.append(x)
        return self.logits(x), (new_hidden, z)

    @staticmethod
    def select(state: tuple[list[Tensor], Tensor], rows: Tensor) -> tuple[list[Tensor], Tensor]:
        hidden, z = state
        return [layer_state[rows] for layer_state in hidden], z[rows]


class TransformerTokenDecoder(TokenDecoder):
    def __init__(self, sizes: TokenNetworkSizes, num_tokens: int, num_symbols: int):
        width = sizes.model_dim
        super().__init__(sizes, num_tokens, num_symbols, width)
        self.position = nn.Embedding(sizes.max_tokens + 1, width)
        self.latent = nn.Linear(sizes.latent_dim, width)
        self.blocks = nn.ModuleList(TransformerBlock(width, sizes.heads) for _ in range(sizes.decoder_layers))
        self.norm = nn.LayerNorm(width)
        self.logits = nn.Linear(width, num_tokens)

    def forward(self, z: Tensor, targets: Tensor, symbols: Tensor) -> Tensor:
        steps = targets.shape[1]
        x = self.teacher_inputs(targets, symbols) + self.position.weight[:steps] + self.latent(z).unsqueeze(1)
        for block in self.blocks:
            x = block(x, causal=True)
        return self.logits(self.norm(x))

    def start(self, z: Tensor) -> dict:
        width, heads = self.position.embedding_dim, self.blocks[0].heads
        steps = self.position.num_embeddings
        cache = z.new_zeros((len(self.blocks), 2, len(z), heads, steps, width // heads))
        return {"latent": self.latent(z), "cache": cache, "position": 0}

    def step(self, state: dict, previous: Tensor, symbols: Tensor) -> tuple[Tensor, dict]:
        position = state["position"]
        x = self.step_inputs(previous, symbols) + self.position.weight[position] + state["latent"]
        x = x.unsqueeze(1)
        cache = state["cache"]
        for index, block in enumerate(self.blocks):
            x = block(x, cache=cache[index], position=position)
        return self.logits(self.norm(x[:, 0])), {"latent": state["latent"], "cache": cache, "position": position + 1}

    @staticmethod
    def select(state: dict, rows: Tensor) -> dict:
        return {"latent": state["latent"][rows], "cache": state["cache"][:, :, rows], "position": state["position"]}


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and a GELU feed-forward layer (4x wide)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.projection = nn.Linear(width, width)
        self.feed_forward_norm = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(
        self,
        x: Tensor,
        causal: bool = False,
        mask: Tensor | None = None,
        cache: Tensor | None = None,
        position: int = 0,
    ) -> Tensor:
        """``cache`` (2, B, heads, steps, head_dim): keys and values of earlier positions, filled
        at ``position`` with this one's (x holds one position then)."""
        batch, steps, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, steps, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if cache is not None:
            cache[0, :, :, position : position + steps] = k
            cache[1, :, :, position : position + steps] = v
            k, v = cache[0, :, :, : position + steps], cache[1, :, :, : position + steps]
        attended = _attention(q, k, v, mask, causal and cache is None)
        x = x + self.projection(attended.transpose(1, 2).reshape(batch, steps, width))
        return x + self.feed_forward(self.feed_forward_norm(x))


def _attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
    """Softmax attention written as two batched matmuls: at these lengths (< 300) it runs
    several times faster on a CPU than the fused kernels, whose backward pass is slow there."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if causal:
        steps = q.shape[-2]
        scores = scores.masked_fill(torch.ones(steps, steps, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores.float(), dim=-1).to(v.dtype), v)


ENCODERS = {"gru": GRUTokenEncoder, "transformer": TransformerTokenEncoder}
DECODERS = {"gru": GRUTokenDecoder, "transformer": TransformerTokenDecoder}


def flops_per_token(sizes: TokenNetworkSizes, decoder: str, encoder: str, num_tokens: int) -> float:
    """Multiply-adds x 2 of one forward pass per token (encoder + decoder), attention excluded."""
    if decoder == "gru":
        d_in = sizes.embedding_dim + sizes.latent_dim
        dec = sum(3 * (d_in if i == 0 else sizes.model_dim) * sizes.model_dim + 3 * sizes.model_dim**2 for i in range(sizes.decoder_layers))
        dec += sizes.model_dim * num_tokens
    else:
        dec = sizes.decoder_layers * 12 * sizes.model_dim**2 + sizes.model_dim * num_tokens
    if encoder == "gru":
        enc = sum(2 * (3 * (sizes.embedding_dim if i == 0 else 2 * sizes.encoder_dim) * sizes.encoder_dim + 3 * sizes.encoder_dim**2) for i in range(sizes.encoder_layers))
    else:
        enc = sizes.encoder_layers * 12 * sizes.encoder_dim**2
    return 2.0 * (dec + enc)
