"""A backup taken while writers keep adding and deleting, restored into more shards.

Real servers: a 2-shard x 2-replica source behind a router with hint logs, written by
threads through the stock chromadb client during the whole backup; the backup is
restored into an empty 3-shard cluster. Each shard's copy must be one point in time
(its hold), no client write may fail, the held replicas must catch up afterwards, and
the restored cluster must hold exactly the backup's records and answer queries alike.
With one replica per shard, a write to the shard being copied gets 503 + Retry-After.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from chroma_operator.data.backup import BackupResult, create_backup
from chroma_operator.data.backup_format import RecordFileSource
from chroma_operator.data.digest import Digest, digest_records
from chroma_operator.data.records import RecordBatch
from chroma_operator.data.restore import restore_backup, verify_backup
from chroma_operator.data.store import Store
from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.router.placement import shard_for
from replica_harness import records_of, replica_view, router_for, wait_in_sync
from router_harness import RouterProcess, http_client, make_topology, servers_running

pytestmark = pytest.mark.slow

DIM = 8
NAME = "live-coll"
CONFIG = {"hnsw": {"space": "l2", "ef_construction": 200, "ef_search": 200}}
PREFILL = 1500
WRITERS = 3


def content(rid: str) -> tuple[np.ndarray[Any, Any], str, dict[str, Any]]:
    """A record's content, a pure function of its id (so any copy can be checked)."""
    seed = zlib.crc32(rid.encode())
    emb = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return emb, f"doc {rid}", {"rid": rid, "n": seed % 97}


def columns(ids: list[str]) -> dict[str, Any]:
    rows = [content(i) for i in ids]
    return {
        "ids": ids,
        "embeddings": np.stack([r[0] for r in rows]),
        "documents": [r[1] for r in rows],
        "metadatas": [r[2] for r in rows],
    }


@dataclass
class Op:
    kind: str
    ids: list[str]
    sent: float
    acked: float | None = None
    error: str | None = None


@dataclass
class Writers:
    """Threads adding 5 records at a time and deleting 3 earlier ones every third round."""

    router: RouterProcess
    ops: list[Op] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for t in range(WRITERS):
            th = threading.Thread(target=self.run, args=(t,), daemon=True)
            th.start()
            self.threads.append(th)

    def run(self, t: int) -> None:
        coll = self.router.client().get_collection(NAME, embedding_function=None)
        rng = np.random.default_rng(t)
        alive: list[str] = []
        k = 0
        while not self.stop.is_set():
            k += 1
            if k % 3 == 0 and len(alive) > 10:
                picked = sorted(rng.choice(len(alive), 3, replace=False).tolist(), reverse=True)
                ids = [alive.pop(p) for p in picked]
                self.call(Op("delete", ids, time.monotonic()), lambda i: coll.delete(ids=i))
            else:
                ids = [f"w{t}-{k}-{j}" for j in range(5)]
                if self.call(Op("add", ids, time.monotonic()), lambda i: coll.add(**columns(i))):
                    alive.extend(ids)

    def call(self, op: Op, fn: Any) -> bool:
        try:
            fn(op.ids)
            op.acked = time.monotonic()
        except Exception as exc:
            op.error = f"{type(exc).__name__}: {exc}"
        self.ops.append(op)
        return op.error is None

    def finish(self) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(timeout=60)


@dataclass
class Timeline:
    """When the backup started, and when each shard was held and released (log lines)."""

    start: float = 0.0
    held: dict[int, float] = field(default_factory=dict)
    released: dict[int, float] = field(default_factory=dict)
    modes: dict[int, str] = field(default_factory=dict)
    on_held: Any = None

    def log(self, line: str) -> None:
        now = time.monotonic()
        if m := re.match(r"shard (\d+): \S+ held \((\w+)\)", line):
            shard = int(m.group(1))
            self.held[shard], self.modes[shard] = now, m.group(2)
            if self.on_held is not None:
                self.on_held(shard)
        elif m := re.match(r"shard (\d+): \S+ released", line):
            self.released[int(m.group(1))] = now

    def window(self, shard: int) -> tuple[float, float]:
        """From the last moment the shard surely was not held yet to when it surely was."""
        return self.released.get(shard - 1, self.start), self.held[shard]


def backup_rows(result: BackupResult, name: str = NAME) -> dict[str, tuple[bytes, str | None, Any]]:
    """id -> (embedding bytes, document, metadata) of one collection's record file."""
    store = Store(result.location)
    (entry,) = [c for c in result.manifest.collections if c.name == name]
    rows: dict[str, tuple[bytes, str | None, Any]] = {}
    for b in RecordFileSource(store.open(entry.file.path), entry.count).batches():
        for i, rid in enumerate(b.ids):
            assert rid not in rows
            rows[rid] = (b.embeddings[i].tobytes(), b.documents[i], b.metadatas[i])
    assert len(rows) == entry.count
    return rows


def expected_row(rid: str) -> tuple[bytes, str, dict[str, Any]]:
    emb, doc, meta = content(rid)
    return emb.tobytes(), doc, meta


