"""A replica that comes back without its data (a lost volume) is never read as in sync:
the routers see it lacks the mark its sibling carries, keep it out of reads and writes
as *repairing*, and a repair brings it back with everything."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.repair.run import Options, run_repair
from chroma_operator.router.lost_replicas import (
    MARK_COLLECTION,
    MARK_DATABASE,
    MARK_SETTLE_LOOKS,
    MARK_TENANT,
)
from replica_harness import batch, records_of, replica_view, router_for

pytestmark = pytest.mark.slow

MARK_URL = f"/api/v2/tenants/{MARK_TENANT}/databases/{MARK_DATABASE}/collections/{MARK_COLLECTION}"


def marked(server: ChromaServer) -> bool:
    return httpx.get(server.url + MARK_URL, timeout=5).status_code == 200


def state_of(router_url: str, name: str) -> str:
    rows = httpx.get(router_url + "/internal/replicas", timeout=5).json()["replicas"]
    return str({r["name"]: r for r in rows}[name]["state"])


def wait_for(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.2)


def test_a_replica_back_without_its_data_is_repairing_until_repaired(
    replicas: list[list[ChromaServer]],
) -> None:
    router = router_for(
        replicas, Path(tempfile.mkdtemp(prefix="hints-")), mark_check_seconds=0.5
    ).start()
    kept, lost = replicas[0]
    try:
        col = router.client().create_collection("lost-data")
        col.add(**batch("a", 40, 1))
        wait_for("marked", lambda: all(marked(s) for shard in replicas for s in shard))
        time.sleep(MARK_SETTLE_LOOKS * 0.5)  # marks this young may still be being made
        lost.kill()
        shutil.rmtree(lost.data_dir / "data")  # the volume is gone: a new, empty one
        lost.start()
        assert not marked(lost) and lost.url  # it answers, with nothing
        wait_for("repairing", lambda: state_of(router.url, "shard-0-1") == "repairing")
        for _ in range(10):  # reads never reach the empty replica
            assert col.count() == 40
        col.upsert(**batch("b", 10, 2))  # writes go on without it (no hints: copied later)
        assert not {r["name"] for r in replica_view(router) if r["pending_hints"]}

        report = run_repair(Options(url=router.url))
        assert report.converged
        assert state_of(router.url, "shard-0-1") == "in-sync"
        assert marked(lost)
        assert records_of(lost, "lost-data") == records_of(kept, "lost-data")
        time.sleep(1.5)  # three more looks: it carries its mark again
        assert state_of(router.url, "shard-0-1") == "in-sync"
        assert col.count() == 50
    finally:
        router.stop()
        if not lost.running:
            lost.start()
