"""Replica states as one router sees them: in-sync, stale, repairing, fenced.

A replica's state combines what this router knows (its own hint log: pending hints mean
stale; a dropped log means repairing), what its peer routers said (a notice: "I hold
hints for it"), what the topology publishes (`replica_states`, `fenced`) and backup
holds. Reads go only to in-sync replicas; writes go live only to in-sync ones and become
hints for stale, fenced and held ones. The book outlives topology reloads (it is keyed by
replica name), so states and logs are never lost to a reload.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from chroma_operator.router.hints import HintLog
from chroma_operator.topology import Topology

log = logging.getLogger("chroma_operator.router.replicas")

State = Literal["in-sync", "stale", "repairing", "fenced"]
HOLD_TTL_S = 3600.0


def replica_name(shard: int, ordinal: int) -> str:
    return f"shard-{shard}-{ordinal}"


@dataclass
class Hold:
    """A backup hold on one replica: `detached` (writes hint) or `blocked` (writes 503)."""

    mode: Literal["detached", "blocked"]
    expires: float


@dataclass
class Replica:
    name: str
    shard: int
    endpoint: str
    log: HintLog
    stale: bool = False  # this router missed a write to it (pending hints, or replaying)
    peer_claims: dict[str, str] = field(default_factory=dict)  # router id -> its state
    hold: Hold | None = None
    reachable: bool = True  # last answer of the catch-up pinger
    repair_flag: bool = False  # a hint could not be kept (even the marker file failed)

    @property
    def repairing(self) -> bool:
        return self.repair_flag or self.log.needs_repair

    def mark_repair(self) -> None:
        self.repair_flag = True
        self.stale = False
        self.log.mark_repair()

    def clear_repair(self) -> None:
        self.repair_flag = False
        self.log.clear_repair()

    def held(self, now: float) -> bool:
        if self.hold is not None and self.hold.expires <= now:
            self.hold = None
        return self.hold is not None

    @property
    def own_state(self) -> State:
        if self.repairing:
            return "repairing"
        if self.stale or self.log.pending > 0:
            return "stale"
        return "in-sync"


def router_identity(hints_dir: Path) -> str:
    """Stable across restarts of the same router (same host, same hints volume)."""
    return f"{socket.gethostname()}:{hints_dir}"


class ReplicaBook:
    def __init__(self, topology: Topology) -> None:
        if topology.hints_dir:
            self.dir = Path(topology.hints_dir)
        else:  # no volume configured: hints live as long as this process
            self.dir = Path(tempfile.mkdtemp(prefix="chroma-router-hints-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.router_id = router_identity(self.dir)
        # Set by the router core: tells peer routers this router's own view.
        self.announcer: Callable[[], Awaitable[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.replicas: dict[str, Replica] = {}
        self.by_endpoint: dict[str, Replica] = {}
        self.topology = topology
        self.update(topology)

    def update(self, topology: Topology) -> None:
        """Follow a new topology: keep known replicas' logs, add new ones."""
        self.topology = topology
        max_bytes = topology.replication.max_hint_bytes
        current: dict[str, Replica] = {}
        for shard in topology.shards:
            for r, ep in enumerate(shard.endpoints):
                name = replica_name(shard.index, r)
                rep = self.replicas.get(name)
                if rep is None or rep.endpoint != ep:
                    log = rep.log if rep is not None else HintLog(self.dir, name, max_bytes)
                    rep = Replica(name, shard.index, ep, log)
                current[name] = rep
        self.replicas = current
        self.by_endpoint = {r.endpoint: r for r in current.values()}

    def get(self, endpoint: str) -> Replica | None:
        return self.by_endpoint.get(endpoint)

    def state(self, rep: Replica, now: float | None = None) -> State:
        """The effective state: fenced and held first, then repairing, then stale."""
        now = time.monotonic() if now is None else now
        published = self.topology.replica_states.get(rep.name)
        detached = rep.held(now) and rep.hold is not None and rep.hold.mode == "detached"
        if rep.name in self.topology.fenced or published == "fenced" or detached:
            return "fenced"
        claims = set(rep.peer_claims.values())
        if rep.repairing or published == "repairing" or "repairing" in claims:
            return "repairing"
        if rep.own_state == "stale" or published == "stale" or "stale" in claims:
            return "stale"
        return "in-sync"

    def in_sync(self, endpoint: str) -> bool:
        rep = self.by_endpoint.get(endpoint)
        return rep is None or self.state(rep) == "in-sync"

    def doubt(self, endpoint: str, why: str) -> None:
        """A read found this replica not listening (down or restarting), or without what
        an in-sync sibling holds: it may have come back without its data, with no write
        missed to say so. It goes stale (out of reads) until catch-up finds its mark on
        it, unless it is its shard's last in-sync replica. Peers are told."""
        rep = self.by_endpoint.get(endpoint)
        if rep is None or self.state(rep) != "in-sync":
            return
        siblings = (r for r in self.replicas.values() if r.shard == rep.shard and r is not rep)
        if not any(self.state(r) == "in-sync" for r in siblings) or not self.mark_stale(rep):
            return
        log.warning(
            "replica %s of shard %d failed a read (%s): stale until it answers with its mark",
            rep.name,
            rep.shard,
            why,
        )
        self.spawn_announce()

    def write_blocked(self, shard: int) -> Hold | None:
        now = time.monotonic()
        for rep in self.replicas.values():
            if rep.shard == shard and rep.held(now) and rep.hold and rep.hold.mode == "blocked":
                return rep.hold
        return None

    def mark_stale(self, rep: Replica) -> bool:
        """True when this changed the replica's own state (peers should hear of it)."""
        changed = not rep.stale and not rep.repairing
        if not rep.repairing:
            rep.stale = True
        return changed

    async def announce(self) -> None:
        """Tell peers now (awaited on the way to stale: no peer reads what it missed)."""
        if self.announcer is not None:
            await self.announcer()

    def spawn_announce(self) -> None:
        if self.announcer is None:
            return
        task = asyncio.ensure_future(self.announcer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what routers tell each other ---------------------------------------------------

    def own_view(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "router": self.router_id,
            "replicas": [
                {"name": r.name, "state": r.own_state, "pending_hints": r.log.pending}
                for r in self.replicas.values()
            ],
            "holds": [
                {"name": r.name, "mode": r.hold.mode, "ttl_seconds": r.hold.expires - now}
                for r in self.replicas.values()
                if r.held(now) and r.hold is not None
            ],
        }

    def apply_notice(self, notice: dict[str, Any]) -> None:
        """A peer's own view: its claims replace what it said before."""
        sender = str(notice.get("router", ""))
        if not sender or sender == self.router_id:
            return
        for item in notice.get("replicas") or []:
            rep = self.replicas.get(str(item.get("name")))
            if rep is None:
                continue
            state = str(item.get("state", "in-sync"))
            if state == "in-sync":
                rep.peer_claims.pop(sender, None)
            else:
                rep.peer_claims[sender] = state
        if "holds" in notice:
            now = time.monotonic()
            for item in notice["holds"]:
                rep = self.replicas.get(str(item.get("name")))
                if rep is not None and not rep.held(now):
                    ttl = float(item.get("ttl_seconds", HOLD_TTL_S))
                    rep.hold = Hold(item.get("mode", "detached"), now + ttl)

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "name": r.name,
                "shard": r.shard,
                "endpoint": r.endpoint,
                "state": self.state(r, now),
                "pending_hints": r.log.pending,
                "own_state": r.own_state,
                "stale_at_peers": sorted(r.peer_claims),
                "held": r.hold.mode if r.held(now) and r.hold else None,
            }
            for r in self.replicas.values()
        ]
