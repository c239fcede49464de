"""A hung replica holds a write up for a grace period, not for the shard timeout.

Two shards x two replicas of real servers, the shard timeout 8 s. After enough writes for
a write p95, one replica of shard 0 is stopped with SIGSTOP: the next write that shard 0
takes is acknowledged once its sibling took it and the grace period (at least 2 s) has
passed, the stopped replica is stale, and once it runs again it catches up from its hint
log to the same records as its sibling.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.router.stragglers import GRACE_MIN_S
from replica_harness import (
    SHARD_TIMEOUT,
    batch,
    hung,
    records_of,
    replica_view,
    router_for,
    wait_in_sync,
)
from router_harness import metric_samples

pytestmark = pytest.mark.slow


def stragglers(router_url: str) -> dict[str, float]:
    """chroma_router_write_stragglers_total per replica."""
    text = httpx.get(router_url + "/metrics", timeout=5).text
    return {
        labels["replica"]: value
        for labels, value in metric_samples(text, "chroma_router_write_stragglers_total")
    }


def test_a_hung_replica_costs_a_write_the_grace_period_not_the_timeout(
    replicas: list[list[ChromaServer]],
) -> None:
    router = router_for(replicas, Path(tempfile.mkdtemp(prefix="hints-"))).start()
    name = "straggler-coll"
    try:
        col = router.client().create_collection(name)
        for i in range(25):  # a write p95 for each shard
            col.upsert(**batch(f"warm{i}-", 6, i))
        with hung(replicas[0][1]):
            start = time.monotonic()
            col.upsert(**batch("during-", 20, 99))  # both shards own some of these
            elapsed = time.monotonic() - start
            view = {r["name"]: r for r in replica_view(router)}
            assert view["shard-0-1"]["state"] == "stale", view
            assert view["shard-0-0"]["state"] == "in-sync", view
            col.upsert(**batch("after-", 20, 100))  # the stale one is not waited for
            assert time.monotonic() - start - elapsed < SHARD_TIMEOUT / 2
        # the grace is 4 x p95 of the warm-up writes, at least GRACE_MIN_S; the old bound
        # was the shard timeout
        assert GRACE_MIN_S <= elapsed < SHARD_TIMEOUT - 2, elapsed
        assert stragglers(router.url) == {"shard-0-1": 1.0}
        wait_in_sync(router, 60)
        assert col.count() == 25 * 6 + 40
        for shard in replicas:
            assert records_of(shard[0], name) == records_of(shard[1], name)
    finally:
        router.stop()
