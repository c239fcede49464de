"""Replica operations with real servers: backup holds, a full hint volume, hedged reads
past a hung replica, and peer routers that hear of stale replicas."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.router.hedge import SUSPECT_SECONDS
from replica_harness import (
    DIM,
    batch,
    peer_routers,
    records_of,
    replica_row,
    replica_view,
    router_for,
    wait_in_sync,
)
from router_harness import RouterProcess, http_client, make_topology

pytestmark = pytest.mark.slow


def test_backup_hold_detaches_a_replica_then_it_catches_up(
    replicas: list[list[ChromaServer]],
) -> None:
    router = router_for(replicas, Path(tempfile.mkdtemp(prefix="hints-"))).start()
    held = replicas[0][1]
    try:
        col = router.client().create_collection("held-coll")
        col.add(**batch("a", 40, 1))
        direct = http_client(held.port).get_collection("held-coll")
        before = direct.count()
        hold = {"shard": 0, "replica": held.url}
        resp = httpx.post(router.url + "/internal/backup/hold", json=hold)
        assert resp.status_code == 200 and resp.json()["mode"] == "detached"
        col.add(**batch("b", 40, 2))  # writes go on; shard 0's part waits in hints
        assert direct.count() == before  # the held replica is a point in time
        assert col.count() == 80  # and nobody reads it meanwhile
        view = {r["name"]: r for r in replica_view(router)}
        assert view["shard-0-1"]["state"] == "fenced" and view["shard-0-1"]["pending_hints"] > 0
        resp = httpx.post(router.url + "/internal/backup/release", json=hold)
        assert resp.status_code == 200
        wait_in_sync(router, 60)
        assert records_of(held, "held-coll") == records_of(replicas[0][0], "held-coll")
    finally:
        router.stop()

    single = RouterProcess(
        make_topology([[replicas[0][0].url], [replicas[1][0].url]], shard_timeout_seconds=5.0)
    ).start()
    try:
        col = single.client().get_collection("held-coll")
        hold = {"shard": 0, "replica": replicas[0][0].url}
        resp = httpx.post(single.url + "/internal/backup/hold", json=hold)
        assert resp.json()["mode"] == "blocked"
        url = (
            f"{single.url}/api/v2/tenants/default_tenant/databases/default_database/"
            f"collections/{col.id}/upsert"
        )
        # An id that shard 0 owns (jump hash over 2 shards).
        from chroma_operator.router.placement import shard_for

        rid = next(f"x{i}" for i in range(100) if shard_for(f"x{i}", 2) == 0)
        body = {"ids": [rid], "embeddings": [[0.5] * DIM]}
        refused = httpx.post(url, json=body)
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        assert col.count() == 80  # reads go on
        httpx.post(single.url + "/internal/backup/release", json=hold)
        assert httpx.post(url, json=body).status_code == 200
    finally:
        single.stop()


def test_a_full_hint_volume_fails_the_write_instead_of_acknowledging_it(
    replicas: list[list[ChromaServer]],
) -> None:
    import resource

    def small_files() -> None:  # the router may write no file past 16 KiB
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    router = router_for(replicas, Path(tempfile.mkdtemp(prefix="hints-")))
    router.preexec = small_files
    router.start()
    lost = replicas[0][1]
    try:
        col = router.client().create_collection("full-disk")
        lost.kill()
        acked = 0
        error = ""
        for k in range(200):
            try:
                col.add(**batch(f"d{k}-", 10, k))
                acked += 1
            except Exception as exc:
                error = str(exc)
                break
        assert acked > 0 and error, (acked, error)
        assert "hint could not be kept" in error and "shard-0-1" in error
        view = {r["name"]: r for r in replica_view(router)}
        assert view["shard-0-1"]["state"] == "repairing"
        assert col.count() >= acked * 10  # every acknowledged write is readable
        col.add(**batch("after", 10, 999))  # it needs a repair now; writes go on without hints
        assert replica_view(router)[1]["pending_hints"] == 0
    finally:
        lost.start()
        router.stop()


def hedges_won(router_url: str, shard: int) -> float:
    """Hedges of `shard` the second replica won, from the router's /metrics."""
    prefix = f'chroma_router_hedged_reads_total{{shard="{shard}",winner="hedge"}}'
    for line in httpx.get(router_url + "/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_read_stuck_on_a_hung_replica_is_hedged_to_its_sibling(
    replicas: list[list[ChromaServer]],
) -> None:
    topology = make_topology(
        [[s.url for s in shard] for shard in replicas],
        shard_timeout_seconds=10.0,
        hedging={"enabled": True},  # the default budget: 5% of read sub-requests
        hints_dir=tempfile.mkdtemp(prefix="hints-"),
    )
    router = RouterProcess(topology).start()
    hung = replicas[1][1]
    assert hung.pid is not None
    try:
        col = router.client().create_collection("hedged")
        col.add(**batch("h", 40, 3))
        for _ in range(40):  # each shard learns what its usual latency is
            assert col.count() == 40
        # A replica that lost a hedge to a busy moment just now is asked last for a
        # while; let that pass, so round-robin really sends reads to the one we hang.
        time.sleep(SUSPECT_SECONDS + 0.2)
        won_before = hedges_won(router.url, 1)
        os.kill(hung.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        slowest = 0.0
        for _ in range(30):  # round-robin would send half of these to the hung replica
            start = time.monotonic()
            assert col.count() == 40
            slowest = max(slowest, time.monotonic() - start)
        assert slowest < 5.0  # not the 10 s shard timeout: the sibling answered
        won = hedges_won(router.url, 1) - won_before
        # After losing to a hedge the hung replica is asked last for SUSPECT_SECONDS: one
        # hedge per such period, not one for every other read.
        periods = (time.monotonic() - stopped) / SUSPECT_SECONDS
        assert 1 <= won <= periods + 2, (won, periods)
    finally:
        os.kill(hung.pid, signal.SIGCONT)
        router.stop()


def test_peer_routers_hear_of_a_stale_replica_and_of_its_return(
    replicas: list[list[ChromaServer]],
) -> None:
    routers = peer_routers(replicas)
    a, b = routers
    lost = replicas[0][1]
    try:
        for r in routers:
            r.start()
        col = a.client().create_collection("peers")
        col.add(**batch("p", 40, 4))
        lost.kill()
        col.add(**batch("q", 40, 5))  # through A: shard 0's part is a hint at A
        seen_at_b = replica_row(b, "shard-0-1")
        assert seen_at_b["state"] == "stale" and seen_at_b["pending_hints"] == 0
        assert b.client().get_collection("peers").count() == 80  # B does not read it
        lost.start()
        wait_in_sync(a, 60)
        wait_in_sync(b, 10)  # A told B when the replay finished
        assert records_of(lost, "peers") == records_of(replicas[0][0], "peers")
    finally:
        for r in routers:
            r.stop()
        if not lost.running:
            lost.start()


def test_with_its_in_sync_replica_hung_a_write_lands_through_the_stale_replicas_log(
    replicas: list[list[ChromaServer]],
) -> None:
    """Shard 1: replica 1 is stale (it was down and is replaying), replica 0 hangs. The
    write waits out the hung one, then goes through the stale one's hint log, in order,
    and stands once replayed; every replica ends with it."""
    router = router_for(replicas, Path(tempfile.mkdtemp(prefix="hints-"))).start()
    lost, hung = replicas[1][1], replicas[1][0]
    assert hung.pid is not None
    try:
        col = router.client().create_collection("through-log")
        col.add(**batch("a", 40, 1))
        lost.kill()
        col.upsert(**batch("b", 40, 2))  # shard 1's part becomes hints for replica 1
        os.kill(hung.pid, signal.SIGSTOP)
        lost.start()
        col.upsert(**batch("c", 40, 3))  # no in-sync replica of shard 1 answers
        got = col.get(ids=batch("c", 40, 3)["ids"], include=["metadatas"])
        assert sorted(got["ids"]) == sorted(batch("c", 40, 3)["ids"])
    finally:
        os.kill(hung.pid, signal.SIGCONT)
    try:
        wait_in_sync(router, 60)
        want = records_of(replicas[1][0], "through-log")
        assert want == records_of(replicas[1][1], "through-log")
        union = {**records_of(replicas[0][0], "through-log"), **want}
        assert set(batch("c", 40, 3)["ids"]) <= set(union)  # on every replica of its shard
    finally:
        router.stop()
