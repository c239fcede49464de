"""Two shards x two replicas of real `chroma run` servers, shared by the replica tests;
a test that kills, stops or holds a replica brings it back before it ends."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from chroma_operator.local.chroma_server import ChromaServer
from router_harness import start_servers


@pytest.fixture(scope="package")
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
