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
from typing import Any

import httpx
import numpy as np
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from replica_harness import DIM, records_of, wait_in_sync
from router_harness import RouterProcess, make_topology
from slow_proxy import DelayProxy

pytestmark = pytest.mark.slow

DB = "/api/v2/tenants/default_tenant/databases/default_database"
ROUNDS = 12


@pytest.fixture
def reordering_router(replicas: list[list[ChromaServer]]) -> Iterator[RouterProcess]:
    proxies = [DelayProxy(shard[1].port).start() for shard in replicas]
    for proxy in proxies:
        proxy.delay, proxy.probability = 0.03, 0.5
    topology = make_topology(
        [[shard[0].url, proxy.url] for shard, proxy in zip(replicas, proxies, strict=True)],
        shard_timeout_seconds=8.0,
        hints_dir=tempfile.mkdtemp(prefix="hints-"),
    )
    router = RouterProcess(topology, args=["--log-level", "info"]).start()
    try:
        yield router
    finally:
        router.stop()
        for proxy in proxies:
            proxy.stop()


def write_body(kind: str, record_id: str, version: int) -> dict[str, Any]:
    body: dict[str, Any] = {"ids": [record_id], "metadatas": [{"v": version}]}
    if kind == "upsert":
        emb = np.random.default_rng(version).standard_normal(DIM).astype(np.float32)
        body |= {"embeddings": [emb.tolist()], "documents": [f"{record_id} v{version}"]}
    return body


async def race(router: RouterProcess, collection_id: str, name: str) -> list[int]:
    """Each round, two upserts and two updates of one record sent at once."""
    statuses: list[int] = []
    base = f"{router.url}{DB}/collections/{collection_id}"
    async with httpx.AsyncClient(timeout=30) as client:
        for r in range(ROUNDS):
            record_id = f"{name}-{r % 4}"  # 4 records: some on each shard
            sends = [
                client.post(f"{base}/{kind}", json=write_body(kind, record_id, 10 * r + j))
                for j, kind in enumerate(["upsert", "update", "upsert", "update"])
            ]
            statuses += [resp.status_code for resp in await asyncio.gather(*sends)]
    return statuses


def test_concurrent_writes_of_one_record_leave_replicas_equal(
    replicas: list[list[ChromaServer]], reordering_router: RouterProcess
) -> None:
    name = "write-order"
    col = reordering_router.client().create_collection(name)
    col.add(
        ids=[f"{name}-{i}" for i in range(4)],
        embeddings=np.zeros((4, DIM), dtype=np.float32) + 1,
    )
    statuses = asyncio.run(race(reordering_router, col.id, name))
    assert statuses == [200] * (4 * ROUNDS)
    wait_in_sync(reordering_router, 60)
    on_replicas = [(records_of(s[0], name), records_of(s[1], name)) for s in replicas]
    assert sum(len(first) for first, _ in on_replicas) == 4
    for first, second in on_replicas:
        assert first == second
    seen = col.get(include=["metadatas"])
    assert len(seen["ids"]) == 4
