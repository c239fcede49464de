"""The router's half of the tenant registry (`data/tenant_registry.py`): it writes down
every tenant it creates a collection in or finds one of, on every replica.

Once per tenant and router process: the first sighting starts the registration, and a
collection create waits for it, so a backup or reshard started after the create covers
the tenant. A registration that a replica did not take is tried again at the tenant's
next sighting (a later collection create, or a first use after a restart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from chroma_operator.data.tenant_registry import REGISTRY_DATABASE, UNREGISTERED, registry_name
from chroma_operator.router.lost_replicas import put_reserved_collection
from chroma_operator.router.shards import ShardPool

log = logging.getLogger("chroma_operator.router.tenant_registry")


class TenantRegistry:
    def __init__(self, pool: Callable[[], ShardPool]) -> None:
        self.pool = pool
        self._tasks: dict[str, asyncio.Task[bool]] = {}

    def saw(self, tenant: str) -> asyncio.Task[bool] | None:
        """Register `tenant` unless it is registered or on its way; the registration."""
        if tenant in UNREGISTERED:
            return None
        task = self._tasks.get(tenant)
        if task is None or (task.done() and not _succeeded(task)):
            task = self._tasks[tenant] = asyncio.ensure_future(self._register(tenant))
        return task

    def forget_all(self) -> None:
        """After a reset (which empties every replica): register each tenant again."""
        self._tasks.clear()

    async def registered(self, tenant: str) -> None:
        """Wait for `tenant`'s registration (never fails the caller: a replica that did not
        take it gets it at the next sighting, and the log says so)."""
        task = self.saw(tenant)
        if task is not None:
            await asyncio.shield(task)

    async def _register(self, tenant: str) -> bool:
        pool = self.pool()
        name, metadata = registry_name(tenant), {"tenant": tenant}
        targets = pool.all_endpoints()
        took = await asyncio.gather(
            *(
                put_reserved_collection(pool, s, ep, REGISTRY_DATABASE, name, metadata)
                for s, ep in targets
            )
        )
        missed = [ep for (_, ep), ok in zip(targets, took, strict=True) if not ok]
        if missed:
            log.warning(
                "tenant %r not registered on %s (tried again at its next use); until then "
                "backup, repair and resharding there need `--tenant %s`",
                tenant,
                ", ".join(missed),
                tenant,
            )
        return not missed


def _succeeded(task: asyncio.Task[bool]) -> bool:
    return not task.cancelled() and task.exception() is None and task.result()
