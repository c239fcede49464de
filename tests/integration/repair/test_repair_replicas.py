"""`chroma-operator repair` against real `chroma run` replicas behind a real router.

2 shards x 2 replicas. Each test writes through the router, corrupts replicas behind its
back (writes to them directly), and checks that a dry run reports exactly those records
and changes nothing, and that a repair fixes exactly those records: afterwards every
replica's digest equals its in-sync peer's (the oracle).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import chromadb
import pytest
from typer.testing import CliRunner

from chroma_operator.cli import app
from chroma_operator.data.chroma_http import DEFAULT_DATABASE, DEFAULT_TENANT, ChromaHTTP
from chroma_operator.data.collection_ids import IDS_DATABASE, NAMES_DATABASE, id_entry, name_entry
from chroma_operator.data.digest import Digest, digest_collection
from chroma_operator.data.tenant_registry import REGISTRY_DATABASE, RESERVED_TENANT, registered_at
from chroma_operator.local.chroma_server import ChromaServer, free_port
from chroma_operator.repair.errors import EXIT_UNREACHABLE, RepairError
from chroma_operator.repair.run import Options, run_repair
from chroma_operator.router.placement import shard_for
from router_harness import RouterProcess, make_topology, new_tenant, start_servers

pytestmark = pytest.mark.slow
N = 240
DIM = 8


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[list[list[ChromaServer]], RouterProcess]]:
    servers = start_servers(4)
    grid = [servers[0:2], servers[2:4]]
    router = RouterProcess(make_topology([[s.url for s in shard] for shard in grid])).start()
    try:
        yield grid, router
    finally:
        router.stop()
        for s in servers:
            s.close()


def _fill(router: RouterProcess, name: str) -> list[str]:
    col = router.client().create_collection(name)
    ids = [f"r{i}" for i in range(N)]
    col.add(
        ids=ids,
        embeddings=[[float((i * 7 + j) % 11) for j in range(DIM)] for i in range(N)],
        documents=[f"doc {i}" for i in range(N)],
        metadatas=[{"i": i, "even": i % 2 == 0} for i in range(N)],
    )
    return ids


def _replica(server: ChromaServer, name: str) -> Any:
    return chromadb.HttpClient(host="127.0.0.1", port=server.port).get_collection(name)


def _digest(server: ChromaServer, name: str) -> Digest:
    with ChromaHTTP(server.url) as http:
        ref = http.collection_ref(DEFAULT_TENANT, DEFAULT_DATABASE, name)
        assert ref is not None
        return digest_collection(http, ref)


def _on_shard(ids: list[str], shard: int) -> list[str]:
    return [i for i in ids if shard_for(i, 2) == shard]


def _corrupt(
    server: ChromaServer, name: str, ids: list[str], add: int, delete: int, change: int
) -> None:
    """Behind the router's back: `add` new records, delete some, change others."""
    col = _replica(server, name)
    new = [f"ghost-{uuid.uuid4().hex[:8]}" for _ in range(add)]
    if new:
        col.add(ids=new, embeddings=[[9.0] * DIM for _ in new], documents=["ghost"] * add)
    if delete:
        col.delete(ids=ids[:delete])
    if change:
        changed = ids[delete : delete + change]
        col.update(
            ids=changed,
            embeddings=[[0.5] * DIM for _ in changed],
            documents=["changed"] * change,
        )


def _options(router: RouterProcess, name: str, **kw: Any) -> Options:
    return Options(url=router.url, collection=name, records_per_second=0, **kw)


