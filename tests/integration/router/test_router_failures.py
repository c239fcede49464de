"""Shard failures: a Chroma-shaped 503 naming the shard, partial answers when allowed,
replica failover for reads, and a split batch that converges when retried."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from chromadb.errors import ChromaError

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.router.placement import shard_for
from router_harness import RouterProcess, http_client, make_topology

pytestmark = pytest.mark.slow

DIM = 8


@pytest.fixture(scope="module")
def strict(shards: list[ChromaServer]) -> Iterator[RouterProcess]:
    proc = RouterProcess(
        make_topology([[s.url] for s in shards], shard_timeout_seconds=3.0)
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def partial(shards: list[ChromaServer]) -> Iterator[RouterProcess]:
    proc = RouterProcess(
        make_topology([[s.url] for s in shards], partial_results=True, shard_timeout_seconds=3.0)
    ).start()
    yield proc
    proc.stop()


def data(n: int, prefix: str) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    return {
        "ids": [f"{prefix}{i}" for i in range(n)],
        "embeddings": rng.standard_normal((n, DIM)).astype(np.float32),
        "metadatas": [{"i": i} for i in range(n)],
    }


def test_killed_shard_gives_503_or_partial_answer(
    strict: RouterProcess, partial: RouterProcess, shards: list[ChromaServer], name: str
) -> None:
    batch = data(90, "k")
    col = strict.client().create_collection(name)
    col.add(**batch)
    pcol = partial.client().get_collection(name)
    q = batch["embeddings"][:2]
    full = pcol.query(query_embeddings=q, n_results=90, include=["distances"])
    assert len(full["ids"][0]) == 90
    shards[1].kill()
    try:
        with pytest.raises(ChromaError, match="Shard 1"):
            col.query(query_embeddings=q, n_results=5)
        with pytest.raises(ChromaError, match="Shard 1"):
            col.count()
        url = (
            f"{strict.url}/api/v2/tenants/default_tenant/databases/default_database/"
            f"collections/{col.id}/query"
        )
        resp = httpx.post(url, json={"query_embeddings": q.tolist(), "n_results": 5})
        assert resp.status_code == 503
        assert resp.json()["error"] == "ChromaError" and "Shard 1" in resp.json()["message"]
        ready = httpx.get(strict.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["shards_down"] == [1]
        assert httpx.get(strict.url + "/healthz").status_code == 200

        presp = httpx.post(
            url.replace(strict.url, partial.url).replace(str(col.id), str(pcol.id)),
            json={"query_embeddings": q.tolist(), "n_results": 90, "include": ["distances"]},
        )
        assert presp.status_code == 200
        assert presp.headers["X-Chroma-Partial-Shards"] == "1"
        got = presp.json()["ids"][0]
        expected = [i for i in full["ids"][0] if shard_for(i, 3) != 1]
        assert got == expected
    finally:
        shards[1].restart()
    assert httpx.get(strict.url + "/readyz").status_code == 200
    assert col.count() == 90


def test_batch_split_across_a_dead_shard_converges_on_retry(
    strict: RouterProcess, shards: list[ChromaServer], name: str
) -> None:
    batch = data(300, "r")
    owners = [shard_for(i, 3) for i in batch["ids"]]
    col = strict.client().create_collection(name)
    col.add(ids=["seed"], embeddings=[[0.0] * DIM])
    shards[2].kill()
    try:
        with pytest.raises(ChromaError) as err:
            col.add(**batch)
        assert "Shard 2" in str(err.value) and "retrying" in str(err.value)
    finally:
        shards[2].restart()
    # The other shards took their part; the dead one took nothing.
    per_shard = [http_client(s.port).get_collection(name).count() for s in shards]
    expected = [owners.count(k) for k in range(3)]
    seed_owner = shard_for("seed", 3)
    expected_now = [
        expected[k] + (k == seed_owner) if k != 2 else int(seed_owner == 2) for k in range(3)
    ]
    assert per_shard == expected_now
    col.add(**batch)  # the same request again
    assert col.count() == 301
    got = col.get(include=["embeddings", "metadatas"])
    assert sorted(got["ids"]) == sorted([*batch["ids"], "seed"])
    rows = dict(zip(got["ids"], got["metadatas"], strict=True))
    assert all(rows[f"r{i}"] == {"i": i} for i in range(300))
    per_shard = [http_client(s.port).get_collection(name).count() for s in shards]
    assert per_shard == [expected[k] + (k == seed_owner) for k in range(3)]


def test_reads_fail_over_to_another_replica(shards: list[ChromaServer], name: str) -> None:
    replica = ChromaServer().start()
    proc = RouterProcess(
        make_topology(
            [[shards[0].url], [shards[1].url, replica.url], [shards[2].url]],
            shard_timeout_seconds=3.0,
        )
    ).start()
    try:
        col = proc.client().create_collection(name)
        batch = data(60, "f")
        col.add(**batch)  # writes reach both replicas of shard 1
        owned = sum(1 for i in batch["ids"] if shard_for(i, 3) == 1)
        assert http_client(replica.port).get_collection(name).count() == owned
        replica.kill()
        for _ in range(4):  # round-robin would pick the dead replica at least once
            assert col.count() == 60
            got = col.query(query_embeddings=batch["embeddings"][:1], n_results=60)
            assert len(got["ids"][0]) == 60
        metrics = httpx.get(proc.url + "/metrics").text
        assert 'chroma_router_shard_errors_total{kind="connection",shard="1"}' in metrics
    finally:
        proc.stop()
        replica.close()


def test_a_frozen_shard_times_out_within_the_shard_timeout(
    shards: list[ChromaServer], name: str
) -> None:
    proc = RouterProcess(
        make_topology([[s.url] for s in shards], shard_timeout_seconds=1.0)
    ).start()
    pid = shards[0].pid
    assert pid is not None
    try:
        col = proc.client().create_collection(name)
        col.add(**data(30, "t"))
        os.kill(pid, signal.SIGSTOP)  # alive but silent: only the timeout can save us
        try:
            url = (
                f"{proc.url}/api/v2/tenants/default_tenant/databases/default_database/"
                f"collections/{col.id}/count"
            )
            start = time.monotonic()
            resp = httpx.get(url, timeout=30)
            elapsed = time.monotonic() - start
        finally:
            os.kill(pid, signal.SIGCONT)
        assert resp.status_code == 503
        assert "Shard 0" in resp.json()["message"] and "timed out" in resp.json()["message"]
        assert elapsed < 5  # one timeout, one retry: about 2 s, not the client's 30
        assert col.count() == 30
    finally:
        proc.stop()
