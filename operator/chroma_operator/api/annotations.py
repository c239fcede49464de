"""Day-2 annotations on a ChromaCluster: hibernate, pause, fence. Parsed here, once. Pure.

Annotations (not spec fields) because they are operations on a running cluster, set by
`kubectl chroma` or `kubectl annotate`, and must not be undone by re-applying the spec
from Git.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from chroma_operator.build.naming import ANNOTATION_PREFIX

HIBERNATION = f"{ANNOTATION_PREFIX}/hibernation"
RECONCILE = f"{ANNOTATION_PREFIX}/reconcile"
FENCED = f"{ANNOTATION_PREFIX}/fenced"
REPAIR = f"{ANNOTATION_PREFIX}/repair"
PAUSED_VALUE = "paused"
REPLICA_NAME = re.compile(r"^shard-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)$")


def hibernated(annotations: Mapping[str, str]) -> bool:
    """`hibernation: "on"` scales shards and encoder to zero; anything else is awake."""
    return str(annotations.get(HIBERNATION, "")).strip().lower() == "on"


def paused(annotations: Mapping[str, str]) -> bool:
    return str(annotations.get(RECONCILE, "")).strip().lower() == PAUSED_VALUE


def replica_name(shard: int, replica: int) -> str:
    """How a replica is named in the fence annotation and the topology: shard-<i>-<r>."""
    return f"shard-{shard}-{replica}"


@dataclass(frozen=True)
class Fence:
    """The replicas a valid fence annotation names, or the problems of an invalid one."""

    replicas: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def parse_fence(annotations: Mapping[str, str], shards: int, replicas: int) -> Fence:
    """Validate `fenced: '["shard-0-1"]'` against the cluster's shape.

    Refused: bad JSON, anything but a list of names, unknown replicas, and fencing every
    replica of a shard (nothing would be left to serve it).
    """
    raw = annotations.get(FENCED)
    if raw is None or not str(raw).strip():
        return Fence()
    try:
        value = orjson.loads(str(raw))
    except orjson.JSONDecodeError as exc:
        return Fence(problems=[f"{FENCED}: not JSON ({exc}); expected e.g. '[\"shard-0-1\"]'"])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return Fence(problems=[f"{FENCED}: expected a JSON list of replica names, got {raw}"])
    problems = []
    names = sorted(set(value), key=_order)
    for name in names:
        m = REPLICA_NAME.match(name)
        if m is None:
            problems.append(f"{FENCED}: {name!r} is not a replica name (shard-<i>-<r>)")
        elif int(m[1]) >= shards or int(m[2]) >= replicas:
            problems.append(
                f"{FENCED}: no replica {name} (the cluster has shards 0-{shards - 1}, "
                f"replicas 0-{replicas - 1})"
            )
    for i in range(shards):
        if all(replica_name(i, r) in names for r in range(replicas)):
            problems.append(f"{FENCED}: fencing every replica of shard {i} would leave it unserved")
    return Fence(problems=problems) if problems else Fence(replicas=names)


def _order(name: str) -> tuple[int, int, str]:
    m = REPLICA_NAME.match(name)
    return (int(m[1]), int(m[2]), name) if m else (1 << 30, 0, name)