@pytest.fixture(scope="module")
def servers() -> Iterator[list[ChromaServer]]:
    with servers_running(7) as started:  # 2 x 2 source replicas, 3 target shards
        yield started


@pytest.fixture(scope="module")
def grid(servers: list[ChromaServer]) -> list[list[ChromaServer]]:
    return [servers[0:2], servers[2:4]]


@pytest.fixture(scope="module")
def live_backup(
    grid: list[list[ChromaServer]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RouterProcess, Writers, Timeline, BackupResult]]:
    """Prefill, start the writers, take the backup, keep writing a little, stop."""
    router = router_for(grid, Path(tempfile.mkdtemp(prefix="hints-"))).start()
    try:
        coll = router.client().create_collection(
            NAME, configuration=CONFIG, embedding_function=None
        )
        for s in range(0, PREFILL, 500):
            coll.add(**columns([f"p{i}" for i in range(s, s + 500)]))
        writers = Writers(router)
        timeline = Timeline()
        injected: list[Op] = []

        def during_hold(shard: int) -> None:
            """A write owned by the shard being copied, while it is held: must succeed."""
            ids = [f"h{shard}-{i}" for i in range(200) if shard_for(f"h{shard}-{i}", 2) == shard]
            op = Op("add", ids[:5], time.monotonic())
            writers.call(op, lambda i: coll.add(**columns(i)))
            injected.append(op)

        timeline.on_held = during_hold
        writers.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(  # a delete acknowledged before it
            op.kind == "delete" and op.acked for op in list(writers.ops)
        ):
            time.sleep(0.1)
        timeline.start = time.monotonic()
        # Slow pages so each shard's copy takes seconds while the writers keep going.
        result = create_backup(
            router.url,
            str(tmp_path_factory.mktemp("live")),
            page_size=100,
            rate_limit=500,
            log=timeline.log,
        )
        time.sleep(1.0)
        writers.finish()
        assert len(injected) == 2 and all(op.error is None for op in injected)
        yield router, writers, timeline, result
    finally:
        router.stop()


def test_writers_never_fail_and_each_shard_is_one_point_in_time(
    live_backup: tuple[RouterProcess, Writers, Timeline, BackupResult],
) -> None:
    _, writers, timeline, result = live_backup
    failed = [op for op in writers.ops if op.error]
    assert failed == [], failed[:3]
    assert result.manifest.point_in_time and timeline.modes == {0: "detached", 1: "detached"}
    rows = backup_rows(result)
    added: dict[str, Op] = {f"p{i}": Op("add", [], 0.0, 0.0) for i in range(PREFILL)}
    deleted: dict[str, Op] = {}
    for op in writers.ops:
        for rid in op.ids:
            (added if op.kind == "add" else deleted)[rid] = op
    assert set(rows) <= set(added), "the backup holds ids nobody wrote"
    for rid, row in rows.items():
        assert row == expected_row(rid), rid

    must_have, must_not, during = set(), set(), {0: 0, 1: 0}
    for rid, add in added.items():
        shard = shard_for(rid, 2)
        before, held = timeline.window(shard)
        gone = deleted.get(rid)
        assert add.acked is not None
        if add.acked < before and (gone is None or gone.sent > held):
            must_have.add(rid)
        if (gone is not None and gone.acked is not None and gone.acked < before) or (
            add.sent > held
        ):
            must_not.add(rid)
        if add.sent > held and add.acked < timeline.released[shard]:
            during[shard] += 1
    assert must_have <= set(rows), sorted(must_have - set(rows))[:5]
    assert not must_not & set(rows), sorted(must_not & set(rows))[:5]
    # The words: acknowledged before the backup started (and not deleted before it
    # ended) is there; deleted before it started is not.
    end = max(timeline.released.values())
    for rid, add in added.items():
        gone = deleted.get(rid)
        if (
            add.acked is not None
            and add.acked < timeline.start
            and (gone is None or gone.sent > end)
        ):
            assert rid in rows, rid
        if gone is not None and gone.acked is not None and gone.acked < timeline.start:
            assert rid not in rows, rid
    assert all(n > 0 for n in during.values()), f"no write landed during a hold: {during}"
    assert must_not and any(
        op.kind == "delete" and op.acked is not None and op.acked < timeline.start
        for op in writers.ops
    )


def test_backup_digests_equal_the_manifest_and_the_records(
    live_backup: tuple[RouterProcess, Writers, Timeline, BackupResult],
) -> None:
    _, _, _, result = live_backup
    assert verify_backup(result.location).backup_id == result.manifest.backup_id
    (entry,) = [c for c in result.manifest.collections if c.name == NAME]
    ids = sorted(backup_rows(result))
    c = columns(ids)
    want = RecordBatch(ids, c["embeddings"], c["documents"], c["metadatas"])
    assert digest_records([want], mode="exact") == Digest.from_json(entry.digest)


