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
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from replica_harness import DIM, SHARD_TIMEOUT, records_of, replica_view, router_for, wait_in_sync
from router_harness import RouterProcess

pytestmark = pytest.mark.slow

PHASE = ["start"]  # what the test is doing now: failures name it


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
                self.failures.append(f"[{PHASE[0]}] {what}: {type(exc).__name__}: {exc}")
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
                    self.failures.append(f"[{PHASE[0]}] {type(exc).__name__}: {exc}")
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
        PHASE[0] = "replicas killed"
        for s in lost:  # kill -9 one replica of every shard
            s.kill()
        time.sleep(3)
        stale = {r["name"]: r for r in replica_view(router)}
        assert stale["shard-0-1"]["state"] == "stale" and stale["shard-0-1"]["pending_hints"] > 0
        assert stale["shard-1-1"]["state"] == "stale" and stale["shard-1-1"]["pending_hints"] > 0

        PHASE[0] = "router restarted"
        down.set()  # kill -9 the router mid-write, start it again on the same hint logs
        router.kill()
        router.start()
        time.sleep(0.5)
        down.clear()
        reloaded = {r["name"]: r for r in replica_view(router)}
        assert reloaded["shard-0-1"]["state"] == "stale", reloaded
        time.sleep(2)

        returned = time.monotonic()
        PHASE[0] = "replicas returned"
        for s in lost:
            s.start()
        assert wait_in_sync(router, 60) < 60

        hung = replicas[1][0]  # SIGSTOP the other replica of shard 1
        assert hung.pid is not None
        PHASE[0] = "shard-1-0 stopped"
        os.kill(hung.pid, signal.SIGSTOP)
        # The first write that times out on it marks it stale (SHARD_TIMEOUT after the
        # stop at the earliest; later on a loaded machine, where writers are slower).
        deadline = time.monotonic() + SHARD_TIMEOUT + 30
        view = {r["name"]: r for r in replica_view(router)}
        while view["shard-1-0"]["state"] != "stale" and time.monotonic() < deadline:
            time.sleep(0.5)
            view = {r["name"]: r for r in replica_view(router)}
        assert view["shard-1-0"]["state"] == "stale", view
        os.kill(hung.pid, signal.SIGCONT)
        PHASE[0] = "shard-1-0 continued"
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
        endpoints = {
            s.url: f"shard-{i}-{r}" for i, sh in enumerate(replicas) for r, s in enumerate(sh)
        }
        # Which replica went stale and why, and when it was back (the router logs both).
        went_stale = [
            line
            for line in (router.dir / "router.log").read_text(errors="replace").splitlines()
            if "missed a write" in line or "replayed its hints" in line
        ]
        assert failures == [], "\n".join(
            [*failures, str(endpoints), *went_stale, router.log_tail()]
        )
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
