"""Replicas that stay in sync, with real faults: kill -9 a replica of every shard, kill -9
the router and restart it, SIGSTOP a replica, bring everything back.

Two shards x two replicas of real `chroma run` servers behind the router as a process.
Writers (add, upsert, update, delete) each own a collection, so after every
acknowledged write the writer can check that a read through the router sees it (count
and values). At the end every replica is compared record by record with its sibling.
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from router_harness import RouterProcess, http_client, make_topology, start_servers

pytestmark = pytest.mark.slow

DIM = 8
SHARD_TIMEOUT = 5.0  # generous: a loaded CI machine must not look like a hung replica


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[list[ChromaServer]]]:
    """shard -> [replica 0, replica 1]."""
    servers = start_servers(4)
    try:
        yield [servers[:2], servers[2:]]
    finally:
        for s in servers:
            if s.pid is not None:
                os.kill(s.pid, signal.SIGCONT)
            s.close()


def router_for(grid: list[list[ChromaServer]], hints: Path, **replication: Any) -> RouterProcess:
    topology = make_topology(
        [[s.url for s in shard] for shard in grid],
        shard_timeout_seconds=SHARD_TIMEOUT,
        hints_dir=str(hints),
        replication=replication,
    )
    return RouterProcess(topology)


def replica_view(router: RouterProcess) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(router.url + "/internal/replicas", timeout=5).json()[
        "replicas"
    ]
    return rows


def wait_in_sync(router: RouterProcess, timeout: float) -> float:
    """Seconds until every replica is in sync with no pending hints."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            rows = replica_view(router)
            if all(r["state"] == "in-sync" and r["pending_hints"] == 0 for r in rows):
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"replicas not in sync after {timeout}s: {replica_view(router)}")


def records_of(server: ChromaServer, name: str) -> dict[str, tuple[bytes, Any, Any]]:
    """Every record of one replica: id -> (embedding bytes, document, metadata)."""
    got = (
        http_client(server.port)
        .get_collection(name)
        .get(include=["embeddings", "documents", "metadatas"])
    )
    return {
        i: (np.asarray(e, dtype=np.float32).tobytes(), d, m)
        for i, e, d, m in zip(
            got["ids"], got["embeddings"], got["documents"], got["metadatas"], strict=True
        )
    }


