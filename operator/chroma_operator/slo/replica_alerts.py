"""Alerts on replica health, for clusters with two or more replicas per shard.

Replicas fix themselves in most cases: hints replay, a repair CronJob copies what hints
lost. These alerts fire when that is not happening fast enough for a person to ignore:
a replica that needs a repair, one stale for half an hour (so its shard reads from fewer
replicas), and one that writes keep giving up on (hung, or far slower than its siblings).
The series are the routers' (`chroma_router_replicas{state}`, each router's count of
replicas per state, and `chroma_router_write_stragglers_total{replica}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chroma_operator.slo.promql import Scope, selector


def replica_alert_group(
    cluster: str, scope: Scope, labels: Mapping[str, str], repair_hint: str
) -> dict[str, Any]:
    """One rule group: ChromaReplicaNeedsRepair, ChromaReplicaStale, ChromaReplicaWriteStragglers.

    `repair_hint`: how this cluster's replicas get repaired (its builder knows)."""
    where = f"ChromaCluster {scope.namespace}/{cluster}"

    def replicas_in(state: str) -> str:
        return f"max({selector('chroma_router_replicas', {**scope.matchers(), 'state': state})})"

    stragglers = selector("chroma_router_write_stragglers_total", scope.matchers())
    rules = [
        {
            "alert": "ChromaReplicaNeedsRepair",
            "expr": f"{replicas_in('repairing')} > 0",
            "for": "10m",
            "labels": {**labels, "severity": "ticket"},
            "annotations": {
                "summary": f"{where}: a replica needs a repair",
                "description": (
                    "{{ $value }} replica(s) missed writes that no hint log holds (a hint "
                    "log over replication.maxHintBytes, or lost with a router's volume), "
                    "or came back without their data (a lost or new volume). "
                    "They serve no reads and take no writes until repaired. " + repair_hint
                ),
            },
        },
        {
            "alert": "ChromaReplicaStale",
            "expr": f"{replicas_in('stale')} > 0",
            "for": "30m",
            "labels": {**labels, "severity": "ticket"},
            "annotations": {
                "summary": f"{where}: a replica has been stale for 30 minutes",
                "description": (
                    "{{ $value }} replica(s) have had writes waiting in hint logs for 30 "
                    "minutes: down, hung, or not keeping up with the replay. Their shards "
                    "read from fewer replicas meanwhile. `kubectl chroma status` lists "
                    "replica states and pending hints."
                ),
            },
        },
        {
            "alert": "ChromaReplicaWriteStragglers",
            "expr": f"sum by (replica) (increase({stragglers}[15m])) >= 3",
            "labels": {**labels, "severity": "ticket"},
            "annotations": {
                "summary": f"{where}: writes keep giving up on replica {{{{ $labels.replica }}}}",
                "description": (
                    "Replica {{ $labels.replica }} missed {{ $value | humanize }} live writes "
                    "in 15 minutes, each still unanswered a grace period after its siblings "
                    "took it: it is hung or far slower than its siblings (its node, disk or "
                    "resources). It catches up from hints each time."
                ),
            },
        },
    ]
    return {"name": f"chroma-replicas.{scope.namespace}.{scope.service}", "rules": rules}
