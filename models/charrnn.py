"""The character-level recurrent language model: embedding -> GRU/LSTM/RNN stack -> linear.

Shapes: B = batch, T = time steps, E = embed_dim, H = hidden_size, L = num_layers,
V = vocab_size. The hidden state is what `nn.GRU`/`nn.RNN` use, `[L, B, H]`, or the
`(h, c)` pair of `nn.LSTM`; it is returned so callers carry it across chunks (training)
or steps (sampling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Arch = Literal["gru", "lstm", "rnn"]
ARCHS: tuple[Arch, ...] = ("gru", "lstm", "rnn")
Hidden = Tensor | tuple[Tensor, Tensor]


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
