"""Reading a finished operator Job (tuning, repair) back: its state and its result.

Each Job writes a compact JSON result as its container's termination message; Kubernetes
keeps that on the Pod, not the Job, so the operator reads the Job's newest Pod.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    if status.get("succeeded"):
        return True
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions)


def termination_message(pods: list[Obj]) -> str | None:
    """The newest Pod's terminated container message (the program's compact result)."""
    for pod in sorted(
        pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp", ""), reverse=True
    ):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            msg = ((cs.get("state") or {}).get("terminated") or {}).get("message")
            if msg:
                return str(msg)
    return None


def parse_result(message: str | None) -> Obj | None:
    """The result object, or None when the message is not one (a crash's log tail)."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "status" in data else None
