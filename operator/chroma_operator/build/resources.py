"""Container resource requirements from the spec's Resources groups."""

from __future__ import annotations

from typing import Any

from chroma_operator.api.models import Resources


def container_resources(
    res: Resources, extra_limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    requests = res.requests.model_dump(exclude_none=True)
    limits = {**res.limits.model_dump(exclude_none=True), **(extra_limits or {})}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out
