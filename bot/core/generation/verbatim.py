"""The verbatim guard's index: which (span + 1)-character windows occur in a training text.

Why hashed n-grams: a sample must never contain more than `span` consecutive characters
copied from a server's corpus. A copy longer than `span` characters contains a window of
exactly `span + 1` characters that occurs in the corpus, so it is enough to remember every
such window. Each window is stored as a 64-bit polynomial hash in one sorted, de-duplicated
numpy array (with the prefix filter, about 10 bytes per corpus character), a lookup is a
binary search, and the hash is rolling, so the sampler extends a row's hash by one
character per step in O(1) and tests every candidate next character of every row in one
vectorised search. A false positive needs a 64-bit collision, and it would only make the
guard resample a harmless character.

File format (`save`/`load`): a numpy `.npz` archive read with `allow_pickle=False` (no code
runs on load) holding `meta` = [format version, span, hash base], `hashes` (sorted uint64)
and `prefix_filter` (uint8 bitmap, see `VerbatimIndex`).
It lives beside the checkpoint as `<checkpoint path>.verbatim` (see `index_path_for`).
A missing file means "no guard"; a corrupt one is reported by `load_index_or_none` as a
warning and the guard is disabled for that model, never a crash.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import deque
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bot.core.logs import get_logger

log = get_logger(__name__)

FORMAT_VERSION = 1
DEFAULT_SPAN = 40
INDEX_SUFFIX = ".verbatim"  # appended to the checkpoint's file name
HASH_BASE = 0x9E3779B97F4A7C15  # odd, so multiplying by it is a bijection modulo 2**64
MASK = (1 << 64) - 1
_BUILD_CHUNK = 1 << 20  # windows hashed per pass while building: bounds the temporary memory

U64Array = npt.NDArray[np.uint64]


class VerbatimIndexError(Exception):
    """A verbatim index file is missing, truncated, corrupt or from another format."""


def index_path_for(checkpoint_path: Path | str) -> Path:
    """Where the index of a checkpoint lives: `<checkpoint path>.verbatim`."""
    path = Path(checkpoint_path)
    return path.with_name(path.name + INDEX_SUFFIX)


def char_code(char: str) -> int:
    """The number a character contributes to a window's hash (never 0, so leading chars count)."""
    return ord(char) + 1


def _codes(text: str) -> U64Array:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint64) + np.uint64(1)


def _window_hashes(codes: U64Array, window: int) -> U64Array:
    """Hash of every `window`-long run of `codes`: Horner's rule, vectorised over positions."""
    count = len(codes) - window + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    base = np.uint64(HASH_BASE)
    for offset in range(window):
        hashes *= base  # wraps modulo 2**64, like the Python-side `extend`
        hashes += codes[offset : offset + count]
    return hashes


# Two bit positions per prefix, from the top bits of two multiplicative mixes of its hash.
_FILTER_MIXERS_INT = (0xD6E8FEB86659FD93, 0xA0761D6478BD642F)


def _filter_bits(windows: int) -> int:
    """log2 of the filter's size in bits: 16 to 32 bits per window, about 1-1.5% false hits."""
    return min(40, max(10, (max(windows, 1) * 16 - 1).bit_length()))


def _filter_positions(prefix_hashes: U64Array, shift: np.uint64) -> list[U64Array]:
    """Bit positions of many prefixes at once (building); `may_continue` does one in Python."""
    return [(prefix_hashes * np.uint64(mixer)) >> shift for mixer in _FILTER_MIXERS_INT]