class Writer(threading.Thread):
    """Writes to its own collection; after each acknowledged write, reads it back."""

    def __init__(self, router: RouterProcess, name: str, seed: int, down: threading.Event) -> None:
        super().__init__(daemon=True)
        self.router = router
        self.name = name
        self.rng = random.Random(seed)
        self.down = down  # set while the test has the router killed
        self.stop = threading.Event()
        self.expected: dict[str, tuple[bytes, str, dict[str, Any]]] = {}
        self.failures: list[str] = []
        self.stale_reads: list[str] = []
        self.acks = 0
        self.next_id = 0

    def retrying(self, what: str, fn: Any) -> Any:
        """Run `fn`; while the router is down (killed by the test), retry the same call."""
        while True:
            try:
                return fn()
            except Exception as exc:
                if self.down.is_set() or isinstance(exc, httpx.TransportError):
                    time.sleep(0.1)
                    continue
                self.failures.append(f"{what}: {type(exc).__name__}: {exc}")
                return None

    def record(self, i: str, version: int) -> tuple[bytes, str, dict[str, Any]]:
        emb = np.random.default_rng(hash((i, version)) & 0xFFFF).standard_normal(DIM)
        return emb.astype(np.float32).tobytes(), f"doc {i} v{version}", {"v": version}

    def step(self, col: Any) -> None:
        op = self.rng.choice(["add", "add", "upsert", "update", "delete"])
        have = sorted(self.expected)
        version = self.acks + 1
        if op == "add" or len(have) < 10:
            ids = [f"{self.name}-{self.next_id + k}" for k in range(10)]
            self.next_id += 10
            op = "add"
        elif op == "upsert":
            ids = self.rng.sample(have, 5) + [f"{self.name}-{self.next_id + k}" for k in range(5)]
            self.next_id += 5
        else:
            ids = self.rng.sample(have, 5)
        rows = {i: self.record(i, version) for i in ids}
        if op == "delete":
            done = self.retrying(op, lambda: col.delete(ids=ids) or True)
        elif op == "update":
            rows = {i: (self.expected[i][0], self.expected[i][1], {"v": version}) for i in ids}
            done = self.retrying(
                op, lambda: col.update(ids=ids, metadatas=[rows[i][2] for i in ids]) or True
            )
        else:
            args = {
                "ids": ids,
                "embeddings": [np.frombuffer(rows[i][0], dtype=np.float32) for i in ids],
                "documents": [rows[i][1] for i in ids],
                "metadatas": [rows[i][2] for i in ids],
            }
            call = col.add if op == "add" else col.upsert
            done = self.retrying(op, lambda: call(**args) or True)
        if not done:
            return
        self.acks += 1
        if op == "delete":
            for i in ids:
                self.expected.pop(i, None)
        else:
            self.expected.update(rows)
        self.check(col, op, ids)

    def check(self, col: Any, op: str, ids: list[str]) -> None:
        count = self.retrying("count", col.count)
        if count is not None and count != len(self.expected):
            self.stale_reads.append(f"after {op}: count {count} != {len(self.expected)}")
        got = self.retrying("get", lambda: col.get(ids=ids, include=["metadatas"]))
        if got is None:
            return
        seen = dict(zip(got["ids"], got["metadatas"], strict=True))
        want = {i: self.expected[i][2] for i in ids if i in self.expected}
        if seen != want:
            self.stale_reads.append(f"after {op} of {ids[:2]}...: read {seen} != {want}")

    def run(self) -> None:
        col = self.retrying("open", lambda: self.router.client().get_collection(self.name))
        while not self.stop.is_set() and col is not None:
            self.step(col)


class Reader(threading.Thread):
    """Queries while the faults happen: every answer must come back (never an error)."""

    def __init__(self, router: RouterProcess, names: list[str], down: threading.Event) -> None:
        super().__init__(daemon=True)
        self.router, self.names, self.down = router, names, down
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.queries = 0

    def run(self) -> None:
        q = np.ones((1, DIM), dtype=np.float32)
        cols: list[Any] = []
        while not self.stop.is_set():
            try:
                if not cols:
                    client = self.router.client()
                    cols = [client.get_collection(n) for n in self.names]
                for col in cols:
                    col.query(query_embeddings=q, n_results=3)
                    self.queries += 1
            except Exception as exc:
                if not (self.down.is_set() or isinstance(exc, httpx.TransportError)):
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.1)


