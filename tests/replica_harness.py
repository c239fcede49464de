"""Helpers for the replica tests: the router over a grid of replicas, its replica view,
waiting for catch-up, and every record of one replica for byte-for-byte comparison."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np

from chroma_operator.local.chroma_server import ChromaServer, free_port
from router_harness import RouterProcess, http_client, make_topology, metric_samples

DIM = 8
SHARD_TIMEOUT = 8.0  # generous: a loaded CI machine must not look like a hung replica


class Endpoint(Protocol):
    """A replica as the router sees it: a Chroma server, or a proxy in front of one."""

    @property
    def url(self) -> str: ...


def router_for(
    grid: Sequence[Sequence[Endpoint]], hints: Path, **replication: Any
) -> RouterProcess:
    topology = make_topology(
        [[s.url for s in shard] for shard in grid],
        shard_timeout_seconds=SHARD_TIMEOUT,
        hints_dir=str(hints),
        replication=replication,
    )
    # info: the router's log then says when each replica was back in sync, too
    return RouterProcess(topology, args=["--log-level", "info"])


@contextmanager
def hung(server: ChromaServer) -> Iterator[None]:
    """The replica's process stopped (SIGSTOP): connections open, nothing answered."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def peer_routers(grid: Sequence[Sequence[Endpoint]], n: int = 2) -> list[RouterProcess]:
    """`n` routers (not started) over the same replicas, each listing all as its peers,
    each with a hint directory of its own: the routers of one cluster."""
    ports = [free_port() for _ in range(n)]
    peers = [f"http://127.0.0.1:{p}" for p in ports]
    return [
        RouterProcess(
            make_topology(
                [[s.url for s in shard] for shard in grid],
                shard_timeout_seconds=5.0,
                peers=peers,
                hints_dir=tempfile.mkdtemp(prefix="hints-"),
            ),
            port=port,
        )
        for port in ports
    ]


def replica_view(router: RouterProcess) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(router.url + "/internal/replicas", timeout=5).json()[
        "replicas"
    ]
    return rows


def replica_row(router: RouterProcess, name: str) -> dict[str, Any]:
    """One replica's row of the router's view (`shard-<i>-<r>`)."""
    return {r["name"]: r for r in replica_view(router)}[name]


def replica_counter(router: RouterProcess, metric: str, replica: str) -> float:
    """A per-replica counter of the router's /metrics (0 when it has no sample yet)."""
    text = httpx.get(router.url + "/metrics", timeout=5).text
    return sum(v for labels, v in metric_samples(text, metric) if labels["replica"] == replica)


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


def batch(prefix: str, n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "ids": [f"{prefix}{i}" for i in range(n)],
        "embeddings": rng.standard_normal((n, DIM)).astype(np.float32),
        "metadatas": [{"i": i} for i in range(n)],
    }
