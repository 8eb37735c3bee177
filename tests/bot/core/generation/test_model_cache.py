from __future__ import annotations

import threading
import time

import pytest

from bot.core.generation.model_cache import ModelCache


class Loads:
    """Records what the cache loads and closes (values are plain strings)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.loaded: list[str] = []
        self.closed: list[str] = []
        self.delay = delay

    def load(self, key: str) -> str:
        time.sleep(self.delay)
        self.loaded.append(key)
        return f"model-{key}"

    def cache(self, *, max_entries: int = 8, max_bytes: int = 10**9) -> ModelCache[str, str]:
        return ModelCache(
            self.load,
            size_of=lambda value: 100,
            close=self.closed.append,
            max_entries=max_entries,
            max_bytes=max_bytes,
        )


def use(cache: ModelCache[str, str], key: str) -> str:
    value = cache.acquire(key)
    cache.release(key)
    return value


def test_count_cap_evicts_the_least_recently_used() -> None:
    loads = Loads()
    cache = loads.cache(max_entries=2)
    use(cache, "a")
    use(cache, "b")
    use(cache, "a")  # b is now the oldest use
    use(cache, "c")
    assert cache.loaded() == ["a", "c"]
    assert loads.closed == ["model-b"]
    assert loads.loaded == ["a", "b", "c"]


def test_memory_cap_evicts_until_it_fits() -> None:
    loads = Loads()
    cache = loads.cache(max_bytes=250)  # room for two 100-byte models
    for key in "abcd":
        use(cache, key)
    assert cache.loaded() == ["c", "d"]
    assert cache.total_bytes == 200


def test_a_model_in_use_is_never_evicted_and_others_wait_for_a_slot() -> None:
    """Issue #14: the entry cap holds with every entry pinned, so 200 servers asking at once
    cannot load 200 models: a request for another model waits, then loads when one frees."""
    loads = Loads()
    cache = loads.cache(max_entries=1)
    cache.acquire("a")  # pinned: a request is running on it
    waiter = threading.Thread(target=use, args=(cache, "b"))
    waiter.start()
    deadline = time.monotonic() + 10
    while cache.waiting == 0 and time.monotonic() < deadline:  # until b is seen waiting
        time.sleep(0.001)
    assert cache.waiting == 1 and loads.loaded == ["a"]  # b did not load beside a
    cache.release("a")
    waiter.join(10)
    assert not waiter.is_alive()
    assert loads.loaded == ["a", "b"] and loads.closed == ["model-a"]
    assert cache.loaded() == ["b"]


def test_retired_model_is_dropped_when_its_last_request_ends() -> None:
    loads = Loads()
    cache = loads.cache()
    cache.acquire("old")
    cache.acquire("old")
    cache.retire("old")
    cache.release("old")
    assert cache.loaded() == ["old"]
    cache.release("old")
    assert cache.loaded() == []
    assert loads.closed == ["model-old"]


def test_concurrent_requests_for_a_cold_model_load_it_once() -> None:
    loads = Loads(delay=0.05)
    cache = loads.cache()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(use(cache, "a"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["model-a"] * 6
    assert loads.loaded == ["a"]


def test_a_failed_load_can_be_retried() -> None:
    attempts: list[str] = []

    def flaky(key: str) -> str:
        attempts.append(key)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return key

    cache: ModelCache[str, str] = ModelCache(
        flaky, size_of=len, close=lambda value: None, max_entries=2, max_bytes=100
    )
    with pytest.raises(OSError, match="hiccup"):
        cache.acquire("a")
    assert cache.acquire("a") == "a"
    assert attempts == ["a", "a"]
