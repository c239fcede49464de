"""The query cache: generations make old answers unreachable; TTL and LRU bound it."""

from __future__ import annotations

import time

from chroma_operator.router.cache import QueryCache
from chroma_operator.router.metrics import latency_buckets


def test_write_generation_hides_older_answers() -> None:
    cache = QueryCache(10, 60)
    key = cache.key("c1", b"q")
    cache.put(key, b"answer")
    assert cache.get(cache.key("c1", b"q")) == b"answer"
    cache.invalidate("c1")
    assert cache.get(cache.key("c1", b"q")) is None
    assert cache.get(cache.key("c2", b"q")) is None


def test_other_collections_keep_their_answers() -> None:
    cache = QueryCache(10, 60)
    cache.put(cache.key("c2", b"q"), b"two")
    cache.invalidate("c1")
    assert cache.get(cache.key("c2", b"q")) == b"two"


def test_ttl_expires() -> None:
    cache = QueryCache(10, 0.05)
    cache.put(cache.key("c", b"q"), b"x")
    time.sleep(0.1)
    assert cache.get(cache.key("c", b"q")) is None


def test_lru_bound_evicts_least_recently_used() -> None:
    cache = QueryCache(2, 60)
    cache.put(cache.key("c", b"1"), b"1")
    cache.put(cache.key("c", b"2"), b"2")
    assert cache.get(cache.key("c", b"1")) == b"1"
    cache.put(cache.key("c", b"3"), b"3")
    assert len(cache) == 2
    assert cache.get(cache.key("c", b"2")) is None
    assert cache.get(cache.key("c", b"1")) == b"1"


def test_disabled_cache_stores_nothing() -> None:
    cache = QueryCache(10, 60, enabled=False)
    cache.put(cache.key("c", b"q"), b"x")
    assert cache.get(cache.key("c", b"q")) is None


def test_latency_buckets_contain_every_slo_threshold_exactly() -> None:
    buckets = latency_buckets([50, 200, 7.5])
    for ms in (50, 200, 7.5):
        assert ms / 1000 in buckets
    assert list(buckets) == sorted(set(buckets))
