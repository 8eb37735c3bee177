"""Character vocabulary with a reserved unknown at index 0 that only ever grows.

Policy (why): characters (Unicode code points) rather than UTF-8 bytes, because one step of
the model is then one visible character, which keeps sampling short and the model small.
Index 0 is `<unk>`: any character outside the vocabulary (an emoji, a CJK character or a
combining mark never seen in training) encodes to it, so every prompt works. Sampling masks
`<unk>`, so it is never emitted. Growth appends new characters at the end, so the ids of a
checkpoint never move and fine-tuning on a grown corpus only adds embedding/output rows.
The size is capped (the most frequent characters win; the rest map to `<unk>`), which keeps
a corpus full of rare symbols from blowing up the output layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

DEFAULT_MAX_SIZE = 4096
UNK_TOKEN = "<unk>"


class Vocab:
    """An ordered list of characters; `chars[0]` is the `<unk>` placeholder."""

    UNK: int = 0

    def __init__(self, chars: Sequence[str], *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if not chars or chars[0] != UNK_TOKEN:
            raise ValueError("a vocabulary starts with the <unk> token")
        body = list(chars[1:])
        if any(len(c) != 1 for c in body):
            raise ValueError("vocabulary entries after <unk> must be single characters")
        if len(set(body)) != len(body):
            raise ValueError("vocabulary characters must be unique")
        self._chars: list[str] = [UNK_TOKEN, *body]
        self._index: dict[str, int] = {c: i for i, c in enumerate(self._chars) if i != 0}
        self.max_size = max(max_size, len(self._chars))

    @classmethod
    def build(cls, text: str, *, max_size: int = DEFAULT_MAX_SIZE) -> Vocab:
        """The `max_size - 1` most frequent characters of `text` (ties: by code point)."""
        return cls([UNK_TOKEN], max_size=max_size).extended(text)

    def extended(self, text: str) -> Vocab:
        """A superset of this vocabulary: unseen characters of `text` appended, within the cap."""
        counts = Counter(text)
        new = [c for c in counts if c not in self._index]
        room = self.max_size - len(self._chars)
        if room <= 0 or not new:
            return Vocab(self._chars, max_size=self.max_size)
        # Most frequent first; code point order breaks ties so the result is deterministic.
        new.sort(key=lambda c: (-counts[c], c))
        added = sorted(new[:room])
        return Vocab([*self._chars, *added], max_size=self.max_size)

    def encode(self, text: str) -> list[int]:
        get = self._index.get
        return [get(c, 0) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        chars = self._chars
        return "".join(chars[i] for i in ids if i != 0)

    def __len__(self) -> int:
        return len(self._chars)

    def __contains__(self, char: object) -> bool:
        return char in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._chars == other.to_list()

    def __hash__(self) -> int:
        return hash(tuple(self._chars))

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, max_size={self.max_size})"

    def id_of(self, char: str) -> int:
        return self._index.get(char, 0)

    def to_list(self) -> list[str]:
        return list(self._chars)

    @classmethod
    def from_list(cls, chars: Sequence[str], *, max_size: int = DEFAULT_MAX_SIZE) -> Vocab:
        return cls(chars, max_size=max_size)