def test_dry_run_reports_exactly_the_corruption_then_repair_fixes_it(
    cluster: tuple[list[list[ChromaServer]], RouterProcess],
) -> None:
    grid, router = cluster
    name = f"docs-{uuid.uuid4().hex[:6]}"
    ids = _fill(router, name)
    assert run_repair(_options(router, name, dry_run=True)).converged  # clean to start with

    _corrupt(grid[0][1], name, _on_shard(ids, 0), add=5, delete=4, change=3)
    _corrupt(grid[1][1], name, _on_shard(ids, 1), add=2, delete=1, change=0)
    before = [[_digest(s, name) for s in shard] for shard in grid]

    dry = run_repair(_options(router, name, dry_run=True))
    assert not dry.converged and dry.reference == "router"  # the router serves /internal/replicas
    totals = dry.totals()
    assert (totals["copied"], totals["removed"], totals["overwritten"]) == (5, 7, 3)
    assert dry.per_replica()["shard-0-1"] == {"copied": 4, "removed": 5, "overwritten": 3}
    assert dry.per_replica()["shard-1-1"] == {"copied": 1, "removed": 2, "overwritten": 0}
    assert [[_digest(s, name) for s in shard] for shard in grid] == before  # nothing changed

    fixed = run_repair(_options(router, name))
    assert fixed.converged, fixed.summary()
    totals = fixed.totals()
    assert (totals["copied"], totals["removed"], totals["overwritten"]) == (5, 7, 3)
    assert totals["bucketsCompared"] == 2 * 1024
    for shard in grid:
        assert _digest(shard[1], name) == _digest(shard[0], name)
    assert _replica(grid[0][1], name).count() == len(_on_shard(ids, 0))
    assert router.client().get_collection(name).count() == N
    again = run_repair(_options(router, name, dry_run=True))
    assert again.converged and again.totals()["copied"] == 0


