"""A replica that comes back in sync while requests still hold the collection as it was
resolved without it (its id unknown): writes reach it live, and learning its id asks only
it (and the primary), never a hung sibling.

Before, such a replica was handed each write as a hint, so it went stale again after
every replay while writers kept going; with its sibling then hung, its shard had no
replica to read from. The router's own pool, book and collection map, in-process, over
real `chroma run` servers.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.router.collection_ids import CollectionIds
from chroma_operator.router.collections import LEARN_WAIT_S, CollectionMap, ResolvedCollection
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.replicas import Replica, ReplicaBook
from chroma_operator.router.shards import Reply, ShardPool
from replica_harness import DIM, hung
from router_harness import http_client, make_topology

pytestmark = pytest.mark.slow

TENANT, DATABASE = "default_tenant", "default_database"
SHARD_TIMEOUT = 5.0


@dataclass
class Router:
    """The parts of a router that route writes and resolve collections."""

    pool: ShardPool
    book: ReplicaBook
    collections: CollectionMap

    def replica(self, server: ChromaServer) -> Replica:
        rep = self.book.get(server.url)
        assert rep is not None
        return rep

    async def resolve(self, client_id: str) -> ResolvedCollection:
        return await self.collections.resolve(TENANT, DATABASE, client_id, {})

    async def resolved_while_stale(
        self, replicas: list[list[ChromaServer]], name: str, server: ChromaServer
    ) -> tuple[ResolvedCollection, Replica]:
        """A new collection on every replica, looked up while `server` was stale, which
        is back in sync now (its replay finished): the lookup has no id for it."""
        client_id = create_everywhere(replicas, name)
        back = self.replica(server)
        back.stale = True
        coll = await self.resolve(client_id)
        back.stale = False
        assert back.endpoint not in coll.ids
        return coll, back

    async def write_one(
        self, shard: int, coll: ResolvedCollection, suffix: str, record_id: str
    ) -> list[Reply]:
        """One record, written as the record routes write it."""
        return await self.pool.write(
            shard,
            "POST",
            lambda ep: coll.path(ep, suffix),
            content=orjson.dumps({"ids": [record_id], "embeddings": [[0.5] * DIM]}),
            where=(TENANT, DATABASE, coll.name, suffix),
        )


@pytest.fixture
async def router(replicas: list[list[ChromaServer]]) -> AsyncIterator[Router]:
    topology = make_topology(
        [[s.url for s in shard] for shard in replicas],
        shard_timeout_seconds=SHARD_TIMEOUT,
        hints_dir=tempfile.mkdtemp(prefix="hints-"),
    )
    book = ReplicaBook(topology)
    pool = ShardPool(topology, RouterMetrics(), book)
    yield Router(pool, book, CollectionMap(pool, CollectionIds(lambda: pool)))
    await pool.aclose()


def create_everywhere(replicas: list[list[ChromaServer]], name: str) -> str:
    """The collection on every replica (each picks its own id); the primary's id."""
    ids = [http_client(s.port).create_collection(name).id for shard in replicas for s in shard]
    return str(ids[0])


def own_id(server: ChromaServer, name: str) -> str:
    """The replica's own id for collection `name`."""
    return str(http_client(server.port).get_collection(name).id)


async def test_a_replica_back_in_sync_takes_writes_live_not_as_hints(
    replicas: list[list[ChromaServer]], router: Router
) -> None:
    coll, back = await router.resolved_while_stale(replicas, "back-in-sync", replicas[0][1])

    replies = await router.write_one(0, coll, "/add", "r1")  # this request still holds `coll`

    assert sorted(r.endpoint for r in replies) == sorted(s.url for s in replicas[0])
    assert router.book.state(back) == "in-sync" and back.log.pending == 0
    on_replica = http_client(replicas[0][1].port).get_collection("back-in-sync").get(ids=["r1"])
    assert on_replica["ids"] == ["r1"]  # there now, not after a replay


async def test_learning_a_returned_replicas_id_never_waits_on_a_hung_sibling(
    replicas: list[list[ChromaServer]], router: Router
) -> None:
    coll, back = await router.resolved_while_stale(replicas, "hung-sibling", replicas[1][1])
    sibling = replicas[1][0]
    assert sibling.url in coll.ids
    with hung(sibling):  # in sync, id known, not answering
        start = time.monotonic()
        again = await router.resolve(coll.client_id)
        took = time.monotonic() - start
    assert took < SHARD_TIMEOUT / 2, took  # the hung replica was not asked
    assert again is coll  # completed in place: requests holding it see the id too
    assert coll.ids[back.endpoint] == own_id(replicas[1][1], "hung-sibling")


async def test_with_the_live_replica_hung_one_back_in_sync_meanwhile_takes_the_write_live(
    replicas: list[list[ChromaServer]], router: Router
) -> None:
    """The write starts while replica 1 is stale and replica 0 is its only live target;
    replica 0 hangs, replica 1's replay finishes meanwhile: replica 1 takes the write
    live and stays in sync (through its log it would go stale again, leaving the shard
    no replica to read from)."""
    coll = await router.resolve(create_everywhere(replicas, "back-meanwhile"))
    sibling, back = replicas[1][0], router.replica(replicas[1][1])
    back.stale = True
    with hung(sibling):
        write = asyncio.ensure_future(router.write_one(1, coll, "/upsert", "m1"))
        await asyncio.sleep(0.5)
        back.stale = False  # its replay finished while the write waits on the hung one
        replies = await write
    assert [r.endpoint for r in replies] == [back.endpoint]
    assert router.book.state(back) == "in-sync" and back.log.pending == 0
    assert router.book.state(router.replica(sibling)) == "stale"  # it missed the write
    got = http_client(replicas[1][1].port).get_collection("back-meanwhile").get(ids=["m1"])
    assert got["ids"] == ["m1"]


async def test_a_returned_replica_that_hangs_holds_lookups_up_half_a_second_at_most(
    replicas: list[list[ChromaServer]], router: Router
) -> None:
    """Its id is still unknown when it hangs (no write has marked it stale yet): each
    lookup waits LEARN_WAIT_S at most, and the answer completes the collection later."""
    server = replicas[1][1]
    coll, back = await router.resolved_while_stale(replicas, "returned-hangs", server)
    with hung(server):
        slowest = 0.0
        for _ in range(3):  # the later ones share the first one's lookup
            start = time.monotonic()
            again = await router.resolve(coll.client_id)
            slowest = max(slowest, time.monotonic() - start)
            assert again is coll and back.endpoint not in coll.ids
    assert slowest < LEARN_WAIT_S + 0.4, slowest  # not the 5 s shard timeout
    deadline = time.monotonic() + SHARD_TIMEOUT
    while back.endpoint not in coll.ids and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the lookup still out answers once it runs again
    assert coll.ids.get(back.endpoint) == own_id(server, "returned-hangs")