def test_writes_survive_lost_replicas_and_replicas_converge(
    replicas: list[list[ChromaServer]],
) -> None:
    hints = Path(tempfile.mkdtemp(prefix="hints-"))
    router = router_for(replicas, hints).start()
    down = threading.Event()
    names = ["writer-a", "writer-b"]
    writers = [Writer(router, n, k, down) for k, n in enumerate(names)]
    reader = Reader(router, names, down)
    threads: list[Any] = [*writers, reader]
    lost = [replicas[0][1], replicas[1][1]]
    returned = time.monotonic()
    try:
        for n in names:
            router.client().create_collection(n)
        for t in threads:
            t.start()
        time.sleep(2)
        for s in lost:  # kill -9 one replica of every shard
            s.kill()
        time.sleep(3)
        stale = {r["name"]: r for r in replica_view(router)}
        assert stale["shard-0-1"]["state"] == "stale" and stale["shard-0-1"]["pending_hints"] > 0
        assert stale["shard-1-1"]["state"] == "stale" and stale["shard-1-1"]["pending_hints"] > 0

        down.set()  # kill -9 the router mid-write, start it again on the same hint logs
        router.kill()
        router.start()
        time.sleep(0.5)
        down.clear()
        reloaded = {r["name"]: r for r in replica_view(router)}
        assert reloaded["shard-0-1"]["state"] == "stale", reloaded
        time.sleep(2)

        returned = time.monotonic()
        for s in lost:
            s.start()
        assert wait_in_sync(router, 60) < 60

        hung = replicas[1][0]  # SIGSTOP the other replica of shard 1
        assert hung.pid is not None
        os.kill(hung.pid, signal.SIGSTOP)
        time.sleep(SHARD_TIMEOUT + 3)
        view = {r["name"]: r for r in replica_view(router)}
        assert view["shard-1-0"]["state"] == "stale", view
        os.kill(hung.pid, signal.SIGCONT)
        returned = time.monotonic()
        time.sleep(1)
    except BaseException:
        router.stop()
        raise
    finally:
        for t in threads:
            t.stop.set()
        for t in threads:
            if t.is_alive():
                t.join(30)
        down.clear()
    try:
        converged = wait_in_sync(router, 60)
        assert time.monotonic() - returned < 60 + 30
        failures = [f for w in writers for f in w.failures] + reader.failures
        assert failures == [], "\n".join(failures)
        assert [s for w in writers for s in w.stale_reads] == []
        assert all(w.acks > 20 for w in writers), [w.acks for w in writers]
        assert reader.queries > 0
        for w in writers:
            want = {i: (e, d, m) for i, (e, d, m) in w.expected.items()}
            on_replicas = [[records_of(s, w.name) for s in shard] for shard in replicas]
            for shard in on_replicas:
                assert shard[0] == shard[1]  # siblings hold the same records, byte for byte
            union = {**on_replicas[0][0], **on_replicas[1][0]}
            assert union == want  # no acknowledged write lost, nothing extra
            assert w.router.client().get_collection(w.name).count() == len(want)
        metrics = httpx.get(router.url + "/metrics").text
        assert "chroma_router_hints_replayed_records_total" in metrics
        print(f"converged {converged:.1f}s after the last return; acks {[w.acks for w in writers]}")
    finally:
        router.stop()


def batch(prefix: str, n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "ids": [f"{prefix}{i}" for i in range(n)],
        "embeddings": rng.standard_normal((n, DIM)).astype(np.float32),
        "metadatas": [{"i": i} for i in range(n)],
    }


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


def test_a_read_stuck_on_a_hung_replica_is_hedged_to_its_sibling(
    replicas: list[list[ChromaServer]],
) -> None:
    topology = make_topology(
        [[s.url for s in shard] for shard in replicas],
        shard_timeout_seconds=10.0,
        hedging={"enabled": True, "max_fraction": 1.0},
        hints_dir=tempfile.mkdtemp(prefix="hints-"),
    )
    router = RouterProcess(topology).start()
    hung = replicas[1][1]
    assert hung.pid is not None
    try:
        col = router.client().create_collection("hedged")
        col.add(**batch("h", 40, 3))
        for _ in range(30):  # each shard learns what its usual latency is
            assert col.count() == 40
        os.kill(hung.pid, signal.SIGSTOP)
        slowest = 0.0
        for _ in range(6):  # round-robin sends some of these to the hung replica first
            start = time.monotonic()
            assert col.count() == 40
            slowest = max(slowest, time.monotonic() - start)
        assert slowest < 5.0  # not the 10 s shard timeout: the sibling answered
        metrics = httpx.get(router.url + "/metrics").text
        assert 'chroma_router_hedged_reads_total{shard="1",winner="hedge"}' in metrics
    finally:
        os.kill(hung.pid, signal.SIGCONT)
        router.stop()


def test_peer_routers_hear_of_a_stale_replica_and_of_its_return(
    replicas: list[list[ChromaServer]],
) -> None:
    from chroma_operator.local.chroma_server import free_port

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
    a, b = routers
    lost = replicas[0][1]
    try:
        for r in routers:
            r.start()
        col = a.client().create_collection("peers")
        col.add(**batch("p", 40, 4))
        lost.kill()
        col.add(**batch("q", 40, 5))  # through A: shard 0's part is a hint at A
        seen_at_b = {r["name"]: r for r in replica_view(b)}["shard-0-1"]
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
