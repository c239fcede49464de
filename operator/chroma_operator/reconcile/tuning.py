"""A finished tuning Job into `status.tuning`, the `Tuned` condition, and the live efSearch.

The Job's result is read back by `jobs.py`. Pure parts (status shape) are separate from
the one call that changes a live collection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

Obj = dict[str, Any]
TUNED = "Tuned"
TENANT_PATH = "/api/v2/tenants/default_tenant/databases/default_database/collections"


def _point_text(p: Mapping[str, Any]) -> str:
    return (
        f"maxNeighbors={p.get('maxNeighbors')} efConstruction={p.get('efConstruction')} "
        f"efSearch={p.get('efSearch')}: recall {p.get('recall')}, p50 {p.get('p50Ms')} ms"
    )


def tuning_outcome(job_name: str, result: Obj | None) -> tuple[Obj, bool, str, str]:
    """(status.tuning, Tuned?, reason, message) for a finished Job."""
    if result is None:
        message = f"job {job_name} finished without a readable result (see its logs)"
        return {"job": job_name, "status": "failed", "message": message}, False, "NoResult", message
    tuning = {"job": job_name, **{k: v for k, v in result.items() if k != "v"}}
    if result.get("status") == "ok" and result.get("chosen"):
        message = f"{result.get('collection')}: {_point_text(result['chosen'])}"
        return tuning, True, "Tuned", message
    reason = str(result.get("reason") or "failed")
    message = str(result.get("message") or reason)
    return tuning, False, "".join(w.capitalize() for w in reason.split("-")), message


VERIFY_TOLERANCE = 0.01
"""Live recall may sit this far under the target (plus twice the tuner's standard error)."""


def verification(tuning: Mapping[str, Any], result: Obj | None) -> Obj:
    """Compare the live measurement after the restart with what the tuner predicted."""
    chosen = tuning.get("chosen") or {}
    if result is None or result.get("status") != "ok" or not result.get("verify"):
        reason = (result or {}).get("message") or "the verify Job left no readable result"
        return {"ok": False, "message": f"could not verify the applied efSearch: {reason}"}
    live = result["verify"]
    target = float(tuning.get("targetRecall") or 0.0)
    slack = VERIFY_TOLERANCE + 2 * float(chosen.get("recallStdErr") or 0.0)
    ok = float(live["recall"]) >= target - slack
    message = (
        f"live recall@{tuning.get('k')} {live['recall']} at efSearch {live.get('efSearch')} "
        f"(predicted {chosen.get('recall')}, target {target}); p50 {live.get('p50Ms')} ms"
    )
    return {
        "ok": ok,
        "recall": live["recall"],
        "predicted": chosen.get("recall"),
        "efSearch": live.get("efSearch"),
        "p50Ms": live.get("p50Ms"),
        "p99Ms": live.get("p99Ms"),
        "message": message if ok else "below target after the restart: " + message,
    }


async def apply_ef_search(
    router_url: str, collection: str, ef_search: int, headers: Mapping[str, str] | None = None
) -> None:
    """Set ef_search on the collection through the router (which modifies every shard).

    Chroma 1.5 stores it at once but a loaded index keeps its old value until the shard
    restarts; the caller records that the reload is still pending.
    """
    async with httpx.AsyncClient(
        base_url=router_url, timeout=30.0, headers=dict(headers or {})
    ) as http:
        found = await http.get(f"{TENANT_PATH}/{collection}")
        found.raise_for_status()
        collection_id = found.json()["id"]
        changed = await http.put(
            f"{TENANT_PATH}/{collection_id}",
            json={"new_configuration": {"hnsw": {"ef_search": ef_search}}},
        )
        changed.raise_for_status()
