"""`local up FILE` on a running cluster whose file changed `shards`: move online.

The same engine as the operator's, over the topology file the local router watches:
new shard processes start first (a grow), the placement walks its phases, and shards
that are no longer needed stop only after cleanup (a shrink). Running ones keep their
ports. Interrupted, the move resumes at the next `local up` from the topology file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from chroma_operator.api.models import ChromaCluster
from chroma_operator.local.plan import LocalPlan, plan_local
from chroma_operator.local.supervisor import LocalError, Supervisor
from chroma_operator.reshard.engine import DEFAULT_RATE, Engine
from chroma_operator.reshard.file_runtime import FileRuntime
from chroma_operator.reshard.plan import check_target, moving, shard_span
from chroma_operator.topology import PlacementTopology, Topology


def topology_path(directory: Path) -> Path:
    return directory.resolve() / "topology.json"


def placement_on_disk(directory: Path) -> PlacementTopology | None:
    """The placement the local router serves now (None: no cluster was started here)."""
    path = topology_path(directory)
    if not path.exists():
        return None
    return Topology.from_json(path.read_bytes()).current_placement()


def with_shards(cluster: ChromaCluster, shards: int) -> ChromaCluster:
    spec = cluster.spec.model_copy(update={"shards": shards})
    return cluster.model_copy(update={"spec": spec})


def serving_plan(
    cluster: ChromaCluster,
    home: Path,
    port: int,
    chroma: str,
    ports: Mapping[str, int] | None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> LocalPlan:
    """The processes to run now: mid-move, the shards of both counts.

    A mid-move topology on disk is kept as it is (the router carries on from it), not
    replaced by the plan's stable one.
    """
    p = placement_on_disk(home)
    # The count the router serves now: a changed file is moved to once this is up.
    shards = shard_span(p) if p is not None else cluster.spec.shards
    plan = plan_local(
        with_shards(cluster, shards), home, port, chroma=chroma, ports=ports, secrets=secrets
    )
    if p is None or not moving(p):
        return plan
    keep = topology_path(home)
    procs = [
        dataclasses.replace(x, files={f: t for f, t in x.files.items() if f != keep})
        for x in plan.processes
    ]
    return dataclasses.replace(plan, processes=procs)


def needs_move(cluster: ChromaCluster, home: Path) -> bool:
    p = placement_on_disk(home)
    return p is not None and (moving(p) or p.shards != cluster.spec.shards)


def reshard_local(
    running: LocalPlan,
    cluster: ChromaCluster,
    home: Path,
    port: int,
    chroma: str,
    echo: Callable[[str], None],
    save: Callable[[LocalPlan], None],
    rate: float | None = None,
) -> LocalPlan:
    """Move the running cluster to `cluster.spec.shards`; returns the final plan.

    Raises `ReshardRefused` (bad target, or a conflicting move in progress) before
    anything changes, and `LocalError` when the cluster is not running.
    """
    sup = Supervisor(running)
    if not sup.is_running(running.router):
        raise LocalError(f"{running.cluster}'s router is not running; start the cluster first")
    runtime = FileRuntime(topology_path(home), [running.router.url], on_event=echo)
    current = runtime.topology().current_placement()
    target = cluster.spec.shards
    check_target(current, target)
    ports = {p.name: p.port for p in running.processes}
    final = plan_local(cluster, home, port, chroma=chroma, ports=ports)
    span = max(shard_span(current), target)
    wide = plan_local(with_shards(cluster, span), home, port, chroma=chroma, ports=ports)
    new_shards = [p for p in wide.processes if p.component == "shard" and not sup.is_running(p)]
    if new_shards:
        echo(f"starting {len(new_shards)} new shard processes")
        sup.check_ports(new_shards)
        sup.wait_healthy(sup.start(new_shards))
    save(wide)
    engine = Engine(
        runtime,
        rate=rate or DEFAULT_RATE,
        progress=runtime.saved_progress() if moving(current) else None,
    )
    engine.start(target, list(wide.topology.shards))
    engine.run()
    keep = {p.name for p in final.processes}
    removed = [p for p in wide.processes if p.name not in keep]
    if removed:
        sup.stop(removed)
        echo(f"stopped {len(removed)} shard processes that are no longer needed")
    save(final)
    runtime.close()
    return final
