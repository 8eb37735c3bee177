"""The character-level recurrent language model: embedding -> GRU/LSTM/RNN stack -> linear.

`CharRNN` is the module that trains. `Stepper` runs the same network one character at a
time for a whole batch of sampling rows, on copies of the module's weights: per layer two
`addmm`s, then ATen's `gru_cell`/`lstm_cell`/`rnn_tanh_cell` gate arithmetic op for op (the
same results as those cells, given the same input gates). Layer 0's input gates come from a
per-character table (embed @ W_ih_l0^T + b_ih_l0, built once), so a step gathers rows
instead of embedding and multiplying. Why not the module's own forward at T=1: that loop is
slower (the README's sampling figures, benchmarks/bench_sampling.py), and torch's cells take
only the input, not precomputed input gates. Every row, alone or batched, goes through the
same path and reads the same table rows, so batch-mates never change a row's arithmetic.
Both live here because they are one network: a change to `CharRNN`'s layers is a change
to `Stepper`'s arithmetic (tests/models/test_sample.py checks that they agree).

Shapes: B = batch, T = time steps, E = embed_dim, H = hidden_size, L = num_layers,
V = vocab_size, G = gates per cell (GRU 3, LSTM 4, RNN 1). The module's hidden state is what
`nn.GRU`/`nn.RNN` use, `[L, B, H]`, or the `(h, c)` pair of `nn.LSTM`; it is returned so
callers carry it across chunks (training). `Stepper`'s state is one [B, H] tensor per layer
for h (and for c, LSTM only), so sampling rows can be appended and dropped per layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.archs import ARCHS, Arch

Hidden = Tensor | tuple[Tensor, Tensor]
# Per-layer h, per-layer c (None for GRU/RNN), next-character logits [B, V] float32.
StepOutput = tuple[list[Tensor], list[Tensor] | None, Tensor]


@dataclass(frozen=True)
class CharRNNConfig:
    arch: Arch = "gru"
    vocab_size: int = 128
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        if min(self.vocab_size, self.embed_dim, self.hidden_size, self.num_layers) < 1:
            raise ValueError("vocab_size, embed_dim, hidden_size and num_layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharRNNConfig:
        return cls(**data)


def _recurrent(config: CharRNNConfig) -> nn.RNNBase:
    kind = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[config.arch]
    return kind(
        config.embed_dim,
        config.hidden_size,
        num_layers=config.num_layers,
        batch_first=True,
        # nn.* applies dropout between layers only; we add one more before the output layer.
        dropout=config.dropout if config.num_layers > 1 else 0.0,
    )


class CharRNN(nn.Module):
    def __init__(self, config: CharRNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = _recurrent(config)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def init_hidden(self, batch_size: int, device: torch.device | str = "cpu") -> Hidden:
        c = self.config
        zeros = torch.zeros(c.num_layers, batch_size, c.hidden_size, device=device)  # [L, B, H]
        return (zeros, zeros.clone()) if c.arch == "lstm" else zeros

    def forward(
        self, idx: Tensor, hidden: Hidden | None = None, targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None, Hidden]:
        """idx [B, T] int64 -> logits [B, T, V], mean loss in nats (if targets [B, T]), hidden."""
        x = self.embed(idx)  # [B, T, E]
        out, new_hidden = self.rnn(x, hidden)  # out [B, T, H]
        logits = self.head(self.drop(out))  # [B, T, V]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        return logits, loss, new_hidden

    @torch.no_grad()
    def resize_vocab(self, new_size: int) -> None:
        """Grow the embedding and output rows to `new_size`; old ids keep their rows.

        New rows start as copies of `<unk>`'s (id 0): the model already treats an unseen
        character like that, so fine-tuning starts from the behaviour it had before.
        """
        old_size = self.embed.num_embeddings
        if new_size == old_size:
            return
        if new_size < old_size:
            raise ValueError("a vocabulary only grows")
        extra = new_size - old_size
        device = self.embed.weight.device
        embed = nn.Embedding(new_size, self.config.embed_dim, device=device)
        embed.weight.copy_(torch.cat([self.embed.weight, self.embed.weight[:1].expand(extra, -1)]))
        head = nn.Linear(self.config.hidden_size, new_size, device=device)
        head.weight.copy_(torch.cat([self.head.weight, self.head.weight[:1].expand(extra, -1)]))
        head.bias.copy_(torch.cat([self.head.bias, self.head.bias[:1].expand(extra)]))
        self.embed, self.head = embed, head
        self.config = CharRNNConfig(**{**self.config.to_dict(), "vocab_size": new_size})

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass(frozen=True)
class _Layer:
    w_ih_t: Tensor  # [in, G*H]
    w_hh_t: Tensor  # [H, G*H]
    b_ih: Tensor  # [G*H]
    b_hh: Tensor  # [G*H]


class Stepper:
    """`prime()` a prompt, then step rows one character at a time (see the module docstring).

    `<unk>` (id 0) gets a -inf output bias, so it has probability 0 in every distribution.
    """

    def __init__(self, model: CharRNN, dtype: torch.dtype) -> None:
        self.model = model
        self.dtype = dtype
        config = model.config
        self.arch = config.arch
        self.hidden_size = config.hidden_size
        self.num_layers = config.num_layers
        self.device = next(model.parameters()).device
        rnn = model.rnn

        def weight(name: str) -> Tensor:
            return getattr(rnn, name).detach().to(dtype)

        # Transposed views, not contiguous copies: a copy makes a lone row's matmuls ~20%
        # faster, but priming (nn.GRU on the module's weights) then misses the cache, which
        # cost the batch more than the steps gained (32 prompts, 2-core EPYC, fp32).
        self._layers = [
            _Layer(
                w_ih_t=weight(f"weight_ih_l{k}").t(),
                w_hh_t=weight(f"weight_hh_l{k}").t(),
                b_ih=weight(f"bias_ih_l{k}"),
                b_hh=weight(f"bias_hh_l{k}"),
            )
            for k in range(config.num_layers)
        ]
        first = self._layers[0]
        embed = model.embed.weight.detach().to(dtype)  # [V, E]
        self._input_gates_0 = torch.addmm(first.b_ih, embed, first.w_ih_t)  # [V, G*H]
        self._head_weight_t = model.head.weight.detach().to(dtype).t().contiguous()  # [H, V]
        self._head_bias = model.head.bias.detach().to(dtype, copy=True)  # [V]
        self._head_bias[0] = -math.inf

    def prime(self, ids: Sequence[int]) -> StepOutput:
        """A prompt's ids (at least one) -> its state and next-character logits, for one row.

        All but the last id go through the module's own recurrent layers (only the state is
        needed, no head logits per position); the last goes through the step path, as every
        sampled character will."""
        with torch.inference_mode():
            idx = torch.tensor([list(ids)], dtype=torch.long, device=self.device)  # [1, T]
            hidden = self.model.rnn(self.model.embed(idx[:, :-1]))[1] if idx.size(1) > 1 else None
            if hidden is None:
                zeros = torch.zeros(1, self.hidden_size, device=self.device, dtype=self.dtype)
                h = [zeros] * self.num_layers
                c = [zeros] * self.num_layers if self.arch == "lstm" else None
            else:
                # [L, 1, H] -> one [1, H] per layer, in the step precision.
                h_all, c_all = hidden if isinstance(hidden, tuple) else (hidden, None)
                h = [t[0:1].to(self.dtype) for t in h_all]
                c = [t[0:1].to(self.dtype) for t in c_all] if c_all is not None else None
            return self(idx[0, -1:], h, c)

    def __call__(self, tokens: Tensor, h: list[Tensor], c: list[Tensor] | None) -> StepOutput:
        """tokens [B], per-layer h (and c) [B, H] -> new h, c, logits [B, V] (float32)."""
        x = h[0]  # replaced by layer 0's output before it is read
        new_h: list[Tensor] = []
        new_c: list[Tensor] = []
        for k, layer in enumerate(self._layers):
            gi = (
                self._input_gates_0.index_select(0, tokens)
                if k == 0
                else torch.addmm(layer.b_ih, x, layer.w_ih_t)
            )  # [B, G*H]
            gh = torch.addmm(layer.b_hh, h[k], layer.w_hh_t)  # [B, G*H]
            if self.arch == "gru":
                x = self._gru(gi, gh, h[k])
            elif self.arch == "lstm":
                assert c is not None
                x, cell = self._lstm(gi, gh, c[k])
                new_c.append(cell)
            else:
                x = gh.add_(gi).tanh_()
            new_h.append(x)
        logits = torch.addmm(self._head_bias, x, self._head_weight_t)  # [B, V]
        return new_h, (new_c if c is not None else None), logits.float()

    def _gru(self, gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
        """gi, gh [B, 3H] (gates r, z, n), h [B, H] -> new h [B, H], as ATen's gru_cell."""
        size = self.hidden_size
        reset_update = gh[:, : 2 * size].add_(gi[:, : 2 * size]).sigmoid_()  # [B, 2H]
        reset, update = reset_update[:, :size], reset_update[:, size:]
        new = gi[:, 2 * size :].add(gh[:, 2 * size :].mul_(reset)).tanh_()  # [B, H]
        return (h - new).mul_(update).add_(new)

    def _lstm(self, gi: Tensor, gh: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """gi, gh [B, 4H] (gates i, f, g, o), c [B, H] -> new h, c [B, H], as ATen's lstm_cell."""
        size = self.hidden_size
        gates = gh.add_(gi)
        ingate = gates[:, :size].sigmoid_()
        forgetgate = gates[:, size : 2 * size].sigmoid_()
        cellgate = gates[:, 2 * size : 3 * size].tanh_()
        outgate = gates[:, 3 * size :].sigmoid_()
        cy = (forgetgate * c).add_(ingate * cellgate)  # [B, H], contiguous
        return outgate * cy.tanh(), cy