def test_held_replicas_are_released_and_catch_up(
    live_backup: tuple[RouterProcess, Writers, Timeline, BackupResult],
    grid: list[list[ChromaServer]],
) -> None:
    router, writers, _, _ = live_backup
    wait_in_sync(router, 120)
    view = replica_view(router)
    assert len(view) == 4 and all(r["state"] == "in-sync" for r in view)
    assert httpx.get(router.url + "/internal/replicas/own", timeout=5).json()["holds"] == []
    alive = {f"p{i}" for i in range(PREFILL)}
    for op in writers.ops:
        alive = alive | set(op.ids) if op.kind == "add" else alive - set(op.ids)
    union: set[str] = set()
    for shard in grid:
        first, second = records_of(shard[0], NAME), records_of(shard[1], NAME)
        assert first == second
        union |= set(first)
    assert union == alive


def test_restored_three_shards_hold_the_backup_and_answer_alike(
    live_backup: tuple[RouterProcess, Writers, Timeline, BackupResult],
    servers: list[ChromaServer],
) -> None:
    _, _, _, result = live_backup
    target = RouterProcess(make_topology([[s.url] for s in servers[4:7]])).start()
    try:
        restored = restore_backup(result.location, target.url)
        rows = backup_rows(result)
        assert restored.records == len(rows)
        coll = target.client().get_collection(NAME, embedding_function=None)
        assert coll.configuration_json["hnsw"]["space"] == "l2"
        got = coll.get(include=["embeddings", "documents", "metadatas"])
        held = {
            rid: (np.asarray(e, dtype=np.float32).tobytes(), d, m)
            for rid, e, d, m in zip(
                got["ids"], got["embeddings"], got["documents"], got["metadatas"], strict=True
            )
        }
        assert held == rows
        per_shard = [http_client(s.port).get_collection(NAME).count() for s in servers[4:7]]
        assert sum(per_shard) == len(rows) and all(n > 0 for n in per_shard)
        # Top-10: the restored cluster answers as an exact search over the backup does.
        ids = sorted(rows)
        matrix = np.stack([np.frombuffer(rows[r][0], dtype=np.float32) for r in ids])
        queries = np.random.default_rng(7).standard_normal((8, DIM)).astype(np.float32)
        answer = coll.query(query_embeddings=queries, n_results=10)
        for q, top in zip(queries, answer["ids"], strict=True):
            dist = ((matrix - q) ** 2).sum(axis=1)
            assert top == [ids[i] for i in np.argsort(dist, kind="stable")[:10]]
    finally:
        try:
            target.client().delete_collection(NAME)
        finally:
            target.stop()


def test_one_replica_writes_to_the_shard_being_copied_get_503_with_retry_after(
    servers: list[ChromaServer], tmp_path: Path
) -> None:
    """The docs' words: reads go on; writes to the held shard get 503 + Retry-After (the
    stock client raises it); writes to other shards go on; after release they succeed."""
    single = RouterProcess(
        make_topology([[servers[4].url], [servers[5].url]], shard_timeout_seconds=5.0)
    ).start()
    name = "single-coll"
    try:
        coll = single.client().create_collection(name, embedding_function=None)
        coll.add(**columns([f"s{i}" for i in range(300)]))
        url = (
            f"{single.url}/api/v2/tenants/default_tenant/databases/default_database/"
            f"collections/{coll.id}/upsert"
        )
        seen: dict[int, dict[str, Any]] = {}

        def during_hold(shard: int) -> None:
            mine = next(
                f"b{shard}-{i}" for i in range(100) if shard_for(f"b{shard}-{i}", 2) == shard
            )
            other = next(
                f"o{shard}-{i}" for i in range(100) if shard_for(f"o{shard}-{i}", 2) != shard
            )
            emb = content(mine)[0].tolist()
            raw = httpx.post(url, json={"ids": [mine], "embeddings": [emb]}, timeout=10)
            try:
                coll.add(**columns([mine]))
                stock = "accepted"
            except Exception as exc:  # the stock client does not retry: it raises
                stock = str(exc)
            coll.add(**columns([other]))  # another shard takes writes
            seen[shard] = {
                "mine": mine,
                "status": raw.status_code,
                "retry_after": raw.headers.get("retry-after"),
                "message": raw.json().get("message", ""),
                "stock": stock,
                "count": coll.count(),  # reads go on
            }

        timeline = Timeline(on_held=during_hold)
        result = create_backup(single.url, str(tmp_path), log=timeline.log)
        assert timeline.modes == {0: "blocked", 1: "blocked"} and result.manifest.point_in_time
        assert set(seen) == {0, 1}
        for s in seen.values():
            assert s["status"] == 503, s
            assert s["retry_after"] is not None and 1 <= int(s["retry_after"]) <= 5
            assert "held for a backup" in s["message"] and "held for a backup" in s["stock"]
            assert s["count"] >= 300
        rows = backup_rows(result, name)
        assert not {s["mine"] for s in seen.values()} & set(rows)
        for s in seen.values():  # released: the same write goes through now
            coll.add(**columns([s["mine"]]))
        assert coll.count() == 300 + 2 + 2
    finally:
        try:
            single.client().delete_collection(name)
        finally:
            single.stop()