def test_cli_exit_codes_and_report(
    cluster: tuple[list[list[ChromaServer]], RouterProcess], tmp_path: Any
) -> None:
    grid, router = cluster
    name = f"cli-{uuid.uuid4().hex[:6]}"
    ids = _fill(router, name)
    _corrupt(grid[1][1], name, _on_shard(ids, 1), add=0, delete=2, change=1)
    runner = CliRunner()
    args = ["repair", "--url", router.url, "--collection", name, "--no-progress"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 4, dry.output
    assert "2 copied, 0 removed, 1 overwritten" in dry.output
    report = tmp_path / "report.json"
    done = runner.invoke(app, [*args, "--report", str(report), "--records-per-second", "500"])
    assert done.exit_code == 0, done.output
    assert '"copied": 2' in report.read_text() and '"overwritten": 1' in report.read_text()
    assert _digest(grid[1][1], name) == _digest(grid[1][0], name)
    unknown = runner.invoke(app, [*args[:3], "--collection", "nope", "--no-progress"])
    assert unknown.exit_code == 3 and "on no replica" in unknown.output


def test_states_pick_the_reference_and_a_missing_collection_is_created(
    cluster: tuple[list[list[ChromaServer]], RouterProcess],
) -> None:
    """The topology says shard-0-0 is stale and shard-1-1 repairing: shard 0 is repaired
    from shard-0-1; a collection shard-1-1 never saw is created there and filled."""
    grid, router = cluster
    name = f"states-{uuid.uuid4().hex[:6]}"
    ids = _fill(router, name)
    _corrupt(grid[0][0], name, _on_shard(ids, 0), add=3, delete=2, change=0)
    chromadb.HttpClient(host="127.0.0.1", port=grid[1][1].port).delete_collection(name)
    topo = make_topology([[s.url for s in shard] for shard in grid]).model_copy(
        update={"replica_states": {"shard-0-0": "stale", "shard-1-1": "repairing"}}
    )
    router.write_topology(topo)
    try:
        _wait_for_states(router)
        report = run_repair(_options(router, name))
    finally:
        router.write_topology(make_topology([[s.url for s in shard] for shard in grid]))
    assert report.converged and report.reference == "router", report.summary()
    rows = {r.replica: r for r in report.results}
    assert (rows["shard-0-0"].copied, rows["shard-0-0"].removed) == (2, 3)
    assert rows["shard-1-1"].created and rows["shard-1-1"].copied == len(_on_shard(ids, 1))
    # The router is told shard-1-1 is done (a router without the route answers 404).
    assert report.repaired == ["shard-1-1"] or any(
        "repaired notices (404)" in w for w in report.warnings
    )
    for shard in grid:
        assert _digest(shard[1], name) == _digest(shard[0], name)


def _wait_for_states(router: RouterProcess) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(router.url + "/internal/topology").json().get("replica_states"):
            return
        time.sleep(0.1)
    raise AssertionError("the router did not reload the topology")


def test_router_unreachable_is_one_clear_error() -> None:
    with pytest.raises(RepairError) as err:
        run_repair(Options(url=f"http://127.0.0.1:{free_port()}", timeout=2))
    assert err.value.exit_code == EXIT_UNREACHABLE and "unreachable" in err.value.message


def test_a_tenant_of_its_own_is_repaired_without_being_named(
    cluster: tuple[list[list[ChromaServer]], RouterProcess],
) -> None:
    """The router registered the tenant when a collection was made in it, so a repair
    with no `--tenant` covers it; a replica that lost the registry gets it back."""
    grid, router = cluster
    tenant, name = f"acme-{uuid.uuid4().hex[:6]}", "delta"
    client = new_tenant(router.port, tenant)
    ids = [f"t{i}" for i in range(60)]
    client.create_collection(name).add(
        ids=ids, embeddings=[[float(i % 7), 1.0] + [0.0] * (DIM - 2) for i in range(60)]
    )
    everywhere = [s.url for shard in grid for s in shard]
    assert tenant in registered_at(everywhere)
    lost = grid[1][1]
    with ChromaHTTP(lost.url) as http:  # as after a lost volume: no records, no registry
        http.delete_collection(tenant, DEFAULT_DATABASE, name)
        http.delete_database(RESERVED_TENANT, REGISTRY_DATABASE)
    assert tenant not in registered_at([lost.url])

    report = run_repair(Options(url=router.url, collection=name, records_per_second=0))
    assert report.converged, report.summary()
    rows = {r.replica: r for r in report.results}
    assert rows["shard-1-1"].created and rows["shard-1-1"].copied == len(_on_shard(ids, 1))
    assert tenant in registered_at([lost.url])
    with ChromaHTTP(lost.url) as fixed, ChromaHTTP(grid[1][0].url) as kept:
        refs = [h.collection_ref(tenant, DEFAULT_DATABASE, name) for h in (fixed, kept)]
        assert refs[0] is not None and refs[1] is not None
        assert digest_collection(fixed, refs[0]) == digest_collection(kept, refs[1])


def test_shard_zero_replicas_get_the_client_ids_back(
    cluster: tuple[list[list[ChromaServer]], RouterProcess],
) -> None:
    """The router wrote a new collection's client id down on shard 0's second replica
    (routers find collections there while the first is away); a repair of a replica
    that lost them writes them again, with the ids clients hold."""
    grid, router = cluster
    name = f"ids-{uuid.uuid4().hex[:6]}"
    client_id = str(router.client().create_collection(name).id)
    where = {"tenant": DEFAULT_TENANT, "database": DEFAULT_DATABASE, "name": name}
    by_name = name_entry(DEFAULT_TENANT, DEFAULT_DATABASE, name)
    with ChromaHTTP(grid[0][1].url) as http:
        written = http.get_collection(RESERVED_TENANT, IDS_DATABASE, id_entry(client_id))
        assert written is not None and written["metadata"] == where
        for database in (IDS_DATABASE, NAMES_DATABASE):  # as after a lost volume
            http.delete_database(RESERVED_TENANT, database)

    report = run_repair(Options(url=router.url, collection=name, records_per_second=0))
    assert report.converged, report.summary()
    with ChromaHTTP(grid[0][1].url) as http:
        again = http.get_collection(RESERVED_TENANT, IDS_DATABASE, id_entry(client_id))
        named = http.get_collection(RESERVED_TENANT, NAMES_DATABASE, by_name)
    assert again is not None and again["metadata"] == where
    assert named is not None and named["metadata"] == {"client_id": client_id, **where}


def test_a_replica_down_is_reported_and_skipped(
    cluster: tuple[list[list[ChromaServer]], RouterProcess],
) -> None:
    """Last in the module: kill -9 one replica; the rest is still repaired."""
    grid, router = cluster
    name = f"down-{uuid.uuid4().hex[:6]}"
    ids = _fill(router, name)
    _corrupt(grid[0][1], name, _on_shard(ids, 0), add=1, delete=1, change=0)
    grid[1][1].kill()
    # a killed replica refuses at once; the timeout only has to spare the live ones
    # a slow moment on a busy machine (3 s once cost shard-0-1 its entry in the report)
    report = run_repair(_options(router, name, timeout=15))
    assert not report.converged and report.skipped == ["shard-1-1"]
    assert report.per_replica()["shard-0-1"] == {"copied": 1, "removed": 1, "overwritten": 0}
    assert _digest(grid[0][1], name) == _digest(grid[0][0], name)
    assert any("shard-1-1" in e and "did not answer" in e for e in report.errors)
