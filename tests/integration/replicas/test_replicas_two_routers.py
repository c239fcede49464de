"""Two routers (as in Kubernetes, where every shard pod runs one behind the same Service)
each keep hints for a replica that is down. Their logs replay independently, so without
more the replica would end with whichever router replayed last, not with the last write.
A client that writes one record through both routers, one write after the other, must
still find both replicas holding the same, latest, records once they are in sync."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from chroma_operator.local.chroma_server import ChromaServer, free_port
from replica_harness import DIM, records_of, replica_view, wait_in_sync
from router_harness import RouterProcess, make_topology, metric_samples

pytestmark = pytest.mark.slow

N = 40


@pytest.fixture
def two_routers(replicas: list[list[ChromaServer]]) -> Iterator[tuple[RouterProcess, ...]]:
    ports = [free_port(), free_port()]
    peers = [f"http://127.0.0.1:{p}" for p in ports]
    routers = [
        RouterProcess(
            make_topology(
                [[s.url for s in shard] for shard in replicas],
                shard_timeout_seconds=5.0,
                peers=peers,
                hints_dir=tempfile.mkdtemp(prefix="hints-"),
            ),
            port=port,
        )
        for port in ports
    ]
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
        "metadatas": [{"v": v, "group": group} for _ in ids],
        "documents": [f"{i} version {v}" for i in ids],
    }


def test_writes_through_two_routers_to_a_lost_replica_end_as_the_last_write(
    replicas: list[list[ChromaServer]], two_routers: tuple[RouterProcess, RouterProcess]
) -> None:
    a, b = two_routers
    kept, lost = replicas[0]
    ids = [f"r{i}" for i in range(N)]
    dropped = [f"d{i}" for i in range(N // 4)]  # deleted by id through B
    filtered = [f"g{i}" for i in range(N // 4)]  # deleted by filter through B
    later = [f"h{i}" for i in range(N // 4)]  # then added through A, in that filter's group
    through_a = a.client().create_collection("two-routers")
    through_a.add(**version(ids + dropped, 0))  # type: ignore[arg-type]
    through_a.add(**version(filtered, 0, group="g"))  # type: ignore[arg-type]
    through_b = b.client().get_collection("two-routers")
    lost.kill()
    try:
        # One client, one write after the other: every id's last write went through B
        # (odd r-ids, d-ids, g-ids) or A (even r-ids, h-ids). Shard 0's parts are hints
        # at A and at B, and either router may replay last.
        through_a.upsert(**version(ids + dropped, 1))  # type: ignore[arg-type]
        through_b.upsert(**version(ids, 2))  # type: ignore[arg-type]
        through_b.delete(ids=dropped)
        through_b.delete(where={"group": "g"})
        through_a.upsert(**version(ids[::2], 3))  # type: ignore[arg-type]
        through_a.upsert(**version(later, 4, group="g"))  # type: ignore[arg-type]
        views = [{r["name"]: r for r in replica_view(x)}["shard-0-1"] for x in (a, b)]
        assert [v["pending_hints"] for v in views] == [3, 3], views
    finally:
        lost.start()
    wait_in_sync(a, 60)
    wait_in_sync(b, 60)
    want = {i: (f"{i} version {3 if n % 2 == 0 else 2}") for n, i in enumerate(ids)}
    want |= {i: f"{i} version 4" for i in later}
    on_kept = records_of(kept, "two-routers")
    assert {i: r[1] for i, r in on_kept.items()} == {i: want[i] for i in on_kept}
    assert records_of(lost, "two-routers") == on_kept
    got = through_b.get(include=["documents"])  # what clients read, from any replica
    assert dict(zip(got["ids"], got["documents"], strict=True)) == want
    # The routers' replays did disagree (each has only its own writes) and were put right.
    copied = sum(
        value
        for x in (a, b)
        for labels, value in metric_samples(
            httpx.get(x.url + "/metrics").text, "chroma_router_replay_reconciled_records_total"
        )
        if labels["replica"] == "shard-0-1"
    )
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
