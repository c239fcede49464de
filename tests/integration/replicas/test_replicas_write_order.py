"""Writes of the same ids sent at once reach both replicas of a shard in one order.

The second replica of each shard sits behind a loopback proxy that holds half of the
requests towards it for 30 ms: a write sent after another can overtake it there. Clients
fire four writes of the same record at once, many times over; every write must be
acknowledged, and afterwards the two replicas of each shard must hold the same records,
byte for byte.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from replica_harness import DIM, records_of, router_for, wait_in_sync
from router_harness import RouterProcess
from slow_proxy import DelayProxy

pytestmark = pytest.mark.slow

ROUNDS = 12


@pytest.fixture
def reordering_router(replicas: list[list[ChromaServer]]) -> Iterator[RouterProcess]:
    proxies = [DelayProxy(shard[1].port).start() for shard in replicas]
    for proxy in proxies:
        proxy.delay, proxy.probability = 0.03, 0.5
    grid = [[shard[0], proxy] for shard, proxy in zip(replicas, proxies, strict=True)]
    router = router_for(grid, Path(tempfile.mkdtemp(prefix="hints-"))).start()
    try:
        yield router
    finally:
        router.stop()
        for proxy in proxies:
            proxy.stop()


def write(col: Any, kind: str, record_id: str, version: int) -> Any:
    """One upsert (a new vector, document and metadata) or update (metadata only)."""
    if kind == "update":
        return col.update(ids=[record_id], metadatas=[{"v": version}])
    emb = np.random.default_rng(version).standard_normal(DIM).astype(np.float32)
    return col.upsert(
        ids=[record_id],
        embeddings=[emb],
        documents=[f"{record_id} v{version}"],
        metadatas=[{"v": version}],
    )


async def race(router: RouterProcess, name: str) -> int:
    """Each round, two upserts and two updates of one record sent at once through the
    stock async client; the writes acknowledged (a failed one raises)."""
    client = await chromadb.AsyncHttpClient(host="127.0.0.1", port=router.port)
    col = await client.get_collection(name)
    acknowledged = 0
    for r in range(ROUNDS):
        record_id = f"{name}-{r % 4}"  # 4 records: some on each shard
        kinds = ["upsert", "update", "upsert", "update"]
        sends = [write(col, kind, record_id, 10 * r + j) for j, kind in enumerate(kinds)]
        acknowledged += len(await asyncio.gather(*sends))
    return acknowledged


def test_concurrent_writes_of_one_record_leave_replicas_equal(
    replicas: list[list[ChromaServer]], reordering_router: RouterProcess
) -> None:
    name = "write-order"
    col = reordering_router.client().create_collection(name)
    col.add(
        ids=[f"{name}-{i}" for i in range(4)],
        embeddings=np.zeros((4, DIM), dtype=np.float32) + 1,
    )
    assert asyncio.run(race(reordering_router, name)) == 4 * ROUNDS
    wait_in_sync(reordering_router, 60)
    on_replicas = [(records_of(s[0], name), records_of(s[1], name)) for s in replicas]
    assert sum(len(first) for first, _ in on_replicas) == 4
    for first, second in on_replicas:
        assert first == second
    seen = col.get(include=["metadatas"])
    assert len(seen["ids"]) == 4
