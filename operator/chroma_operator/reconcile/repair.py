"""A finished repair Job into `status.repair`, the `Repaired` condition and its Event. Pure."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
REPAIRED = "Repaired"


def _counts(result: Obj) -> str:
    return (
        f"{result.get('copied', 0)} copied, {result.get('removed', 0)} removed, "
        f"{result.get('overwritten', 0)} overwritten in {result.get('bucketsDiffering', 0)} of "
        f"{result.get('bucketsCompared', 0)} buckets ({result.get('seconds', 0)} s)"
    )


def repair_outcome(job_name: str, result: Obj | None) -> tuple[Obj, bool, str, str]:
    """(status.repair, Repaired?, reason, message) for a finished repair Job."""
    if result is None:
        message = f"job {job_name} finished without a readable report (see its logs)"
        return {"job": job_name, "status": "failed", "message": message}, False, "NoResult", message
    record = {"job": job_name, **{k: v for k, v in result.items() if k != "v"}}
    if result.get("status") == "ok":
        return record, True, "Converged", "every replica matches an in-sync one: " + _counts(result)
    reason = str(result.get("reason") or "failed")
    message = f"{result.get('message') or reason}; {_counts(result)}"
    return record, False, "".join(w.capitalize() for w in reason.split("-")), message
