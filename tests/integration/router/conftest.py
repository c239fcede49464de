"""Real shards, a real single reference node and the router as a real process.

Servers start once per test module (module-scoped fixtures); tests use fresh collection
names so they do not see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from chroma_operator.local.chroma_server import ChromaServer
from router_harness import RouterProcess, make_topology, start_servers


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[list[ChromaServer], ChromaServer]]:
    """Three shard servers and one single reference node."""
    started = start_servers(4)
    try:
        yield started[:3], started[3]
    finally:
        for s in started:
            s.close()


@pytest.fixture(scope="module")
def shards(servers: tuple[list[ChromaServer], ChromaServer]) -> list[ChromaServer]:
    return servers[0]


@pytest.fixture(scope="module")
def single(servers: tuple[list[ChromaServer], ChromaServer]) -> ChromaServer:
    return servers[1]


@pytest.fixture(scope="module")
def router(shards: list[ChromaServer]) -> Iterator[RouterProcess]:
    proc = RouterProcess(make_topology([[s.url] for s in shards])).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def name() -> str:
    """A fresh collection name per test."""
    return "c" + uuid.uuid4().hex[:12]
