"""What a repair asks the routers: the replicas and their states, and "this one is done"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from chroma_operator.repair import plan
from chroma_operator.repair.errors import EXIT_BAD_INPUT, EXIT_UNREACHABLE, RepairError
from chroma_operator.repair.plan import Replica
from chroma_operator.repair.report import RepairReport
from chroma_operator.topology import Topology

if TYPE_CHECKING:
    from chroma_operator.repair.run import Options


def discover(opts: Options) -> tuple[Topology, list[list[Replica]], str]:
    """The topology and each shard's replicas with their states, from the router.

    Returns where the states came from: "router" (GET /internal/replicas), "topology"
    (the router has no such route, but the operator published `replica_states`), or
    "first-replica" (neither: the first replica of each shard is the reference)."""
    base = opts.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RepairError(f"--url {opts.url!r}: give the router's http(s):// URL", EXIT_BAD_INPUT)
    try:
        with httpx.Client(base_url=base, timeout=opts.timeout, headers=opts.headers()) as http:
            topo = http.get("/internal/topology")
            if topo.status_code != 200:
                raise RepairError(
                    f"router {base} answered HTTP {topo.status_code} to /internal/topology",
                    EXIT_UNREACHABLE,
                )
            topology = Topology.from_json(topo.content)
            states = http.get("/internal/replicas")
    except httpx.HTTPError as exc:
        raise RepairError(f"router {base} is unreachable: {exc}", EXIT_UNREACHABLE) from None
    by_name: dict[str, str] = dict(topology.replica_states)
    source = "topology" if by_name else "first-replica"
    if states.status_code == 200:
        source = "router"
        for r in states.json().get("replicas") or []:
            by_name[str(r["name"])] = str(r.get("state") or plan.IN_SYNC)
    shards = []
    for shard in topology.shards:
        replicas = []
        for ordinal, endpoint in enumerate(shard.endpoints):
            name = plan.replica_name(shard.index, ordinal)
            default = plan.IN_SYNC if source != "first-replica" or ordinal == 0 else "unknown"
            state = by_name.get(name, default)
            replicas.append(Replica(name, shard.index, ordinal, endpoint, state))
        shards.append(replicas)
    return topology, shards, source


def notify_repaired(
    opts: Options, topology: Topology, shards: list[list[Replica]], report: RepairReport
) -> None:
    """Tell every router that replicas in state `repairing` now match: they may read them."""
    broken = {r.replica for r in report.results if not r.converged} | set(report.skipped)
    ready = [
        r.name
        for replicas in shards
        for r in replicas
        if r.state == plan.REPAIRING and r.name not in broken
    ]
    if not ready or opts.dry_run:
        return
    routers = list(topology.router.peers) or [opts.url]
    with httpx.Client(timeout=opts.timeout, headers=opts.headers()) as http:
        for name in ready:
            told = False
            for router in routers:
                url = router.rstrip("/") + "/internal/replicas/repaired"
                try:
                    resp = http.post(url, json={"replica": name})
                except httpx.HTTPError as exc:
                    report.warnings.append(
                        f"router {router} did not take the notice for {name}: {exc}"
                    )
                    continue
                if resp.status_code == 404:
                    report.warnings.append(f"router {router} does not take repaired notices (404)")
                elif resp.status_code >= 400:
                    report.warnings.append(
                        f"router {router} answered HTTP {resp.status_code} for {name}"
                    )
                else:
                    told = True
            if told:
                report.repaired.append(name)
