"""Two routers (as in Kubernetes, where every shard pod runs one behind the same Service)
each keep hints for a replica that is down. Their logs replay independently, so without
more the replica would end with whichever router replayed last, not with the last write.
A client that writes one record through both routers, one write after the other, must
still find both replicas holding the same, latest, records once they are in sync."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from replica_harness import (
    DIM,
    peer_routers,
    records_of,
    replica_counter,
    replica_row,
    wait_in_sync,
)
from router_harness import RouterProcess

pytestmark = pytest.mark.slow

N = 40


@pytest.fixture
def two_routers(replicas: list[list[ChromaServer]]) -> Iterator[tuple[RouterProcess, ...]]:
    routers = peer_routers(replicas)
    try:
        for r in routers:
            r.start()
        yield tuple(routers)
    finally:
        for r in routers:
            r.stop()


def version(ids: list[str], v: int, group: str = "r") -> dict[str, object]:
    rng = np.random.default_rng(v)
    return {
        "ids": ids,
        "embeddings": rng.standard_normal((len(ids), DIM)).astype(np.float32),
        # version 1 alone brings a key (which B then removes): a copy that merged
        # metadata into the replica's old record would keep it
        "metadatas": [{"v": v, "group": group} | ({"only_v1": 1} if v == 1 else {}) for _ in ids],
        "documents": [f"{i} version {v}" for i in ids],
    }


@contextmanager
def stopped(router: RouterProcess) -> Iterator[None]:
    """The router's process stopped (SIGSTOP): it replays nothing until it goes on."""
    assert router.proc is not None
    os.kill(router.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(router.proc.pid, signal.SIGCONT)


@pytest.mark.parametrize("last", ["A", "B"])
def test_writes_through_two_routers_to_a_lost_replica_end_as_the_last_write(
    replicas: list[list[ChromaServer]],
    two_routers: tuple[RouterProcess, RouterProcess],
    last: str,
) -> None:
    """Either router may replay last: each order is forced once (the other router is
    stopped until the first has replayed)."""
    a, b = two_routers
    kept, lost = replicas[0]
    ids = [f"r{i}" for i in range(N)]
    dropped = [f"d{i}" for i in range(N // 4)]  # deleted by id through B
    filtered = [f"g{i}" for i in range(N // 4)]  # deleted by filter through B
    later = [f"h{i}" for i in range(N // 4)]  # then added through A, in that filter's group
    name = f"two-routers-{last}"
    through_a = a.client().create_collection(name)
    through_a.add(**version(ids + dropped, 0))  # type: ignore[arg-type]
    through_a.add(**version(filtered, 0, group="g"))  # type: ignore[arg-type]
    through_b = b.client().get_collection(name)
    lost.kill()
    try:
        # One client, one write after the other: every id's last write went through B
        # (odd r-ids, d-ids, g-ids) or A (even r-ids, h-ids). Shard 0's parts are hints
        # at A and at B, and either router may replay last.
        through_a.upsert(**version(ids + dropped, 1))  # type: ignore[arg-type]
        through_b.upsert(**version(ids, 2))  # type: ignore[arg-type]
        through_b.update(ids=ids, metadatas=[{"only_v1": None} for _ in ids])
        through_b.delete(ids=dropped)
        through_b.delete(where={"group": "g"})
        through_a.upsert(**version(ids[::2], 3))  # type: ignore[arg-type]
        through_a.upsert(**version(later, 4, group="g"))  # type: ignore[arg-type]
        views = [replica_row(x, "shard-0-1") for x in (a, b)]
        assert [v["pending_hints"] for v in views] == [3, 4], views
    finally:
        lost.start()
    first, second = (b, a) if last == "A" else (a, b)
    with stopped(second):
        deadline = time.monotonic() + 60
        while replica_row(first, "shard-0-1")["own_state"] != "in-sync":
            assert time.monotonic() < deadline, "the first router did not replay"
            time.sleep(0.1)
    wait_in_sync(a, 60)
    wait_in_sync(b, 60)
    want = {i: (f"{i} version {3 if n % 2 == 0 else 2}") for n, i in enumerate(ids)}
    want |= {i: f"{i} version 4" for i in later}
    on_kept = records_of(kept, name)
    assert not any("only_v1" in r[2] for r in on_kept.values())
    assert {i: r[1] for i, r in on_kept.items()} == {i: want[i] for i in on_kept}
    assert records_of(lost, name) == on_kept
    got = through_b.get(include=["documents"])  # what clients read, from any replica
    assert dict(zip(got["ids"], got["documents"], strict=True)) == want
    # The second router's replay did undo writes of the first's (each has only its own
    # writes), and it put them right.
    copied = replica_counter(second, "chroma_router_replay_reconciled_records_total", "shard-0-1")
    assert copied > 0


def test_with_its_sibling_down_too_a_replayed_replica_still_serves(
    replicas: list[list[ChromaServer]], two_routers: tuple[RouterProcess, RouterProcess]
) -> None:
    """Nothing to reconcile with: the replica is in sync as its replay left it, rather
    than leaving the shard with no replica to read."""
    a, _ = two_routers
    kept, lost = replicas[0]
    ids = [f"s{i}" for i in range(N)]
    col = a.client().create_collection("sibling-down")
    col.add(**version(ids, 0))  # type: ignore[arg-type]
    lost.kill()
    try:
        col.upsert(**version(ids, 1))  # type: ignore[arg-type]  # shard 0's part: hints
        kept.kill()  # no write notices: the routers still count it in sync
    finally:
        lost.start()
    try:
        wait_in_sync(a, 60)
        got = col.get(ids=ids, include=["documents"])  # shard 0 from the replayed replica
        assert sorted(got["documents"]) == sorted(f"{i} version 1" for i in ids)
    finally:
        kept.start()