class VerbatimIndex:
    """The set of (span + 1)-character windows of a text, as sorted 64-bit hashes.

    Plus a Bloom filter (a bitmap, two bits per entry) of the windows' `span`-character
    prefixes: a row whose last `span` characters are not a prefix of any window cannot
    complete a copy with any next character, so the sampler skips it after two bit tests
    and only runs the binary searches (cache misses in a large array) for the rows that
    might be copying (`may_continue`).
    """

    def __init__(self, hashes: U64Array, span: int, prefix_filter: npt.NDArray[np.uint8]) -> None:
        if span < 1:
            raise ValueError("span must be at least 1")
        bits = (len(prefix_filter) * 8).bit_length() - 1
        if len(prefix_filter) < 2 or 1 << bits != len(prefix_filter) * 8:
            raise ValueError("the prefix filter's size must be a power of two bytes")
        self.hashes = hashes
        self.prefix_filter = prefix_filter
        self._filter_shift = 64 - bits
        self._filter_view = prefix_filter.data  # a memoryview: fast int indexing, no copy
        self.span = span
        self.window = span + 1
        # base**span: what the oldest character of a full window weighs, to drop it when rolling.
        self.drop_weight = pow(HASH_BASE, span, 1 << 64)

    @classmethod
    def build(
        cls, text: str, span: int = DEFAULT_SPAN, *, parent: VerbatimIndex | None = None
    ) -> VerbatimIndex:
        """Index every (span + 1)-character window of `text`, plus every window `parent`
        holds (a fine-tune's guard covers its whole lineage). Linear time; the peak memory
        is the finished index plus one bool per window (see `_sorted_unique_in_place`)."""
        if span < 1:
            raise ValueError("span must be at least 1")
        if parent is not None and parent.span != span:
            raise VerbatimIndexError(
                f"the parent index guards {parent.span} characters, not {span}: rebuild it"
            )
        window = span + 1
        total = max(len(text) - window + 1, 0)
        inherited = 0 if parent is None else len(parent.hashes)
        bits = _filter_bits(total + inherited)
        if parent is not None:
            bits = max(bits, parent.filter_bits)
        prefix_filter = np.zeros((1 << bits) // 8, dtype=np.uint8)
        shift = np.uint64(64 - bits)
        # One buffer for the parent's hashes and every new window, sorted and de-duplicated
        # in place: no concatenate/unique copies, which tripled the peak before.
        hashes = np.empty(inherited + total, dtype=np.uint64)
        if parent is not None:
            hashes[:inherited] = parent.hashes
            _fold_filter_into(parent.prefix_filter, prefix_filter)
        filled = inherited
        for start in range(0, total, _BUILD_CHUNK):
            # Codes per chunk, never for the whole text: 8 bytes a character adds up.
            chunk = _codes(text[start : start + _BUILD_CHUNK + window - 1])
            windows = _window_hashes(chunk, window)
            hashes[filled : filled + len(windows)] = windows
            filled += len(windows)
            # The first `span` characters of each of those windows.
            for position in _filter_positions(_window_hashes(chunk[:-1], span), shift):
                position = np.unique(position)
                np.bitwise_or.at(
                    prefix_filter,
                    position >> np.uint64(3),
                    np.left_shift(1, position & np.uint64(7)).astype(np.uint8),
                )
        return cls(_sorted_unique_in_place(hashes), span, prefix_filter)

    @property
    def filter_bits(self) -> int:
        """log2 of the prefix filter's size in bits."""
        return 64 - self._filter_shift

    @property
    def nbytes(self) -> int:
        return int(self.hashes.nbytes + self.prefix_filter.nbytes)

    def __len__(self) -> int:
        return len(self.hashes)

    # -- lookups -------------------------------------------------------------------------

    def may_continue(self, prefix_hash: int) -> bool:
        """Could some next character complete a copy after a row's last `span` characters?

        `prefix_hash` is their hash (`CopyGuard.prefix_hash`). False is certain; True may be
        a false hit (about 1%: then `contains` decides). Plain Python on purpose: for the
        few rows of one step it is several times cheaper than numpy's per-call overhead."""
        view, shift = self._filter_view, self._filter_shift
        for mixer in _FILTER_MIXERS_INT:
            position = ((prefix_hash * mixer) & MASK) >> shift
            if not (view[position >> 3] >> (position & 7)) & 1:
                return False
        return True

    def contains(self, hashes: U64Array) -> npt.NDArray[np.bool_]:
        """For each window hash, whether that window occurs in the indexed text."""
        if len(self.hashes) == 0:
            return np.zeros(hashes.shape, dtype=np.bool_)
        where = np.searchsorted(self.hashes, hashes)
        where = np.minimum(where, len(self.hashes) - 1)
        return self.hashes[where] == hashes

    def extend(self, prefix_hash: int, code: int) -> int:
        """Hash of a window once `code` (see `char_code`) is appended to `prefix_hash`."""
        return (prefix_hash * HASH_BASE + code) & MASK

    def find_copy(self, text: str, start: int = 0) -> tuple[int, int] | None:
        """The first run of `text` longer than `span` chars found verbatim in the indexed text.

        Only windows that include a character at index >= `start` count (text before `start`
        is the user's prompt). Returns `(begin, end)` with `text[begin:end]` the copied run,
        or None. Consecutive matching windows are merged into one run.
        """
        window = self.window
        first = max(0, start - window + 1)
        hits = np.flatnonzero(self.contains(_window_hashes(_codes(text[first:]), window)))
        if len(hits) == 0:
            return None
        begin = int(hits[0])
        end = begin
        for hit in hits[1:]:
            if int(hit) != end + 1:
                break
            end = int(hit)
        return first + begin, first + end + window

    # -- files ---------------------------------------------------------------------------

    def save(self, path: Path | str) -> None:
        """Write atomically (temp file + fsync + rename), so a reader never sees half a file."""
        path = Path(path)
        meta = np.array([FORMAT_VERSION, self.span, HASH_BASE], dtype=np.uint64)
        arrays = {"meta": meta, "hashes": self.hashes, "prefix_filter": self.prefix_filter}
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp_name).replace(path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path | str) -> VerbatimIndex:
        """Read a file written by `save`; raises VerbatimIndexError with the reason otherwise."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                span = _check_header(path, np.asarray(archive["meta"]))
                hashes = np.asarray(archive["hashes"])
                prefix_filter = np.asarray(archive["prefix_filter"])
        except FileNotFoundError:
            raise VerbatimIndexError(f"verbatim index not found: {path}") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise VerbatimIndexError(f"{path} is not a readable verbatim index: {exc}") from None
        if hashes.dtype != np.uint64 or hashes.ndim != 1:
            raise VerbatimIndexError(f"{path} has malformed contents")
        if len(hashes) > 1 and not bool(np.all(hashes[1:] > hashes[:-1])):
            raise VerbatimIndexError(f"{path} is corrupt (hashes out of order)")
        size = len(prefix_filter)
        if (
            prefix_filter.dtype != np.uint8
            or prefix_filter.ndim != 1
            or size < 2
            or size & (size - 1)
        ):
            raise VerbatimIndexError(f"{path} has a malformed prefix filter")
        return cls(hashes, span, prefix_filter)


def _sorted_unique_in_place(hashes: U64Array) -> U64Array:
    """`np.unique(hashes)` without its copies: sort in place, then compact the distinct
    values towards the front chunk by chunk (a value only ever moves left, so chunks read
    later are never overwritten before they are read)."""
    hashes.sort()
    if len(hashes) < 2:
        return hashes
    distinct = np.empty(len(hashes), dtype=np.bool_)
    distinct[0] = True
    np.not_equal(hashes[1:], hashes[:-1], out=distinct[1:])
    written = 0
    for start in range(0, len(hashes), _BUILD_CHUNK):
        kept = hashes[start : start + _BUILD_CHUNK][distinct[start : start + _BUILD_CHUNK]]
        hashes[written : written + len(kept)] = kept
        written += len(kept)
    del distinct
    hashes.resize(written, refcheck=False)  # gives the tail back to the allocator
    return hashes


def _fold_filter_into(source: npt.NDArray[np.uint8], target: npt.NDArray[np.uint8]) -> None:
    """OR a prefix filter into a filter at least as large.

    A prefix's bit position is the top bits of its mixed hash, so position p in a filter
    of b bits covers positions [p << d, (p + 1) << d) in one of b + d bits. The inherited
    prefixes then set 2**d bits each: more false hits (only a binary search each), never a
    miss. Chunked, so unpacking costs ~8 bytes a source byte of one chunk at a time."""
    spread = (len(target) // len(source)).bit_length() - 1  # d
    if spread == 0:
        np.bitwise_or(target, source, out=target)
        return
    step = _BUILD_CHUNK // 8
    for start in range(0, len(source), step):
        bits = np.unpackbits(source[start : start + step], bitorder="little")
        widened = np.packbits(np.repeat(bits, 1 << spread), bitorder="little")
        offset = start << spread
        np.bitwise_or(
            target[offset : offset + len(widened)],
            widened,
            out=target[offset : offset + len(widened)],
        )


def build_index_file(
    text: str, span: int, destination: Path | str, *, parent: Path | str | None = None
) -> None:
    """Build the index of `text` united with the index file at `parent` (a fine-tune's
    parent model), and save it at `destination`. A missing or unreadable parent raises
    VerbatimIndexError: the union is what keeps text the weights may hold blocked."""
    inherited = VerbatimIndex.load(parent) if parent is not None else None
    index = VerbatimIndex.build(text, span, parent=inherited)
    del inherited  # its arrays were copied into the new index
    index.save(destination)


def _check_header(path: Path, meta: npt.NDArray[np.generic]) -> int:
    """The span recorded in a file's `meta` array, after checking format and hash base."""
    if meta.dtype != np.uint64 or meta.shape != (3,):
        raise VerbatimIndexError(f"{path} has a malformed header")
    version, span, base = (int(value) for value in meta)
    if version != FORMAT_VERSION or base != HASH_BASE:
        raise VerbatimIndexError(f"{path} is from an unsupported index format ({version})")
    if not 1 <= span <= 1_000_000:
        raise VerbatimIndexError(f"{path} has malformed contents")
    return span


