"""A replica that comes back without its data (a lost volume) is never read as in sync:
its hints are not replayed to it, the routers see it lacks the mark its sibling carries
and keep it out of reads and writes as *repairing*, and a repair brings it back with
everything."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import chromadb
import httpx
import pytest
from chromadb.errors import NotFoundError

from chroma_operator.data.tenant_registry import RESERVED_TENANT
from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.repair.run import Options, run_repair
from chroma_operator.router.lost_replicas import MARK_COLLECTION, MARK_DATABASE
from replica_harness import (
    batch,
    records_of,
    replica_counter,
    replica_row,
    replica_view,
    router_for,
)
from router_harness import RouterProcess, admin_client

pytestmark = pytest.mark.slow

MARK_URL = (
    f"/api/v2/tenants/{RESERVED_TENANT}/databases/{MARK_DATABASE}/collections/{MARK_COLLECTION}"
)


def mark_long_ago(server: ChromaServer) -> None:
    """The mark, as if made an hour ago (no wait for young marks to settle), made with
    the stock client straight on the server."""
    admin = admin_client(server.port)
    try:
        admin.get_tenant(RESERVED_TENANT)
    except NotFoundError:
        admin.create_tenant(RESERVED_TENANT)
    try:
        admin.get_database(MARK_DATABASE, tenant=RESERVED_TENANT)
    except NotFoundError:
        admin.create_database(MARK_DATABASE, tenant=RESERVED_TENANT)
    client = chromadb.HttpClient(
        host="127.0.0.1", port=server.port, tenant=RESERVED_TENANT, database=MARK_DATABASE
    )
    with contextlib.suppress(NotFoundError):
        client.delete_collection(MARK_COLLECTION)
    client.create_collection(MARK_COLLECTION, metadata={"made_at": time.time() - 3600})


def marked(server: ChromaServer) -> bool:
    return httpx.get(server.url + MARK_URL, timeout=5).status_code == 200


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.2)


def router_with_old_marks(replicas: list[list[ChromaServer]]) -> tuple[RouterProcess, Path]:
    """Every replica marked long ago, and a router that looks at the marks once, now;
    with its hint directory (a later router over the same hints takes them over)."""
    for shard in replicas:
        for server in shard:
            mark_long_ago(server)
    hints = Path(tempfile.mkdtemp(prefix="hints-"))
    return router_for(replicas, hints, mark_check_seconds=3600).start(), hints


def back_empty(server: ChromaServer) -> None:
    """A killed replica back with a new, empty volume."""
    shutil.rmtree(server.data_dir / "data")
    server.start()


def looking_router(replicas: list[list[ChromaServer]], hints: Path, replica: str) -> RouterProcess:
    """A router that looks at the marks every half second, once it holds `replica`
    repairing."""
    router = router_for(replicas, hints, mark_check_seconds=0.5).start()
    try:
        wait_for("repairing", lambda: replica_row(router, replica)["state"] == "repairing")
    except BaseException:
        router.stop()
        raise
    return router


def repaired(
    router: RouterProcess, replica: str, kept: ChromaServer, lost: ChromaServer, name: str
) -> None:
    """`chroma-operator repair` brings `replica` (`lost`) back in sync, holding what `kept`
    holds of collection `name`."""
    assert run_repair(Options(url=router.url)).converged
    assert replica_row(router, replica)["state"] == "in-sync"
    assert records_of(lost, name) == records_of(kept, name)


def test_a_replica_back_without_its_data_is_repairing_until_repaired(
    replicas: list[list[ChromaServer]],
) -> None:
    router, hints = router_with_old_marks(replicas)
    kept, lost = replicas[0]
    try:
        col = router.client().create_collection("lost-data")
        col.add(**batch("a", 40, 1))
        lost.kill()
        col.upsert(**batch("w", 20, 2))  # while it is away: hints for it
        back_empty(lost)  # the volume is gone: a new, empty one
        assert not marked(lost)  # it answers, with nothing
        time.sleep(2.5)  # a replay would have run by now (pings every 0.5 s, 0.5 s grace)
        # Its hints are not replayed to it: a few records would pass for all of them.
        assert replica_row(router, "shard-0-1")["state"] == "stale"
        assert replica_counter(router, "chroma_router_hints_replayed_total", "shard-0-1") == 0
        assert col.count() == 60
        router.stop()

        # A router that looks at the marks now (and every half second).
        router = looking_router(replicas, hints, "shard-0-1")
        col = router.client().get_collection("lost-data")
        for _ in range(10):  # reads never reach the empty replica
            assert col.count() == 60
        col.upsert(**batch("b", 10, 3))  # writes go on without it (no hints: copied later)
        assert not {r["name"] for r in replica_view(router) if r["pending_hints"]}

        repaired(router, "shard-0-1", kept, lost, "lost-data")
        assert marked(lost)
        time.sleep(1.5)  # three more looks: it carries its mark again
        assert replica_row(router, "shard-0-1")["state"] == "in-sync"
        assert col.count() == 70
    finally:
        router.stop()
        if not lost.running:
            lost.start()


def test_a_replica_back_empty_with_no_write_missed_is_never_read(
    replicas: list[list[ChromaServer]],
) -> None:
    """No write reached the shard while the replica was away, so no hint says it missed
    anything, and the marks are not looked at again: the reads that found it down are
    what keep it out of reads until it shows its mark."""
    router, hints = router_with_old_marks(replicas)
    kept, lost = replicas[1]
    try:
        col = router.client().create_collection("back-empty")
        col.add(**batch("a", 40, 1))
        lost.kill()
        for _ in range(6):  # reads only; one in two is sent to it first and fails over
            assert col.count() == 40
        assert replica_row(router, "shard-1-1")["state"] == "stale"
        back_empty(lost)
        # Past the 5 s a replica that failed a read is asked last (hedge.SUSPECT_SECONDS);
        # catch-up has asked it for its mark many times by now.
        time.sleep(6)
        assert replica_row(router, "shard-1-1")["state"] == "stale"
        for _ in range(10):
            assert col.count() == 40
            assert len(col.get(limit=100)["ids"]) == 40
        router.stop()

        router = looking_router(replicas, hints, "shard-1-1")
        repaired(router, "shard-1-1", kept, lost, "back-empty")
    finally:
        router.stop()
        if not lost.running:
            lost.start()


def test_a_replica_back_empty_between_two_requests_is_never_read(
    replicas: list[list[ChromaServer]],
) -> None:
    """No request at all reached it while it was away, and the marks are not looked at
    again: the first read it answers with 404 for a collection its sibling holds is
    answered by the sibling, and that 404 keeps it out of reads until it shows its mark."""
    router, hints = router_with_old_marks(replicas)
    kept, lost = replicas[0]
    try:
        col = router.client().create_collection("between")
        col.add(**batch("a", 40, 1))
        lost.kill()
        back_empty(lost)  # before any request found it down
        for _ in range(10):
            assert col.count() == 40
            assert len(col.get(limit=100)["ids"]) == 40
        assert replica_row(router, "shard-0-1")["state"] == "stale"
        time.sleep(1.5)  # catch-up asks it for its mark: none, so it stays out of reads
        assert replica_row(router, "shard-0-1")["state"] == "stale"
        router.stop()

        router = looking_router(replicas, hints, "shard-0-1")
        repaired(router, "shard-0-1", kept, lost, "between")
    finally:
        router.stop()
        if not lost.running:
            lost.start()


def test_a_primary_back_without_its_data_leaves_its_collections_found(
    replicas: list[list[ChromaServer]],
) -> None:
    """Shard 0's first replica (whose ids clients see) back empty: while it is held for
    the repair, collections are found through its sibling, under the ids clients hold.
    Before, `get_collection` asked it and answered NotFoundError."""
    router, hints = router_with_old_marks(replicas)
    name = "primary-lost"
    made = router.client().create_collection(name)
    made.add(**batch("p", 30, seed=5))
    client_id = str(made.id)
    router.stop()
    lost, kept = replicas[0]
    lost.kill()
    back_empty(lost)
    router = looking_router(replicas, hints, "shard-0-0")
    try:
        found = router.client().get_collection(name)
        assert str(found.id) == client_id
        assert found.count() == 30
        assert found.get(ids=["p7"])["ids"] == ["p7"]
        found.add(**batch("q", 10, seed=6))
        assert found.count() == 40
        repaired(router, "shard-0-0", kept, lost, name)
    finally:
        router.stop()
