"""An LRU cache of loaded models, capped by count and by memory, that never drops one in use.

Why pins: a request keeps the model it started on (hot swap lets in-flight requests finish on
the old model), so an entry is pinned while requests use it and only unpinned entries are
evicted. The entry cap is hard, pinned entries and loads in progress included: a request
for a model that is not loaded waits while every slot is busy (rather than loading one
more model and running the process out of memory when 200 servers ask at once), and loads
when a slot frees. The byte cap is soft: a model's size is known only once it is loaded. `retire()` marks an entry that
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
        self._slot_freed = threading.Condition(self._lock)  # an entry went idle or away
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()  # oldest use first
        self._loading: dict[K, threading.Event] = {}
        self.waiting = 0  # requests waiting for a free slot (for tests and stats)

    def acquire(self, key: K) -> V:
        """The value for `key`, loaded if needed, pinned until `release(key)`."""
        while True:
            value = self.acquire_if_loaded(key)
            if value is not None:
                return value
            dropped: list[V] = []
            with self._lock:
                if key in self._entries:  # loaded in between: take it on the next pass
                    continue
                pending = self._loading.get(key)
                if pending is None:
                    if not self._make_room(dropped):
                        self.waiting += 1
                        self._slot_freed.wait()
                        self.waiting -= 1
                        continue  # look again: it may be loaded or loading now
                    self._loading[key] = threading.Event()
            self._close_all(dropped)
            if pending is None:
                break
            pending.wait()  # another thread is loading it; then look again
        try:
            value = self._load(key)
        except BaseException:
            with self._lock:
                self._loading.pop(key).set()
                self._slot_freed.notify_all()
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
            self._slot_freed.notify_all()
        self._close_all(dropped)

    def retire(self, key: K) -> None:
        """Drop `key` as soon as nothing uses it (now, if nothing does)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.retired = True
            dropped = self._take_evictable()
            self._slot_freed.notify_all()
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

    def _make_room(self, dropped: list[V]) -> bool:
        """(Under the lock.) Evict idle entries, LRU first, until one more load fits in the
        entry cap; False when every slot is pinned or loading (the caller waits)."""
        for key, entry in list(self._entries.items()):
            if len(self._entries) + len(self._loading) < self.max_entries:
                break
            if entry.pins <= 0:
                del self._entries[key]
                dropped.append(entry.value)
        return len(self._entries) + len(self._loading) < self.max_entries

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