def load_index_or_none(path: Path | str) -> VerbatimIndex | None:
    """The index at `path`; None (guard off) when absent, or corrupt with a logged warning."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return VerbatimIndex.load(path)
    except VerbatimIndexError as exc:
        log.warning("verbatim guard disabled for this model: %s", exc)
        return None


class CopyGuard:
    """One sampled row's view of the index: would the next character complete a copy?

    Keeps the hash of the row's last `span` characters (prompt included, so a copy that
    starts in the prompt and runs on into the sample is caught): testing a candidate is one
    multiply-add and one binary search. The batch sampler tests all candidates of all rows
    at once from `prefix_hash` and `candidate_base`.
    """

    def __init__(self, index: VerbatimIndex, context: str = "") -> None:
        self.index = index
        self._span = index.span
        self._drop_weight = index.drop_weight
        self._recent: deque[int] = deque()  # codes of the last `span` characters, oldest first
        self._prefix_hash = 0  # hash of `_recent`
        self._may_continue = index.may_continue
        # Whether some next character could complete a copy (kept by push(): the batch
        # sampler reads it for every row at every step, so it must be a plain attribute).
        self.risky = False
        for char in context[-index.span :]:
            self.push(char)

    @property
    def prefix_hash(self) -> int:
        """Hash of the last `span` characters (see `VerbatimIndex.may_continue`)."""
        return self._prefix_hash

    @property
    def candidate_base(self) -> int:
        """A candidate's window hash is `(candidate_base + char_code(candidate)) mod 2**64`."""
        return (self._prefix_hash * HASH_BASE) & MASK

    def candidate_hash(self, char: str) -> int:
        return self.index.extend(self._prefix_hash, char_code(char))

    def would_copy(self, char: str) -> bool:
        if not self.risky:
            return False
        probe = np.array([self.candidate_hash(char)], dtype=np.uint64)
        return bool(self.index.contains(probe)[0])

    def push(self, char: str) -> None:
        # extend() and dropping the oldest character, inlined: this runs per row per step.
        code = ord(char) + 1
        recent = self._recent
        window_hash = (self._prefix_hash * HASH_BASE + code) & MASK
        if len(recent) == self._span:
            window_hash = (window_hash - recent.popleft() * self._drop_weight) & MASK
        recent.append(code)
        self._prefix_hash = window_hash
        self.risky = len(recent) == self._span and self._may_continue(window_hash)
