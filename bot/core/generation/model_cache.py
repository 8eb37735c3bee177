"""An LRU cache of loaded models, capped by count and by memory, that never drops one in use.

Why pins: a request keeps the model it started on (hot swap lets in-flight requests finish on
the old model), so an entry is pinned while requests use it and only unpinned entries are
evicted. The caps are soft for pinned entries: when every entry is busy the cache runs over
its cap until one is released, rather than failing a request. `retire()` marks an entry that
was superseded (a newer model was activated for its server): it is dropped as soon as its
last request ends, whatever the caps.

Thread-safe: acquire/release come from request handlers (through threads) and loading runs
outside the lock, so a slow checkpoint load never blocks requests for other models; two
requests for the same model that is not loaded yet wait for one load.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.core.logs import get_logger

log = get_logger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    value: V
    nbytes: int
    pins: int = 0
    retired: bool = False


class ModelCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], V],
        *,
        size_of: Callable[[V], int],
        close: Callable[[V], None],
        max_entries: int,
        max_bytes: int,
    ) -> None:
        self._load = load
        self._size_of = size_of
        self._close = close
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()  # oldest use first
        self._loading: dict[K, threading.Event] = {}

    def acquire(self, key: K) -> V:
        """The value for `key`, loaded if needed, pinned until `release(key)`."""
        while True:
            value = self.acquire_if_loaded(key)
            if value is not None:
                return value
            with self._lock:
                if key in self._entries:  # loaded in between: take it on the next pass
                    continue
                pending = self._loading.get(key)
                if pending is None:
                    self._loading[key] = threading.Event()
                    break
            pending.wait()  # another thread is loading it; then look again
        try:
            value = self._load(key)
        except BaseException:
            with self._lock:
                self._loading.pop(key).set()
            raise
        with self._lock:
            self._entries[key] = _Entry(value, self._size_of(value), pins=1)
            self._loading.pop(key).set()
            dropped = self._take_evictable()
        self._close_all(dropped)
        return value

    def acquire_if_loaded(self, key: K) -> V | None:
        """Like `acquire` when `key` is loaded (never blocks: fine on an event loop), else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.pins += 1
            entry.retired = False  # wanted again (e.g. the registry rolled back)
            self._entries.move_to_end(key)
            return entry.value

    def release(self, key: K) -> None:
        """Unpin once; the entry may be evicted (or dropped, if retired) from now on."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.pins -= 1
            dropped = self._take_evictable()
        self._close_all(dropped)

    def retire(self, key: K) -> None:
        """Drop `key` as soon as nothing uses it (now, if nothing does)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.retired = True
            dropped = self._take_evictable()
        self._close_all(dropped)

    def loaded(self) -> list[K]:
        """Loaded keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def peek(self, key: K) -> V | None:
        """The value if loaded, without pinning it or touching its LRU position."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.value

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def clear(self) -> None:
        """Close every entry, in use or not (shutting down)."""
        with self._lock:
            dropped = [entry.value for entry in self._entries.values()]
            self._entries.clear()
        self._close_all(dropped)

    def _take_evictable(self) -> list[V]:
        """Remove (under the lock) retired idle entries, then idle ones over the caps, LRU first."""
        dropped: list[V] = []
        for key, entry in list(self._entries.items()):
            if entry.retired and entry.pins <= 0:
                del self._entries[key]
                dropped.append(entry.value)
        total = sum(entry.nbytes for entry in self._entries.values())
        for key, entry in list(self._entries.items()):
            if len(self._entries) <= self.max_entries and total <= self.max_bytes:
                break
            if entry.pins <= 0:
                del self._entries[key]
                total -= entry.nbytes
                dropped.append(entry.value)
        return dropped

    def _close_all(self, values: list[V]) -> None:
        for value in values:
            try:
                self._close(value)
            except Exception:  # closing one model must not break the request that evicted it
                log.exception("closing an evicted model failed")
