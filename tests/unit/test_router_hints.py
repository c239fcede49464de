"""Hint logs on real files and the replica states built on them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from chroma_operator.router.hedge import HedgeBudget, LatencyWindow, SuspectList
from chroma_operator.router.hints import Hint, HintLog, HintLogFull, coalesce
from chroma_operator.router.replicas import ReplicaBook
from chroma_operator.topology import Topology


def hint(n: int) -> Hint:
    body = b'{"ids": ["a%d", "b%d"]}' % (n, n)
    return Hint("POST", f"/c/{n}/add", body, {"x-chroma-token": "t"})


def test_append_reload_replay_truncate(tmp_path: Path) -> None:
    log = HintLog(tmp_path, "shard-0-1", 1 << 20)

    async def fill() -> None:
        async with log.lock:
            for n in range(5):
                await log.append(hint(n))

    asyncio.run(fill())
    assert log.pending == 5
    again = HintLog(tmp_path, "shard-0-1", 1 << 20)  # a restarted router
    assert again.pending == 5
    got = list(again.read_from(0, limit=3))
    assert [h.path for h, _ in got] == ["/c/0/add", "/c/1/add", "/c/2/add"]
    assert got[0][0] == hint(0) and got[0][0].records == 2
    for _, end in got:
        again.advance(end)
    assert again.pending == 2 and not again.drained()
    for _, end in list(again.read_from(again.offset)):
        again.advance(end)
    assert again.drained()
    again.truncate()
    assert HintLog(tmp_path, "shard-0-1", 1 << 20).pending == 0


def test_a_line_cut_by_a_crash_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "shard-1-0.hints"
    path.write_bytes(hint(1).encode() + b'{"m": "POST", "p": "/c/2')
    log = HintLog(tmp_path, "shard-1-0", 1 << 20)
    assert log.pending == 1
    assert path.read_bytes() == hint(1).encode()


def test_a_full_log_is_dropped_and_marks_a_repair(tmp_path: Path) -> None:
    log = HintLog(tmp_path, "shard-0-0", 1024)

    async def fill() -> None:
        for n in range(100):
            await log.append(hint(n))

    with pytest.raises(HintLogFull):
        asyncio.run(fill())
    assert log.pending == 0 and log.needs_repair
    assert HintLog(tmp_path, "shard-0-0", 1024).needs_repair  # remembered across restarts
    log.clear_repair()
    assert not log.needs_repair


def test_binary_bodies_survive(tmp_path: Path) -> None:
    h = Hint("PUT", None, b"\xff\x00", {}, ("t", "d", "name", ""))
    assert Hint.decode(h.encode()) == h


def topology(tmp_path: Path, **extra: object) -> Topology:
    return Topology.model_validate(
        {
            "cluster": "c",
            "namespace": "n",
            "shards": [{"index": 0, "endpoints": ["http://a", "http://b"]}],
            "hints_dir": str(tmp_path),
            **extra,
        }
    )


def test_states_combine_own_hints_peers_and_the_topology(tmp_path: Path) -> None:
    book = ReplicaBook(topology(tmp_path))
    a, b = book.replicas["shard-0-0"], book.replicas["shard-0-1"]
    assert book.state(a) == "in-sync" and book.in_sync("http://b")
    book.mark_stale(b)
    assert book.state(b) == "stale" and not book.in_sync("http://b")
    book.apply_notice({"router": "peer", "replicas": [{"name": "shard-0-0", "state": "stale"}]})
    assert book.state(a) == "stale"
    book.apply_notice({"router": "peer", "replicas": [{"name": "shard-0-0", "state": "in-sync"}]})
    assert book.state(a) == "in-sync"
    book.apply_notice(
        {"router": book.router_id, "replicas": [{"name": "shard-0-0", "state": "stale"}]}
    )
    assert book.state(a) == "in-sync"  # its own notice, come back from itself
    book.update(topology(tmp_path, fenced=["shard-0-0"]))
    assert book.state(a) == "fenced" and book.replicas["shard-0-1"] is b  # logs kept
    book.update(topology(tmp_path, replica_states={"shard-0-0": "repairing"}))
    assert book.state(a) == "repairing"


def test_hedging_waits_for_enough_samples_and_respects_its_budget() -> None:
    window = LatencyWindow()
    assert window.p95(0.005) is None
    for ms in range(1, 101):
        window.add(ms / 1000)
    p95 = window.p95(0.005)
    assert p95 is not None and 0.09 <= p95 <= 0.1
    assert window.p95(0.5) == 0.5  # the floor
    budget = HedgeBudget(0.05)
    taken = 0
    for _ in range(200):
        budget.count_request()
        taken += budget.take()
    assert taken == 10


def test_a_replica_that_lost_to_a_hedge_is_asked_last_until_it_expires() -> None:
    suspects = SuspectList(seconds=0.05)
    assert suspects.order(["a", "b", "c"]) == ["a", "b", "c"]
    suspects.mark("a")
    assert suspects.order(["a", "b", "c"]) == ["b", "c", "a"]
    assert suspects.order(["c", "a", "b"]) == ["c", "b", "a"]  # the rotation is kept
    time.sleep(0.06)
    assert suspects.order(["a", "b", "c"]) == ["a", "b", "c"]


def test_of_two_suspects_the_one_that_lost_most_recently_is_asked_last() -> None:
    suspects = SuspectList(seconds=5)
    suspects.mark("healthy")  # lost one hedge to a busy moment
    time.sleep(0.01)
    suspects.mark("hung")  # then its sibling hung and lost the next one
    for rotation in (["hung", "healthy"], ["healthy", "hung"]):
        assert suspects.order(rotation) == ["healthy", "hung"]


def write(kind: str, ids: list[str], path: str = "/c/1") -> Hint:
    body = orjson.dumps({"ids": ids, "metadatas": [{"i": i} for i in ids], "documents": None})
    return Hint("POST", path + "/" + kind, body, {})


def test_replay_merges_consecutive_disjoint_writes_of_one_kind() -> None:
    batch = [
        (write("upsert", ["a", "b"]), 10),
        (write("upsert", ["c"]), 20),
        (write("upsert", ["a"]), 30),  # a again: must come after, not merged
        (write("delete", ["x"]), 40),
        (write("delete", ["y"]), 50),
        (write("upsert", ["z"], path="/c/2"), 60),
    ]
    out = coalesce(batch)
    shapes = [(h.path, orjson.loads(h.body or b"{}")["ids"], end, n) for h, end, n in out]
    assert shapes == [
        ("/c/1/upsert", ["a", "b", "c"], 20, 2),
        ("/c/1/upsert", ["a"], 30, 1),
        ("/c/1/delete", ["x", "y"], 50, 2),
        ("/c/2/upsert", ["z"], 60, 1),
    ]
    merged = orjson.loads(out[0][0].body or b"{}")
    assert merged["metadatas"] == [{"i": "a"}, {"i": "b"}, {"i": "c"}]
    assert merged["documents"] is None
    assert sum(n for _, _, n in out) == len(batch)


def test_filters_and_other_routes_are_replayed_as_they_are() -> None:
    by_filter = Hint("POST", "/c/1/delete", orjson.dumps({"where": {"k": 1}}), {})
    modify = Hint("PUT", "/c/1", orjson.dumps({"new_name": "n"}), {})
    batch = [(by_filter, 1), (write("delete", ["a"]), 2), (modify, 3), (modify, 4)]
    assert [(h, n) for h, _, n in coalesce(batch)] == [
        (by_filter, 1),
        (batch[1][0], 1),
        (modify, 1),
        (modify, 1),
    ]


def test_exact_vectors_are_kept_per_generation_bounded_and_reloaded_rarely_for_samples() -> None:
    import numpy as np

    from chroma_operator.router.exact_cache import ExactVectors, TooSoon

    cache = ExactVectors(max_bytes=10_000, max_age_s=60)
    m = np.zeros((4, 8), dtype=np.float32)
    cache.check_sample_load("c")  # never loaded: a sample may load
    cache.put("c", 3, ["a", "b", "c", "d"], m)
    hit = cache.get("c", 3)
    assert hit is not None and hit.ids == ["a", "b", "c", "d"]
    assert cache.get("c", 4) is None  # a write moved the generation
    with pytest.raises(TooSoon):
        cache.check_sample_load("c")
    cache.put("big", 0, ["x"] * 100, np.zeros((100, 64), dtype=np.float32))
    assert cache.get("big", 0) is None  # larger than the whole budget: not kept
    old = ExactVectors(max_age_s=0.0)
    old.put("c", 0, ["a"], m[:1])
    assert old.get("c", 0) is None  # older than the query cache's TTL
