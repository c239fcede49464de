"""Collections are found while shard 0's first replica (the primary, whose ids clients
see) is killed: by a router started after it went, with the stock client.

Before, every collection lookup asked the primary: `get_collection`, listing and counting
failed with 503 on every router, and so did every request of a router that had not
resolved the collection yet. Two shards x two replicas of real `chroma run` servers;
the primary is killed with SIGKILL and started again on the same data.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import pytest
from chromadb.errors import NotFoundError

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.router.shard_zero import PRIMARY_WAIT_S
from replica_harness import DIM, SHARD_TIMEOUT, batch, hung, router_for, wait_in_sync
from router_harness import RouterProcess, new_tenant

pytestmark = pytest.mark.slow

TENANT = "away"


def client(port: int, tenant: str = TENANT) -> Any:
    return chromadb.HttpClient(host="127.0.0.1", port=port, tenant=tenant)


def records(server: ChromaServer, name: str) -> dict[str, tuple[bytes, Any]]:
    got = client(server.port).get_collection(name).get(include=["embeddings", "metadatas"])
    return {
        i: (np.asarray(e, dtype=np.float32).tobytes(), m)
        for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True)
    }


def set_up_before_the_primary_goes(
    replicas: list[list[ChromaServer]], hints: Path, tenant: str = TENANT
) -> dict[str, str]:
    """Collections made, renamed, deleted and used through a first router; their ids."""
    first = router_for(replicas, hints).start()
    try:
        made = new_tenant(first.port, tenant)
        kept = made.create_collection("kept", embedding_function=None)
        kept.add(**batch("k", 40, seed=1))
        made.create_collection("to-rename", embedding_function=None).modify(name="renamed")
        made.create_collection("gone", embedding_function=None)
        made.delete_collection("gone")
        # One made on every replica without a router (as before the routers wrote ids
        # down): this router's first use of it writes them.
        for shard in replicas:
            for server in shard:
                client(server.port, tenant).create_collection("older", embedding_function=None)
        older = made.get_collection("older")
        older.add(**batch("o", 10, seed=2))
        ids = {c.name: str(c.id) for c in made.list_collections()}
        assert set(ids) == {"kept", "renamed", "older"}
        return ids
    finally:
        first.stop()


def test_collections_are_found_and_served_while_the_primary_is_killed(
    replicas: list[list[ChromaServer]],
) -> None:
    hints = Path(tempfile.mkdtemp(prefix="hints-"))
    ids = set_up_before_the_primary_goes(replicas, hints)
    primary, sibling = replicas[0]
    primary.kill()
    router: RouterProcess | None = None
    try:
        router = router_for(replicas, Path(tempfile.mkdtemp(prefix="hints-"))).start()
        c = client(router.port)
        kept = c.get_collection("kept")
        assert str(kept.id) == ids["kept"]
        assert kept.count() == 40
        top = kept.query(query_embeddings=[[0.1] * DIM], n_results=5)
        assert len(top["ids"][0]) == 5
        kept.add(**batch("late", 10, seed=3))
        assert kept.count() == 50
        assert str(c.get_collection("renamed").id) == ids["renamed"]
        assert str(c.get_collection("older").id) == ids["older"]
        assert c.get_collection("older").count() == 10
        with pytest.raises(NotFoundError):
            c.get_collection("to-rename")
        with pytest.raises(NotFoundError):
            c.get_collection("gone")
        assert {col.name: str(col.id) for col in c.list_collections()} == ids
        assert c.count_collections() == 3
        # By id, as a client that kept one from before asks.
        base = f"{router.url}/api/v2/tenants/{TENANT}/databases/default_database/collections"
        model = httpx.get(f"{base}/by-id/{ids['renamed']}", timeout=10).json()
        assert (model["id"], model["name"]) == (ids["renamed"], "renamed")
        got = httpx.post(f"{base}/{ids['older']}/get", json={"ids": ["o3"]}, timeout=10)
        assert got.json()["ids"] == ["o3"]
    finally:
        if not primary.running:
            primary.start()
    assert router is not None
    try:
        wait_in_sync(router, timeout=60)
        # The writes it missed reached it, and it is the primary again: its own ids.
        on_primary = records(primary, "kept")
        assert on_primary == records(sibling, "kept")
        assert any(i.startswith("late") for i in on_primary)  # shard 0's share of them
        assert client(router.port).get_collection("kept").count() == 50
        assert str(client(router.port).get_collection("kept").id) == ids["kept"]
    finally:
        router.stop()


def test_a_hung_primary_holds_collection_lookups_a_second_not_the_shard_timeout(
    replicas: list[list[ChromaServer]],
) -> None:
    """SIGSTOP: the primary takes connections and answers nothing. Lookups ask its
    sibling after a second (`PRIMARY_WAIT_S`) instead of waiting out the shard timeout
    (8 s here: before, 8.0 s for `get_collection` and 32 s for these three calls)."""
    tenant = "hung-primary"
    ids = set_up_before_the_primary_goes(replicas, Path(tempfile.mkdtemp()), tenant)
    primary = replicas[0][0]
    router = router_for(replicas, Path(tempfile.mkdtemp(prefix="hints-"))).start()
    try:
        with hung(primary):
            c = client(router.port, tenant)
            started = time.monotonic()
            kept = c.get_collection("kept")
            looked_up = time.monotonic() - started
            assert str(kept.id) == ids["kept"]
            assert kept.count() == 40
            assert {col.name: str(col.id) for col in c.list_collections()} == ids
            took = time.monotonic() - started
        assert looked_up < PRIMARY_WAIT_S + 3 < SHARD_TIMEOUT
        assert took < 3 * (PRIMARY_WAIT_S + 3)
    finally:
        router.stop()
