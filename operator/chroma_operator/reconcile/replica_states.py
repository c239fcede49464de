"""Replica states from the routers into `status.shards[].replicaStates` and the topology.

Each router keeps its own hint logs, so each knows which replicas it owes writes to. The
operator asks every router (`GET /internal/replicas`, on the same routers and HTTP path
the SLO loop scrapes), keeps the worst state any router reports, and publishes it in
status and in the topology ConfigMap (`replica_states`), so a router that restarts knows
at once which replicas are not in sync. Pure parts here; the I/O is one `fetch_texts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from chroma_operator.api import conditions as cond
from chroma_operator.slo.scrape import fetch_texts

Obj = dict[str, Any]
IN_SYNC = "in-sync"
SEVERITY = {IN_SYNC: 0, "stale": 1, "repairing": 2, "fenced": 3}
"""Which state wins when routers disagree: a replica any router owes writes is not in sync."""
REPLICAS_PATH = "/internal/replicas"


@dataclass(frozen=True)
class ReplicaView:
    name: str
    shard: int
    endpoint: str | None
    state: str
    pending_hints: int

    def as_status(self) -> Obj:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "state": self.state,
            "pendingHints": self.pending_hints,
        }


def replicas_urls(metrics_urls: Sequence[str]) -> list[str]:
    """Each router's replica-state URL, from the /metrics URL the SLO loop scrapes."""
    return [u.removesuffix("/metrics").rstrip("/") + REPLICAS_PATH for u in metrics_urls]


def worse(a: str, b: str) -> str:
    return a if SEVERITY.get(a, 1) >= SEVERITY.get(b, 1) else b


def parse_report(text: str) -> list[Obj]:
    """The `replicas` list of one router's answer ([] when it is not that shape)."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    replicas = body.get("replicas") if isinstance(body, dict) else None
    return [r for r in replicas or [] if isinstance(r, dict) and r.get("name")]


def aggregate(
    reports: Sequence[Sequence[Obj]], previous: Mapping[str, str], complete: bool
) -> dict[str, ReplicaView]:
    """One view per replica: the worst state any router reports, hints summed.

    When some router did not answer (`complete` False) a replica never looks better than
    it did: the silent router may be the one holding its hints."""
    out: dict[str, ReplicaView] = {}
    for report in reports:
        for r in report:
            name = str(r["name"])
            state = str(r.get("state") or IN_SYNC)
            hints = int(r.get("pending_hints") or 0)
            seen = out.get(name)
            if seen is not None:
                state, hints = worse(seen.state, state), seen.pending_hints + hints
            out[name] = ReplicaView(name, int(r.get("shard") or 0), r.get("endpoint"), state, hints)
    if not complete:
        for name, view in out.items():
            if name in previous:
                out[name] = ReplicaView(
                    view.name,
                    view.shard,
                    view.endpoint,
                    worse(view.state, previous[name]),
                    view.pending_hints,
                )
    return out


def states_of(status: Mapping[str, Any]) -> dict[str, str]:
    """Replica name -> state as last published in status (what goes into the topology)."""
    return {
        str(r["name"]): str(r["state"])
        for shard in status.get("shards") or []
        for r in shard.get("replicaStates") or []
    }


def with_replicas(shards: Sequence[Obj], views: Mapping[str, ReplicaView]) -> list[Obj]:
    """status.shards with each shard's replicaStates replaced by what the routers said."""
    out = []
    for shard in shards:
        mine = sorted(
            (v for v in views.values() if v.shard == shard.get("index")), key=lambda v: v.name
        )
        out.append({**shard, "replicaStates": [v.as_status() for v in mine]} if mine else shard)
    return out


def transitions(before: Mapping[str, str], after: Mapping[str, str]) -> list[cond.Event]:
    """Events (type, reason, message) for replicas whose state changed."""
    events = []
    for name in sorted(after):
        old, new = before.get(name, IN_SYNC), after[name]
        if old == new:
            continue
        if new == IN_SYNC:
            events.append(
                cond.Event(
                    "Normal", "ReplicaInSync", f"replica {name} is in sync again (was {old})"
                )
            )
        else:
            events.append(
                cond.Event("Warning", "ReplicaNotInSync", f"replica {name} is {new} (was {old})")
            )
    return events


async def collect(
    client: httpx.AsyncClient, metrics_urls: Sequence[str], previous: Mapping[str, str]
) -> dict[str, ReplicaView] | None:
    """Ask every router; None when none answered (keep what was published)."""
    texts, failed = await fetch_texts(client, replicas_urls(metrics_urls))
    reports = [parse_report(t) for t in texts.values()]
    if not any(reports):
        return None
    return aggregate(reports, previous, complete=not failed)
