"""An API server (KMock emulator) per test, and a client that acts as the user."""

from __future__ import annotations

from collections.abc import AsyncIterator

import kmock
import pytest_asyncio

from chroma_operator.reconcile.kube import Kube, KubeConfig
from kube_emulator import ApiServer, declare_resources
from kubectl import TEST_CLIENT


@pytest_asyncio.fixture()
async def apiserver() -> AsyncIterator[ApiServer]:
    async with ApiServer() as server, kmock.Server(server):
        declare_resources(server)
        yield server


@pytest_asyncio.fixture()
async def kube(apiserver: ApiServer) -> AsyncIterator[Kube]:
    client = Kube(KubeConfig(server=str(apiserver.url)), user_agent=TEST_CLIENT)
    yield client
    await client.aclose()
