"""Online resharding on real servers: 2 -> 3 -> 2 shards under continuous traffic.

Writers (add, upsert, delete) and readers (query, get, count) run through two routers
for the whole move; at every phase the writers pause and the cluster must answer exactly
what was acknowledged. Afterwards every record lives on exactly one shard, its owner
under the new placement (a collection in a tenant of its own too: the routers registered
the tenant, nobody named it to the engine), and the moved fraction is what jump hash
predicts.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.reshard.engine import Engine
from chroma_operator.reshard.file_runtime import FileRuntime
from chroma_operator.reshard.plan import expected_moved_fraction
from chroma_operator.router.placement import shard_for
from chroma_operator.topology import ShardTopology, Topology
from router_harness import RouterProcess, http_client, make_topology, new_tenant, start_servers

pytestmark = pytest.mark.slow

DIM = 8
SEED = 1500


def emb(record_id: str, version: int) -> list[float]:
    rng = random.Random(f"{record_id}/{version}")
    return [rng.uniform(-1, 1) for _ in range(DIM)]


class Traffic:
    """Writers and readers through the routers; every failure is kept."""

    def __init__(self, write_port: int, read_port: int, coll: str, tag: str) -> None:
        self.write_port, self.read_port, self.coll, self.tag = write_port, read_port, coll, tag
        self.expected: dict[str, tuple[str, list[float]]] = {}
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.ops = 0
        self.reads = 0
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.writer_locks = [threading.Lock() for _ in range(2)]
        self.threads: list[threading.Thread] = []

    def seed(self) -> None:
        c = http_client(self.write_port).get_or_create_collection(self.coll)
        ids = [f"seed-{i}" for i in range(SEED)]
        for i in range(0, SEED, 250):
            part = ids[i : i + 250]
            c.add(
                ids=part, embeddings=[emb(x, 0) for x in part], documents=[f"{x}/0" for x in part]
            )
        self.expected.update({x: (f"{x}/0", emb(x, 0)) for x in ids})

    def start(self) -> None:
        for w in range(2):
            self.threads.append(threading.Thread(target=self._writer, args=(w,), daemon=True))
        for _ in range(2):
            self.threads.append(threading.Thread(target=self._reader, daemon=True))
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _call(self, what: str, fn: Callable[..., Any], **kw: Any) -> tuple[bool, Any]:
        try:
            return True, fn(**kw)
        except Exception as exc:
            self.failures.append(f"{what}: {type(exc).__name__}: {exc}")
            return False, None

    def _put(self, what: str, op: Callable[..., Any], ids: list[str], v: int) -> bool:
        docs = [f"{x}/{v}" for x in ids]
        return self._call(what, op, ids=ids, embeddings=[emb(x, v) for x in ids], documents=docs)[0]

    def _writer(self, w: int) -> None:
        c = http_client(self.write_port).get_collection(self.coll)
        rng = random.Random(w)
        mine = sorted(x for x in self.expected if sum(map(ord, x)) % 2 == w)
        n, version = 0, 1
        while not self.stop.is_set():
            with self.writer_locks[w]:
                if self.paused.is_set():
                    continue
                version += 1
                new = [f"w{w}{self.tag}-{n + i}" for i in range(5)]
                n += 5

                if self._put("add", c.add, new, version):
                    with self.lock:
                        self.expected.update({x: (f"{x}/{version}", emb(x, version)) for x in new})
                    mine.extend(new)
                up = rng.sample(mine, 4)
                if self._put("upsert", c.upsert, up, version):
                    with self.lock:
                        self.expected.update({x: (f"{x}/{version}", emb(x, version)) for x in up})
                gone = rng.sample(mine, 2)
                if self._call("delete", c.delete, ids=gone)[0]:
                    with self.lock:
                        for x in gone:
                            self.expected.pop(x, None)
                    mine = [x for x in mine if x not in gone]
                self.ops += 3
            time.sleep(0.03)

    def _reader(self) -> None:
        c = http_client(self.read_port).get_collection(self.coll)
        rng = random.Random()
        while not self.stop.is_set():
            q = [rng.uniform(-1, 1) for _ in range(DIM)]
            ok, res = self._call("query", c.query, query_embeddings=[q], n_results=10)
            if ok and (len(set(res["ids"][0])) != len(res["ids"][0]) or len(res["ids"][0]) != 10):
                self.failures.append(f"query answered {res['ids'][0]}")
            ok, got = self._call("get", c.get, limit=200, include=[])
            if ok and len(set(got["ids"])) != len(got["ids"]):
                self.failures.append("get answered an id twice")
            self._call("count", c.count)
            self.reads += 3

    def check_exact(self, label: str) -> None:
        """Writers paused and idle: count, ids and contents equal what was acknowledged."""
        self.paused.set()
        for lk in self.writer_locks:
            lk.acquire()
        try:
            c = http_client(self.read_port).get_collection(self.coll)
            assert c.count() == len(self.expected), label
            got = c.get(include=["documents"])
            assert len(got["ids"]) == len(set(got["ids"])), label
            assert dict(zip(got["ids"], got["documents"], strict=True)) == {
                k: v[0] for k, v in self.expected.items()
            }, label
        finally:
            for lk in self.writer_locks:
                lk.release()
            self.paused.clear()


class CheckedRuntime(FileRuntime):
    """Publishes like `local up`; after each epoch reaches every router, runs a check."""

    def __init__(self, path: Path, routers: list[str], on_phase: Callable[[str], None]) -> None:
        super().__init__(path, routers)
        self.on_phase = on_phase
        self.phases: list[str] = []

    def publish(self, topology: Topology) -> None:
        super().publish(topology)
        p = topology.current_placement()
        deadline = time.monotonic() + 30
        while any(e is None or e < p.epoch for e in self.router_epochs()):
            assert time.monotonic() < deadline, "routers did not reach the epoch"
            time.sleep(0.05)
        self.phases.append(p.phase)
        self.on_phase(p.phase)


def start_patiently(router: RouterProcess, patience: float = 180.0) -> None:
    """Start a router; on a loaded machine its first answer may take longer than usual."""
    try:
        router.start()
        return
    except RuntimeError:
        if router.proc is None or router.proc.poll() is not None:
            raise
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            if httpx.get(router.url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f"router did not start: {router.log_tail()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    servers = start_servers(3)
    topo = make_topology([[s.url] for s in servers[:2]], cache={"enabled": False})
    path = tmp_path_factory.mktemp("reshard") / "topology.json"
    routers = [RouterProcess(topo), RouterProcess(topo)]
    for r in routers:
        r.topology_path = path
        r.write_topology(topo)
        start_patiently(r)
    try:
        yield {"servers": servers, "routers": routers, "path": path}
    finally:
        for r in routers:
            r.stop()
        for s in servers:
            s.close()


TENANT = "acme"
ELSEWHERE = 90  # records of the collection in TENANT


def tenant_client(port: int) -> Any:
    return chromadb.HttpClient(host="127.0.0.1", port=port, tenant=TENANT)


def make_tenant_collection(port: int) -> None:
    """A tenant of its own with one collection, made through a router (stock clients)."""
    client = new_tenant(port, TENANT, ("default_database", "spare"))  # spare: no collection
    ids = [f"e{i}" for i in range(ELSEWHERE)]
    client.create_collection("elsewhere").add(ids=ids, embeddings=[emb(i, 0) for i in ids])


def shard_ids(server: ChromaServer, coll: str, tenant: str = "default_tenant") -> list[str]:
    port = int(server.url.rsplit(":", 1)[1])
    c = chromadb.HttpClient(host="127.0.0.1", port=port, tenant=tenant)
    try:
        return [str(i) for i in c.get_collection(coll).get(include=[])["ids"]]
    except Exception:
        return []


def run_move(cluster: dict[str, Any], target: int, coll: str) -> None:
    servers, routers, path = cluster["servers"], cluster["routers"], cluster["path"]
    w, r = routers[0], routers[1]
    traffic = Traffic(w.port, r.port, coll, f"t{target}")
    traffic.seed() if target == 3 else traffic.expected.update(cluster["expected"])
    old = Topology.from_json(path.read_bytes()).current_placement().shards
    side: dict[str, Any] = {}

    def on_phase(phase: str) -> None:
        traffic.check_exact(phase)
        admin = http_client(w.port)
        if phase == "dual-write":
            born = admin.create_collection(f"born-{target}")
            born.add(
                ids=[f"b{i}" for i in range(60)], embeddings=[emb(f"b{i}", 0) for i in range(60)]
            )
            side["born"] = born.name
        if phase == "backfill":
            admin.delete_collection(side["doomed"])
            side["total"] = ELSEWHERE + sum(
                admin.get_collection(c.name).count() for c in admin.list_collections()
            )

    doomed = http_client(w.port).create_collection(f"doomed-{target}")
    doomed.add(ids=[f"d{i}" for i in range(40)], embeddings=[emb(f"d{i}", 0) for i in range(40)])
    side["doomed"] = doomed.name

    if target == 3:
        make_tenant_collection(w.port)
    runtime = CheckedRuntime(path, [w.url, r.url], on_phase)
    engine = Engine(runtime, rate=400.0, poll=0.05)
    traffic.start()
    time.sleep(1.0)
    new_shards = [ShardTopology(index=i, endpoints=[s.url]) for i, s in enumerate(servers)]
    engine.start(target, new_shards)
    engine.run()
    time.sleep(1.0)
    traffic.finish()

    assert traffic.failures == []
    assert traffic.ops > 50 and traffic.reads > 50
    assert runtime.phases == ["dual-write", "backfill", "verify", "cutover", "cleanup", "stable"]
    traffic.check_exact("after")
    # Every record on exactly one shard: its owner under the new placement.
    for tenant, name, want in (
        ("default_tenant", coll, set(traffic.expected)),
        ("default_tenant", side["born"], {f"b{i}" for i in range(60)}),
        (TENANT, "elsewhere", {f"e{i}" for i in range(ELSEWHERE)}),
    ):
        seen: dict[str, int] = {}
        for s, server in enumerate(servers):
            for i in shard_ids(server, name, tenant):
                assert i not in seen, f"{i} on shards {seen[i]} and {s}"
                seen[i] = s
        assert set(seen) == want
        assert all(shard_for(i, target) == s for i, s in seen.items())
    assert tenant_client(r.port).get_collection("elsewhere").count() == ELSEWHERE
    if target == 3:  # a database that held no collection exists on the new shard too
        late = chromadb.HttpClient(
            host="127.0.0.1", port=r.port, tenant=TENANT, database="spare"
        ).create_collection("late")
        late.add(ids=["l1", "l2", "l3"], embeddings=[emb(f"l{i}", 0) for i in (1, 2, 3)])
        assert late.count() == 3
    # Contents equal what was acknowledged.
    got = http_client(r.port).get_collection(coll).get(include=["documents", "embeddings"])
    for i, doc, e in zip(got["ids"], got["documents"], got["embeddings"], strict=True):
        assert doc == traffic.expected[i][0]
        want = np.asarray(traffic.expected[i][1], dtype=np.float32)
        assert np.array_equal(np.asarray(e, dtype=np.float32), want), i
    # Only the records jump hash says must move were copied.
    prog = engine.progress
    assert prog is not None
    frac = prog.records_moved / side["total"]
    assert abs(frac - expected_moved_fraction(old, target)) <= 0.2 * expected_moved_fraction(
        old, target
    )
    cluster["expected"] = dict(traffic.expected)


def test_grow_two_to_three_under_traffic(cluster: dict[str, Any]) -> None:
    run_move(cluster, 3, "main")


def test_shrink_three_to_two_under_traffic(cluster: dict[str, Any]) -> None:
    if "expected" not in cluster:
        pytest.skip("needs the grow test's data")
    run_move(cluster, 2, "main")


def test_a_shard_killed_mid_backfill_pauses_the_move_until_it_is_back(
    cluster: dict[str, Any],
) -> None:
    if "expected" not in cluster:
        pytest.skip("needs the earlier tests' data")
    servers, routers, path = cluster["servers"], cluster["routers"], cluster["path"]
    expected: dict[str, tuple[str, list[float]]] = cluster["expected"]
    restarted = threading.Event()

    def on_phase(phase: str) -> None:
        if phase == "backfill":  # kill -9 a source shard before the copy starts
            servers[0].kill()

            def back() -> None:
                time.sleep(3.0)
                servers[0].start()
                restarted.set()

            threading.Thread(target=back, daemon=True).start()

    runtime = CheckedRuntime(path, [r.url for r in routers], on_phase)
    engine = Engine(runtime, rate=2000.0, poll=0.05)
    engine.start(3, [ShardTopology(index=i, endpoints=[s.url]) for i, s in enumerate(servers)])
    engine.run()
    assert restarted.is_set()
    assert any("shard 0" in e and "not answering" in e for e in runtime.events), runtime.events
    assert runtime.phases[-1] == "stable"
    seen: dict[str, int] = {}
    for s, server in enumerate(servers):
        for i in shard_ids(server, "main"):
            assert i not in seen and shard_for(i, 3) == s
            seen[i] = s
    assert set(seen) == set(expected)
    c = http_client(routers[1].port).get_collection("main")
    assert c.count() == len(expected)
    got = c.get(include=["documents"])
    assert dict(zip(got["ids"], got["documents"], strict=True)) == {
        k: v[0] for k, v in expected.items()
    }
