"""Helpers for the router tests: real Chroma servers and the router as a process."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chromadb
import httpx
from prometheus_client.parser import text_string_to_metric_families

import chroma_operator
from chroma_operator.local.chroma_server import ChromaServer, free_port
from chroma_operator.topology import ShardTopology, Topology

PACKAGE_ROOT = str(Path(chroma_operator.__file__).resolve().parents[1])


def start_servers(n: int) -> list[ChromaServer]:
    servers = [ChromaServer() for _ in range(n)]
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda s: s.start(), servers))
    return servers


@contextmanager
def servers_running(n: int) -> Iterator[list[ChromaServer]]:
    """`n` real Chroma servers for the length of a (module) fixture, closed after."""
    started = start_servers(n)
    try:
        yield started
    finally:
        for s in started:
            s.close()


def make_topology(shard_urls: list[list[str]], **router: Any) -> Topology:
    extra: dict[str, Any] = {}
    for key in ("encoder", "hnsw", "slo", "hints_dir", "replication", "fenced", "replica_states"):
        if key in router:
            extra[key] = router.pop(key)
    return Topology.model_validate(
        {
            "cluster": "test",
            "namespace": "default",
            "shards": [ShardTopology(index=i, endpoints=eps) for i, eps in enumerate(shard_urls)],
            "router": router,
            **extra,
        }
    )


class RouterProcess:
    """`python -m chroma_operator router` as a child process on a free port."""

    def __init__(
        self,
        topology: Topology,
        port: int | None = None,
        args: list[str] | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.args = ["--log-level", "warning", *(args or [])]  # later flags win
        self.scheme = "https" if topology.tls is not None else "http"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
        self.dir = Path(tempfile.mkdtemp(prefix="router-test-"))
        self.topology_path = self.dir / "topology.json"
        self.write_topology(topology)
        self.proc: subprocess.Popen[bytes] | None = None
        self.preexec: Any = None  # e.g. a resource limit set in the child before exec

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def write_topology(self, topology: Topology) -> None:
        tmp = self.topology_path.with_suffix(".tmp")
        tmp.write_text(topology.to_json())
        tmp.replace(self.topology_path)

    def start(self) -> RouterProcess:
        env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
        log = (self.dir / "router.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chroma_operator",
                "router",
                "--topology",
                str(self.topology_path),
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--reload-interval",
                "0.2",
                *self.args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
        )
        deadline = time.monotonic() + 120  # Python starts slowly on a busy shared machine
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"router exited: {self.log_tail()}")
            try:
                reply = httpx.get(self.url + "/healthz", timeout=1, verify=self.verify)
                if reply.status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.kill()  # never leave a half-started router behind
        raise RuntimeError(f"router did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.dir / "router.log").read_bytes()[-3000:].decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL at once: a router that dies mid-write."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self) -> chromadb.HttpClient:  # type: ignore[valid-type]
        return http_client(self.port)


def http_client(port: int) -> Any:
    return chromadb.HttpClient(host="127.0.0.1", port=port)


def admin_client(port: int) -> Any:
    """The stock client's tenant and database admin, on a router or a server."""
    return chromadb.AdminClient(
        chromadb.Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host="127.0.0.1",
            chroma_server_http_port=port,
        )
    )


def new_tenant(port: int, tenant: str, databases: tuple[str, ...] = ("default_database",)) -> Any:
    """Create `tenant` and its `databases` through the stock admin client; a client of the
    tenant's first database."""
    admin = admin_client(port)
    admin.create_tenant(tenant)
    for database in databases:
        admin.create_database(database, tenant=tenant)
    return chromadb.HttpClient(host="127.0.0.1", port=port, tenant=tenant, database=databases[0])


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` in a /metrics page, read by
    prometheus_client's own parser."""
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]
