"""HTTPS at the router with a certificate the test makes; the stock client with ssl=True."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import pytest
import yaml
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from chromadb.errors import ChromaAuthError

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.reshard.file_runtime import FileRuntime
from chroma_operator.topology import AuthTopology, TlsTopology
from router_harness import RouterProcess, make_topology
from tls_certs import CertFiles, make_certs

pytestmark = pytest.mark.slow

TOKEN = "tls-app-t0ken"


@pytest.fixture(scope="module")
def tls_router(
    shards: list[ChromaServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RouterProcess, CertFiles]]:
    d = tmp_path_factory.mktemp("tls")
    certs = make_certs(d)
    tokens = d / "tokens.yaml"
    tokens.write_text(
        yaml.safe_dump(
            {"tokens": [{"name": "app", "token": TOKEN, "tenant": "*", "role": "admin"}]}
        )
    )
    base = make_topology([[s.url] for s in shards])
    proc = RouterProcess(
        base.model_copy(
            update={"tls": TlsTopology(cert_file=str(certs.cert), key_file=str(certs.key))}
        ),
        ca_file=str(certs.ca),
    )
    proc.write_topology(
        base.model_copy(
            update={
                "auth": AuthTopology(tokens_file=str(tokens)),
                "tls": TlsTopology(
                    cert_file=str(certs.cert), key_file=str(certs.key), ca_file=str(certs.ca)
                ),
                "router": base.router.model_copy(update={"peers": [proc.url]}),
            }
        )
    )
    proc.start()
    try:
        yield proc, certs
    finally:
        proc.stop()


def https_client(proc: RouterProcess, certs: CertFiles) -> Any:
    """The stock client over HTTPS with the app token, verifying with the test CA."""
    SharedSystemClient.clear_system_cache()
    return chromadb.HttpClient(
        host="127.0.0.1",
        port=proc.port,
        ssl=True,
        headers={"X-Chroma-Token": TOKEN},
        settings=Settings(chroma_server_ssl_verify=str(certs.ca)),
    )


def test_stock_client_over_https(tls_router: tuple[RouterProcess, CertFiles], name: str) -> None:
    proc, certs = tls_router
    assert proc.url.startswith("https://")
    client = https_client(proc, certs)
    col = client.create_collection(name)
    col.add(ids=[f"a{i}" for i in range(10)], embeddings=[[float(i), 1.0] for i in range(10)])
    assert col.count() == 10
    assert col.query(query_embeddings=[[3.0, 1.0]], n_results=1)["ids"] == [["a3"]]
    # The write reached the peer (itself) over HTTPS, verified with the CA.
    metrics = httpx.get(proc.url + "/metrics", verify=proc.verify).text
    peer = [
        line
        for line in metrics.splitlines()
        if line.startswith('chroma_router_cache_invalidations_total{source="peer"}')
    ]
    assert peer and float(peer[0].split()[-1]) >= 1
    SharedSystemClient.clear_system_cache()
    with pytest.raises(ChromaAuthError):
        chromadb.HttpClient(
            host="127.0.0.1",
            port=proc.port,
            ssl=True,
            settings=Settings(chroma_server_ssl_verify=str(certs.ca)),
        )


def test_plain_http_and_unknown_ca_are_refused(tls_router: tuple[RouterProcess, CertFiles]) -> None:
    proc, _ = tls_router
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{proc.port}/healthz", timeout=2).raise_for_status()
    with pytest.raises(httpx.ConnectError):
        httpx.get(proc.url + "/healthz", timeout=2)  # system trust: the test CA is unknown


def test_local_resharding_reads_router_epochs_over_https_with_the_topology_ca(
    tls_router: tuple[RouterProcess, CertFiles], tmp_path: Path
) -> None:
    """`local reshard` waits on each router's epoch: over HTTPS it verifies them with the
    CA the topology names for peers (a private CA is not in the system's store)."""
    proc, certs = tls_router
    base = make_topology([["http://127.0.0.1:1"]])
    tls = TlsTopology(cert_file=str(certs.cert), key_file=str(certs.key), ca_file=str(certs.ca))
    with_ca = tmp_path / "with-ca.json"
    with_ca.write_text(base.model_copy(update={"tls": tls}).to_json())
    epochs = FileRuntime(with_ca, [proc.url]).router_epochs()
    assert len(epochs) == 1 and isinstance(epochs[0], int)
    without = tmp_path / "without.json"
    without.write_text(base.to_json())
    assert FileRuntime(without, [proc.url]).router_epochs() == [None]


def test_router_refuses_to_start_with_a_broken_certificate(
    shards: list[ChromaServer], tmp_path: Path
) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("nor a key")
    topo = make_topology([[shards[0].url]]).model_copy(
        update={
            "tls": TlsTopology(
                cert_file=str(tmp_path / "tls.crt"), key_file=str(tmp_path / "tls.key")
            )
        }
    )
    proc = RouterProcess(topo)
    with pytest.raises(RuntimeError, match="cannot load the TLS certificate"):
        proc.start()


def job(args: list[str], certs: CertFiles, token: str | None) -> subprocess.CompletedProcess[str]:
    """An operator Job's command as its pod runs it, with the environment the Job builder
    gives it: `CHROMA_TOKEN` from `auth.jobToken` and `CHROMA_CA_FILE` on the TLS CA."""
    env = {k: v for k, v in os.environ.items() if k not in ("CHROMA_TOKEN", "SSL_CERT_FILE")}
    env["CHROMA_CA_FILE"] = str(certs.ca)
    if token is not None:
        env["CHROMA_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "chroma_operator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_operator_jobs_reach_the_routers_through_auth_and_tls(
    tls_router: tuple[RouterProcess, CertFiles], name: str, tmp_path: Path
) -> None:
    """Backup, restore and repair as their Jobs run them: HTTPS verified with the mounted
    CA, the job token from the environment; without the token the routers refuse them."""
    proc, certs = tls_router
    client = https_client(proc, certs)
    col = client.create_collection(name)
    col.add(ids=[f"j{i}" for i in range(25)], embeddings=[[float(i), 2.0] for i in range(25)])
    dest = tmp_path / "backups"

    refused = job(["backup", "create", "--url", proc.url, "--to", str(dest)], certs, None)
    assert refused.returncode == 1
    assert "401" in refused.stderr and "AuthError" in refused.stderr

    made = job(["backup", "create", "--url", proc.url, "--to", str(dest)], certs, TOKEN)
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.split()[1].rstrip(":")
    listed = job(["backup", "list", str(dest)], certs, None)
    assert backup_id in listed.stdout, listed.stderr

    repaired = job(["repair", "--url", proc.url, "--collection", name, "--dry-run"], certs, TOKEN)
    assert repaired.returncode == 0, repaired.stderr + repaired.stdout

    for other in client.list_collections():  # restore goes only into an empty cluster
        client.delete_collection(other.name)
    restored = job(
        ["backup", "restore", "--from", f"{dest}/{backup_id}", "--url", proc.url], certs, TOKEN
    )
    assert restored.returncode == 0, restored.stderr
    back = client.get_collection(name).get(include=[])
    assert sorted(back["ids"]) == sorted(f"j{i}" for i in range(25))


def test_tuning_job_applies_ef_search_through_auth_and_tls(
    tls_router: tuple[RouterProcess, CertFiles],
    shards: list[ChromaServer],
    name: str,
    tmp_path: Path,
) -> None:
    """`tune --apply-ef-search` as the tuning Job runs it: it measures through the router
    and sets the chosen efSearch on every shard with the job token (the operator, which
    holds no Secrets, only records it)."""
    proc, certs = tls_router
    client = https_client(proc, certs)
    rng = np.random.default_rng(5)
    col = client.create_collection(name, configuration={"hnsw": {"space": "cosine"}})
    col.add(ids=[f"t{i}" for i in range(600)], embeddings=rng.standard_normal((600, 8)).tolist())
    term = tmp_path / "termination-log"
    term.touch()
    args = ["tune", "--url", proc.url, "--collection", name, "--k", "5", "--target-recall", "0.5"]
    args += ["--sample", "600", "--queries", "50", "--grid", "M=8", "--grid", "efc=32"]
    args += ["--grid", "ef=10,20", "--apply-ef-search", "--no-progress"]
    tuned = job([*args, "--termination-log", str(term)], certs, TOKEN)
    assert tuned.returncode == 0, tuned.stderr
    result = json.loads(term.read_text())
    ef = result["chosen"]["efSearch"]
    assert result["appliedEfSearch"] == ef and "applyError" not in result
    for shard in shards:
        SharedSystemClient.clear_system_cache()
        on_shard = chromadb.HttpClient(host="127.0.0.1", port=shard.port).get_collection(name)
        assert on_shard.configuration_json["hnsw"]["ef_search"] == ef
