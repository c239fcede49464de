"""Restart shards one at a time so a loaded HNSW index picks up an applied efSearch. Pure.

Chroma 1.5 keeps a loaded index's ef_search until the server restarts. After
a tuning run applies one, each shard StatefulSet gets a restart token in its pod template
(via the builders), the next shard only once the previous one is rolled and ready, so the
cluster keeps serving throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from chroma_operator.api.tuning_state import AppliedTuning, IndexReload, index_reload
from chroma_operator.build import naming

Obj = dict[str, Any]
State = Literal["idle", "rolling", "done"]


def shard_rolled(sts: Mapping[str, Any] | None, token: str, replicas: int) -> bool:
    """The StatefulSet runs the template with `token` on every replica, all ready."""
    if sts is None:
        return False
    template = sts.get("spec", {}).get("template", {}).get("metadata", {})
    if (template.get("annotations") or {}).get(naming.RESTARTED_AT_ANNOTATION) != token:
        return False
    return statefulset_rolled(sts, replicas)


def statefulset_rolled(sts: Mapping[str, Any], replicas: int) -> bool:
    """The StatefulSet controller has rolled its current template onto every replica,
    and every replica is ready (what a rolling change waits for before the next shard)."""
    status = sts.get("status") or {}
    generation = sts.get("metadata", {}).get("generation", 0)
    return (
        int(status.get("observedGeneration", 0) or 0) >= int(generation or 0)
        and int(status.get("updatedReplicas", 0) or 0) >= replicas
        and int(status.get("readyReplicas", 0) or 0) >= replicas
    )


def advance(
    applied: AppliedTuning | None,
    restarts: Mapping[int, str],
    shards: int,
    replicas: int,
    live: Mapping[tuple[str, str], Obj],
    cluster: str,
) -> tuple[dict[int, str], State]:
    """The restart tokens to build with now, and where the rollout stands."""
    out = dict(restarts)
    if applied is None or index_reload(applied) is not IndexReload.PENDING or not applied.at:
        return out, "idle"
    token = applied.at

    def rolled(i: int) -> bool:
        return shard_rolled(live.get(("StatefulSet", naming.shard(cluster, i))), token, replicas)

    if any(t == token and not rolled(i) for i, t in out.items()):
        return out, "rolling"  # wait for the shard in flight
    todo = [i for i in range(shards) if out.get(i) != token]
    if todo:
        out[todo[0]] = token
        return out, "rolling"
    return out, "done"
