"""Backup and restore end to end: real shards, real routers, S3 on a local moto server.

A 2-shard source cluster is backed up (to a folder and to S3) and restored into an empty
3-shard cluster: identical records, identical top-10 answers, a tenant of its own included
with no `--tenant` (the routers registered it). Broken backups and unfit targets fail with
one line, a non-zero exit, and the target unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from chroma_operator.cli import app
from chroma_operator.data.backup_format import Manifest
from chroma_operator.local.chroma_server import ChromaServer, free_port
from router_harness import RouterProcess, make_topology, new_tenant, servers_running

pytestmark = pytest.mark.slow

DIM = 8
runner = CliRunner()


@pytest.fixture(scope="module")
def servers() -> Iterator[list[ChromaServer]]:
    with servers_running(5) as started:
        yield started


@pytest.fixture(scope="module")
def source(servers: list[ChromaServer]) -> Iterator[RouterProcess]:
    proc = RouterProcess(make_topology([[s.url] for s in servers[:2]])).start()
    try:
        fill(proc)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def target(servers: list[ChromaServer]) -> Iterator[RouterProcess]:
    proc = RouterProcess(make_topology([[s.url] for s in servers[2:]])).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def empty_target(target: RouterProcess) -> Iterator[RouterProcess]:
    """The 3-shard target, emptied again after each test."""
    yield target
    wipe(target)


# (tenant, database) pairs the source fills; Chroma 1.5.9 cannot list tenants
PLACES = [
    ("default_tenant", "default_database"),
    ("default_tenant", "db2"),
    ("acme", "default_database"),
]


def wipe(router: RouterProcess) -> None:
    import chromadb

    for tenant, db in PLACES:
        try:
            client = chromadb.HttpClient(
                host="127.0.0.1", port=router.port, tenant=tenant, database=db
            )
        except chromadb.errors.NotFoundError:
            continue
        for c in client.list_collections():
            client.delete_collection(c.name)


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="backups")
        yield "s3://backups/chroma"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def records(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "ids": [f"r{seed}-{i}" for i in range(n)],
        "embeddings": rng.standard_normal((n, DIM)).astype(np.float32).tolist(),
        "documents": [f"doc {i}" for i in range(n)],
        "metadatas": [{"i": i, "half": i < n // 2} for i in range(n)],
        "uris": [f"s3://data/{i}" if i % 4 == 0 else None for i in range(n)],
    }


def fill(router: RouterProcess) -> None:
    import chromadb

    client = router.client()
    a = client.create_collection("alpha", metadata={"team": "search"}, embedding_function=None)
    a.add(**records(600, 1))
    b = client.create_collection(
        "beta", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    b.add(**records(300, 2))
    from chroma_operator.data.chroma_http import ChromaHTTP

    with ChromaHTTP(router.url) as http:
        http.ensure_database("default_tenant", "db2")
    other = chromadb.HttpClient(host="127.0.0.1", port=router.port, database="db2")
    other.create_collection("gamma", embedding_function=None)  # empty: restored empty
    acme = new_tenant(router.port, "acme")
    acme.create_collection("delta", embedding_function=None).add(**records(80, 3))


def snapshot(router: RouterProcess) -> dict[str, Any]:
    """Every record of every collection, plus top-10 answers, as comparable values."""
    import chromadb

    out: dict[str, Any] = {}
    rng = np.random.default_rng(99)
    queries = rng.standard_normal((5, DIM)).astype(np.float32).tolist()
    for tenant, db in PLACES:
        try:
            client = chromadb.HttpClient(
                host="127.0.0.1", port=router.port, tenant=tenant, database=db
            )
        except chromadb.errors.NotFoundError:
            out[f"{tenant}/{db}"] = "absent"
            continue
        for c in client.list_collections():
            coll = client.get_collection(c.name, embedding_function=None)
            got = coll.get(include=["embeddings", "documents", "metadatas", "uris"])
            rows = {}
            for i, rid in enumerate(got["ids"]):
                emb = np.asarray(got["embeddings"][i], dtype=np.float32)
                if (coll.configuration_json.get("hnsw") or {}).get("space") == "cosine":
                    emb = np.round(emb / np.linalg.norm(emb), 5)
                rows[rid] = (
                    emb.tolist(),
                    got["documents"][i],
                    got["metadatas"][i],
                    got["uris"][i],
                )
            top = coll.query(query_embeddings=queries, n_results=10) if rows else {"ids": []}
            out[f"{tenant}/{db}/{c.name}"] = {
                "rows": rows,
                "metadata": coll.metadata,
                "top10": top["ids"],
            }
    return out


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def backup_to(source: RouterProcess, dest: str) -> tuple[str, Manifest]:
    out = cli("backup", "create", "--url", source.url, "--to", dest, "--quiet")
    assert out.exit_code == 0, out.output
    location = out.stdout.strip().splitlines()[-1]
    from chroma_operator.data.backup import load_manifest
    from chroma_operator.data.store import Store

    manifest = load_manifest(Store(location))
    # Without the router's hold route the copy is said not to be point-in-time, loudly.
    held = "not point-in-time" not in out.stdout
    assert manifest.point_in_time == held
    assert held or "warning: the router cannot hold shard 0" in out.stderr
    return location, manifest


@pytest.fixture(scope="module")
def folder_backup(
    source: RouterProcess, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Manifest]:
    return backup_to(source, str(tmp_path_factory.mktemp("backups")))


def test_backup_to_folder_lists_verifies_and_reads_with_pyarrow(
    folder_backup: tuple[str, Manifest],
) -> None:
    location, manifest = folder_backup
    assert {(c.tenant, c.database, c.name, c.count) for c in manifest.collections} == {
        ("default_tenant", "default_database", "alpha", 600),
        ("default_tenant", "default_database", "beta", 300),
        ("default_tenant", "db2", "gamma", 0),
        ("acme", "default_database", "delta", 80),  # no --tenant: the registry named it
    }
    beta = next(c for c in manifest.collections if c.name == "beta")
    assert beta.space == "cosine" and beta.dimension == DIM and beta.digest["mode"] == "direction"
    alpha = next(c for c in manifest.collections if c.name == "alpha")
    assert alpha.metadata == {"team": "search"}
    assert manifest.cluster is not None and len(manifest.cluster["shards"]) == 2
    dest = str(Path(location).parent)
    listed = cli("backup", "list", dest)
    assert listed.exit_code == 0 and manifest.backup_id in listed.stdout
    verified = cli("backup", "verify", location, "-q")
    assert verified.exit_code == 0 and "intact" in verified.stdout
    import pyarrow.parquet as pq

    table = pq.read_table(Path(location) / alpha.file.path)
    assert table.num_rows == 600 and table.column_names == [
        "id",
        "embedding",
        "document",
        "metadata",
        "uri",
    ]
    row = table.slice(0, 1).to_pylist()[0]
    assert len(row["embedding"]) == DIM and json.loads(row["metadata"])["i"] >= 0


def test_restore_into_three_shards_gives_identical_records_and_answers(
    source: RouterProcess, empty_target: RouterProcess, folder_backup: tuple[str, Manifest]
) -> None:
    location, _ = folder_backup
    out = cli("backup", "restore", "--from", location, "--url", empty_target.url, "-q")
    assert out.exit_code == 0, out.output
    assert "980 records" in out.stdout and "verified" in out.stdout
    assert snapshot(empty_target) == snapshot(source)


def test_backup_to_s3_and_restore(
    source: RouterProcess, empty_target: RouterProcess, s3: str
) -> None:
    location, manifest = backup_to(source, s3)
    assert location.startswith("s3://backups/chroma/")
    assert manifest.records == 980
    listed = cli("backup", "list", s3)
    assert manifest.backup_id in listed.stdout
    assert cli("backup", "verify", location, "-q").exit_code == 0
    out = cli("backup", "restore", "--from", location, "--url", empty_target.url, "-q")
    assert out.exit_code == 0, out.output
    assert snapshot(empty_target) == snapshot(source)


def copy_backup(location: str, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(location, dst)
    return dst


def assert_refused(target: RouterProcess, location: Path | str, *needles: str) -> None:
    before = snapshot(target)
    out = cli("backup", "restore", "--from", str(location), "--url", target.url, "-q")
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output and len(out.stderr.strip().splitlines()) == 1
    for needle in needles:
        assert needle in out.stderr, out.stderr
    assert snapshot(target) == before


def test_corrupted_file_is_refused_before_any_write(
    empty_target: RouterProcess, folder_backup: tuple[str, Manifest], tmp_path: Path
) -> None:
    location, manifest = folder_backup
    bad = copy_backup(location, tmp_path)
    rel = manifest.collections[-1].file.path  # the last one: earlier ones must not load either
    data = bytearray((bad / rel).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / rel).write_bytes(bytes(data))
    assert_refused(empty_target, bad, rel, "sha256")
    assert cli("backup", "verify", str(bad)).exit_code == 1


def test_truncated_file_and_missing_manifest_are_refused(
    empty_target: RouterProcess, folder_backup: tuple[str, Manifest], tmp_path: Path
) -> None:
    location, manifest = folder_backup
    bad = copy_backup(location, tmp_path)
    rel = manifest.collections[0].file.path
    data = (bad / rel).read_bytes()
    (bad / rel).write_bytes(data[: len(data) // 2])
    assert_refused(empty_target, bad, rel, "truncated")
    (bad / "manifest.json").unlink()
    assert_refused(empty_target, bad, "no manifest.json")


def test_wrong_major_version_is_refused(
    empty_target: RouterProcess, folder_backup: tuple[str, Manifest], tmp_path: Path
) -> None:
    location, _ = folder_backup
    bad = copy_backup(location, tmp_path)
    m = json.loads((bad / "manifest.json").read_text())
    m["chroma_version"] = "9.0.0"
    (bad / "manifest.json").write_text(json.dumps(m))
    assert_refused(empty_target, bad, "major versions differ")


def test_failed_restore_removes_what_it_created(
    empty_target: RouterProcess, folder_backup: tuple[str, Manifest], tmp_path: Path
) -> None:
    """The last collection fails its post-load check: the ones loaded before are removed."""
    location, _ = folder_backup
    bad = copy_backup(location, tmp_path)
    m = json.loads((bad / "manifest.json").read_text())
    last = m["collections"][-1]
    last["count"] += 1
    (bad / "manifest.json").write_text(json.dumps(m))
    assert_refused(empty_target, bad, last["name"], "the target holds")


def test_non_empty_target_is_refused(
    empty_target: RouterProcess, folder_backup: tuple[str, Manifest]
) -> None:
    location, _ = folder_backup
    client = empty_target.client()
    keep = client.create_collection("precious", embedding_function=None)
    keep.add(ids=["x"], embeddings=[[0.0] * DIM])
    assert_refused(empty_target, location, "not empty", "precious")
    assert client.get_collection("precious").count() == 1


def test_unreachable_router_and_bad_destination_are_one_line_errors(tmp_path: Path) -> None:
    port = free_port()
    out = cli("backup", "create", "--url", f"http://127.0.0.1:{port}", "--to", str(tmp_path), "-q")
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert f"127.0.0.1:{port}" in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    out = cli("backup", "verify", "gs://nowhere/x")
    assert out.exit_code == 1 and "gcsfs" in out.stderr


def test_a_page_refused_midway_leaves_nothing_loaded(
    empty_target: RouterProcess, folder_backup: tuple[str, Manifest], tmp_path: Path
) -> None:
    """The last page of `alpha` is refused by the target (a nested metadata value;
    checksums made to match): the pages added before it, with several in flight, and
    every collection and database created before it are removed."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    location, manifest = folder_backup
    bad = copy_backup(location, tmp_path)
    at = next(i for i, c in enumerate(manifest.collections) if c.name == "alpha")
    path = bad / manifest.collections[at].file.path
    rows = pq.read_table(path).to_pylist()
    rows[-1]["metadata"] = '{"nested": {"not": "allowed"}}'
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)
    m = json.loads((bad / "manifest.json").read_text())
    raw = path.read_bytes()
    m["collections"][at]["file"].update(sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
    (bad / "manifest.json").write_text(json.dumps(m))
    before = snapshot(empty_target)
    args = ["backup", "restore", "--from", str(bad), "--url", empty_target.url, "-q"]
    out = cli(*args, "--batch-size", "50")
    assert out.exit_code == 1, out.output
    assert "/add: HTTP 422" in out.stderr and "nested" in out.stderr, out.stderr
    assert "Traceback" not in out.output and len(out.stderr.strip().splitlines()) == 1
    assert snapshot(empty_target) == before
